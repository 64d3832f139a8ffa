"""Instances: every write and every Hetzner call about OctoPerf's hosts.

The rules that keep money safe:
- intent first: a row is committed before Hetzner is called and updated after; no transaction is
  open across a Hetzner call;
- status changes are compare-and-set (`filter(pk=..., status=old).update(...)`), so an API call
  racing the reconciler never acts twice;
- when Hetzner's answer is lost (timeout, 5xx) the server may exist: the row is marked for deletion
  and the reconciler deletes whatever turns up under its name.
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from django.conf import settings
from django.db import connection

from instances import reuse
from instances.models import Instance
from octoprovider import hetzner
from octoprovider.core import clock, guardrails
from octoprovider.core.exceptions import (
    Conflict,
    HetznerError,
    HetznerLocked,
    HetznerNoCapacity,
    HetznerNotFound,
    HetznerPrimaryIPRefused,
    HetznerTypeNotOrderable,
    InvalidInput,
    LimitReached,
    NotFound,
)
from octoprovider.core.reports import Kind, Outcome
from octoprovider.hetzner import catalog

logger = logging.getLogger(__name__)

Status = Instance.Status

FROM_HETZNER = {
    "initializing": Status.PENDING,
    "starting": Status.PENDING,
    "rebuilding": Status.PENDING,
    "migrating": Status.PENDING,
    "unknown": Status.PENDING,
    "running": Status.RUNNING,
    "stopping": Status.STOPPING,
    "off": Status.STOPPED,
    "deleting": Status.DELETING,
}

# A delete that Hetzner accepted but whose server still shows after this long is sent again.
DELETE_RETRY_AFTER = timedelta(seconds=30)


def set_status(instance: Instance, old_status: str, **fields) -> bool:
    """Compare-and-set: update the row only if its status is still `old_status`."""
    fields.setdefault("updated_at", clock.now())
    updated = Instance.objects.filter(pk=instance.pk, status=old_status).update(**fields)
    return updated == 1


def _get(instance_id: str) -> Instance:
    try:
        return Instance.objects.get(pk=instance_id)
    except Instance.DoesNotExist:
        raise NotFound(f"No instance {instance_id!r} was ever created here.") from None


_TABLE = Instance._meta.db_table
# `claimed_at IS NULL` rides along: the poll that first names an instance records its claim (see below).
_STATE_SQL = f"SELECT status, claimed_at IS NULL FROM {_TABLE} WHERE id = %s"
_LIVE_STATES_SQL = f"SELECT id, status, claimed_at IS NULL FROM {_TABLE} WHERE status <> %s"
_CLAIM_SQL = f"UPDATE {_TABLE} SET claimed_at = %s WHERE claimed_at IS NULL AND id IN "


def _record_claims(instance_ids: set[str]) -> None:
    ids = sorted(instance_ids)
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL + f"({', '.join(['%s'] * len(ids))})", [clock.now(), *ids])


class _StateSnapshot:
    """This process's copy of every live instance's status, read again after STATE_SNAPSHOT_SECONDS.

    OctoPerf polls every instance every few seconds, and the poll is the service's hottest path.
    One query for the whole live fleet each second replaces one query per poll; a state may lag the
    database by that second, which is far less than Hetzner's own transitions take.

    It also records claims without a write per poll: the ids it answered that were never claimed are
    written in one UPDATE with the next read (OctoPerf keeps polling what it knows, so the next read
    comes within a second or two; UNCLAIMED_INSTANCE_GRACE is minutes).
    """

    def __init__(self):
        self._states: dict[str, str] = {}
        self._unclaimed: set[str] = set()
        self._claimed: set[str] = set()  # answered, to be recorded with the next read
        self._read_at: datetime | None = None
        self._lock = threading.Lock()

    def _due(self) -> bool:
        return self._read_at is None or clock.now() - self._read_at >= timedelta(
            seconds=settings.STATE_SNAPSHOT_SECONDS
        )

    def status(self, instance_id: str) -> str | None:
        # One thread reads the fleet; the others answer from the previous read meanwhile rather than
        # queue behind it (at start-up there is none: they ask the database, as for a new instance).
        if self._due() and self._lock.acquire(blocking=False):
            try:
                if self._due():
                    self._read()
            finally:
                self._lock.release()
        if instance_id in self._unclaimed:
            self._claimed.add(instance_id)
        return self._states.get(instance_id)

    def claimed(self, instance_id: str) -> None:
        """Note a claim the database showed (an instance polled before it entered a read)."""
        self._claimed.add(instance_id)

    def _read(self) -> None:
        # A claim noted by another thread during the swap may be missed: the read still shows the id
        # unclaimed, so its next poll notes it again.
        claimed, self._claimed = self._claimed, set()
        if claimed:
            _record_claims(claimed)
        with connection.cursor() as cursor:
            cursor.execute(_LIVE_STATES_SQL, [Status.TERMINATED])
            rows = cursor.fetchall()
        self._states = {instance_id: status for instance_id, status, _ in rows}
        self._unclaimed = {instance_id for instance_id, _, unclaimed in rows if unclaimed}
        self._read_at = clock.now()


_snapshot = _StateSnapshot()


def instance_get_state(*, instance_id: str) -> str:
    """Return the contract state of an instance from the database alone (polled often: no Hetzner call).

    A poll claims the instance: OctoPerf received its id (see `instances_end_unclaimed`).
    """
    status = _snapshot.status(instance_id) if settings.STATE_SNAPSHOT_SECONDS else None
    if status is None:
        # New since the snapshot, terminated, or never issued: ask the database itself. Building the
        # ORM query would cost twice what PostgreSQL takes to answer it, hence the plain SELECT.
        with connection.cursor() as cursor:
            cursor.execute(_STATE_SQL, [instance_id])
            found = cursor.fetchone()
        status = found[0] if found else None
        if found and found[1]:
            if settings.STATE_SNAPSHOT_SECONDS:
                _snapshot.claimed(instance_id)
            else:
                _record_claims({instance_id})  # once in an instance's life
    if status is None:
        raise NotFound(f"No instance {instance_id!r} was ever created here.")
    return Instance.CONTRACT_STATES[status]


def instance_claim(*, instance_id: str) -> None:
    """Record that OctoPerf called with the instance's id (reboot, delete, associate): it knows the instance.

    The contract's views call it, not the services: an operator's reboot or terminate claims nothing.
    """
    Instance.objects.filter(pk=instance_id, claimed_at__isnull=True).update(claimed_at=clock.now())


# Statuses an unclaimed instance is ended from: created at Hetzner and not on its way out already.
_CLAIMABLE = [Status.PENDING, Status.RUNNING, Status.STOPPING, Status.STOPPED]
NEVER_CLAIMED = (
    "never claimed: OctoPerf never called about it within UNCLAIMED_INSTANCE_GRACE (its create's answer was lost)"
)


def instances_unclaimed():
    """Return the live instances OctoPerf never called about within UNCLAIMED_INSTANCE_GRACE (none when 0).

    OctoPerf polls every instance it knows about from its create on; one it never names is the
    first of a create it retried because the answer came too late (its client gave up first).
    """
    if not settings.UNCLAIMED_INSTANCE_GRACE:
        return Instance.objects.none()
    cutoff = clock.now() - timedelta(seconds=settings.UNCLAIMED_INSTANCE_GRACE)
    return Instance.objects.filter(status__in=_CLAIMABLE, claimed_at__isnull=True, created_at__lt=cutoff)


def instance_end_unclaimed(*, instance_id: str) -> bool:
    """End an instance OctoPerf never claimed, as a delete would; return False if it was claimed or moved meanwhile."""
    now = clock.now()
    # Compare-and-set on the claim too: a poll recorded since the listing keeps the instance.
    if not Instance.objects.filter(pk=instance_id, status__in=_CLAIMABLE, claimed_at__isnull=True).update(
        status=Status.DELETING, delete_requested_at=now, updated_at=now, last_error=NEVER_CLAIMED
    ):
        return False
    instance = Instance.objects.get(pk=instance_id)
    logger.warning(
        "Instance %s was never claimed by OctoPerf in %s s: deleting it", instance.id, settings.UNCLAIMED_INSTANCE_GRACE
    )
    if instance.hetzner_id is not None:
        delete_at_hetzner(instance)
    return True


def instances_end_unclaimed() -> list[str]:
    """End every instance OctoPerf never claimed within UNCLAIMED_INSTANCE_GRACE; return their ids.

    The reconciler's full pass calls it; `cleanup` lists the same instances as findings.
    """
    return [
        instance_id
        for instance_id in instances_unclaimed().values_list("pk", flat=True)
        if instance_end_unclaimed(instance_id=instance_id)
    ]


class PublicIPv4Source(Protocol):
    """Where a new server's public IPv4 may come from: the static IPs, which sit above this layer.

    `take` runs inside the transaction that inserts the instance (one create at a time per the
    instances lock) and answers a free Primary IP's Hetzner id, or None; it may raise to refuse the
    create. `give_back` undoes a take when the server is created without it.
    """

    def take(self, *, instance: Instance, exclude: list[int]) -> int | None: ...

    def give_back(self, *, instance: Instance) -> None: ...


_public_ipv4_source: PublicIPv4Source | None = None


def use_public_ipv4_source(source: PublicIPv4Source | None) -> None:
    """Let `source` give new servers their public IPv4 (the static IPs register at start-up)."""
    global _public_ipv4_source
    _public_ipv4_source = source


# Hetzner may refuse the Primary IP a create is given (assigned meanwhile, gone, or still reported on a
# server deleted a moment ago): the next free one, or none, is tried instead.
_IPV4_TRIES = 3


@dataclass
class _Attempt:
    """One create's way to Hetzner: the prices its budgets were checked at, and what they priced.

    Each try is priced at the server type, location and IPv4 it is about to send; a try priced
    otherwise than the last check (a type or location fallback, or no static IP after all) is
    checked again first, so no fallback crosses a budget.
    """

    prices: hetzner.Prices | None
    public_ipv4_id: int | None = None
    priced_as: tuple[str, str, bool] | None = None  # (server type, location, own IPv4)


def instance_create(*, region: str, type: str, user_data: str, zone: str = "") -> Instance:
    """Create a Hetzner server that runs `user_data` at start-up, and return its row.

    When a free static IP sits in the location, the server is created with it as its public IPv4,
    so that a later associate needs no power cycle. `user_data` goes to Hetzner and nowhere else:
    not stored, not logged.
    """
    location = _checked_location(region=region, type=type, user_data=user_data)
    candidates = catalog.server_type_candidates(location, type)  # may read Hetzner's catalogue (cached)
    if not _holds_static_ips(location):  # there, a new server takes a free static IP instead (no power cycle)
        taken = reuse.instance_take_parked(
            region=region, zone=zone, location=location, type=type, candidates=candidates, user_data=user_data
        )
        if taken is not None:
            return taken
    reuse.make_room(location=location)  # parked servers count against the caps below
    # Read before the lock: no transaction stays open across a Hetzner call (both are cached).
    attempt = _Attempt(prices=hetzner.hourly_prices() if guardrails.budgets_set() else None)
    guardrails.measure_spend_ahead(attempt.prices)  # the month's rows, summed before the lock
    with guardrails.guarded("instances"):
        instance = _insert_within_caps(region=region, zone=zone, location=location, type=type, candidates=candidates)
        _take_public_ipv4(instance, attempt)
        if attempt.prices is not None:
            # A refusal here rolls the row back with the lock: nothing was ever created.
            likely = next((name for name in candidates if hetzner.server_type_orderable(name, location)), candidates[0])
            _check_budgets(instance, attempt, likely, candidates)
    try:
        server = _create_with_public_ipv4(instance, candidates, user_data, attempt)
    except HetznerError as exc:
        _record_failed_create(instance, exc)
        raise
    except (Conflict, LimitReached) as exc:
        # Hetzner refused the static IPs it was given and STATIC_IP_STRICT allows no other address;
        # or a fallback would have crossed a budget. Either way nothing was created.
        set_status(instance, Status.CREATING, status=Status.TERMINATED, terminated_at=clock.now(), last_error=str(exc))
        if _public_ipv4_source is not None:
            _public_ipv4_source.give_back(instance=instance)
        raise
    logger.info(
        "Created instance %s as Hetzner server %s (%s in %s)",
        instance.id,
        server.id,
        server.server_type,
        instance.location,  # where it was created: a LOCATION_FALLBACKS location perhaps
    )
    own_ipv4 = server.public_ipv4_id is not None and server.public_ipv4_id != attempt.public_ipv4_id
    _record_created(instance, server, own_ipv4=own_ipv4)
    instance.refresh_from_db()
    return instance


def _checked_location(*, region: str, type: str, user_data: str) -> str:
    """Refuse a create OctoPerf asked wrongly or the operator does not allow; return the region's location."""
    location = catalog.location_for(region)
    catalog.check_size(type)
    guardrails.check_region_and_type(region=region, location=location, instance_type=type)
    if len(user_data.encode()) > settings.USER_DATA_MAX_BYTES:
        raise InvalidInput(
            f"userData is {len(user_data.encode())} bytes; Hetzner accepts at most "
            f"{settings.USER_DATA_MAX_BYTES} bytes (32 KiB).",
            code="user_data_too_large",
        )
    return location


def _insert_within_caps(*, region: str, zone: str, location: str, type: str, candidates: list[str]) -> Instance:
    """Insert the row, unless it would cross MAX_INSTANCES or MAX_INSTANCES_PER_REGION. Run inside the lock."""
    # Every row whose server may still exist bills: a delete Hetzner refuses keeps its row
    # `deleting`, and a cap that left those out would let create/delete loops pile servers up. A
    # parked server bills too (instances/reuse.py).
    live = Instance.objects.exclude(status=Status.TERMINATED)
    guardrails.check_count(
        name="MAX_INSTANCES",
        current=live.count() + reuse.parked_count(),
        limit=settings.MAX_INSTANCES,
        what="instances (parked servers included)",
    )
    guardrails.check_count(
        name="MAX_INSTANCES_PER_REGION",
        current=live.filter(location=location).count() + reuse.parked_count(location=location),
        limit=settings.MAX_INSTANCES_PER_REGION,
        what=f"instances in {location}",
    )
    return Instance.objects.create(
        region=region.strip().lower(),  # as OctoPerf may send it, FSN1 or fsn1: one filter choice
        zone=zone,
        location=location,
        type=type.strip().upper(),
        server_type=candidates[0],
        image=settings.HCLOUD_IMAGE,
    )


def _take_public_ipv4(instance: Instance, attempt: _Attempt) -> None:
    """Take a free static IP of the location for the new server, if the static IPs offer one. Run inside the lock."""
    if _public_ipv4_source is not None:
        attempt.public_ipv4_id = _public_ipv4_source.take(instance=instance, exclude=[])
    if attempt.public_ipv4_id is not None:
        Instance.objects.filter(pk=instance.pk).update(own_ipv4=False)
        instance.own_ipv4 = False


def _create_with_public_ipv4(
    instance: Instance, candidates: list[str], user_data: str, attempt: _Attempt
) -> hetzner.Server:
    """Create the server with the Primary IP taken for it; when Hetzner refuses that IP, try another or none."""
    refused: list[int] = []
    while True:
        try:
            return _create_first_available(instance, candidates, user_data, attempt)
        except HetznerPrimaryIPRefused as exc:  # the gateway raises it only for a create given an IP
            logger.info("Hetzner refused Primary IP %s for %s (%s)", attempt.public_ipv4_id, instance.id, exc.message)
            refused.append(attempt.public_ipv4_id)
            _public_ipv4_source.give_back(instance=instance)
            attempt.public_ipv4_id = None
            if len(refused) < _IPV4_TRIES:
                with guardrails.guarded("instances"):
                    attempt.public_ipv4_id = _public_ipv4_source.take(instance=instance, exclude=refused)


def _check_budgets(instance: Instance, attempt: _Attempt, server_type: str, candidates: list[str]) -> None:
    """Refuse a create that would cross a budget, priced as `server_type` in the instance's location.

    Run inside `guarded("instances")`, with the row's server type, location and IPv4 as they are sent.
    """
    own_ipv4 = attempt.public_ipv4_id is None
    location = instance.location
    price = attempt.prices.instance(server_type, location, own_ipv4=own_ipv4)
    if price is None:  # not in Hetzner's price list: count the dearest candidate we know of
        known = [p for p in (attempt.prices.instance(name, location, own_ipv4=own_ipv4) for name in candidates) if p]
        price = max(known, key=lambda p: p.hourly, default=hetzner.Price(hourly=Decimal(0), monthly=None))
    guardrails.check_budgets(
        prices=attempt.prices,
        adding_per_hour=price.hourly,
        adding_monthly=price.monthly,
        what=f"a {server_type} in {location}" + (" with its IPv4" if own_ipv4 else " on a static IP"),
        now=clock.now(),
        excluding_instance=instance.pk,
    )
    attempt.priced_as = (server_type, location, own_ipv4)


def _about_to_send(instance: Instance, server_type: str, attempt: _Attempt) -> None:
    """Record the server type and IPv4 a try sends; check the budgets again if they priced something else.

    Raise LimitReached when this try would cross a budget: it is not sent.
    """
    own_ipv4 = attempt.public_ipv4_id is None
    fields = {"server_type": server_type, "own_ipv4": own_ipv4}
    if attempt.prices is None or attempt.priced_as == (server_type, instance.location, own_ipv4):
        if (instance.server_type, instance.own_ipv4) != (server_type, own_ipv4):
            Instance.objects.filter(pk=instance.pk).update(**fields)
    else:
        candidates = catalog.server_type_candidates(instance.location, instance.type)  # cached: before the lock
        # Under the lock, the row is counted by other creates' checks as this try sends it.
        with guardrails.guarded("instances"):
            Instance.objects.filter(pk=instance.pk).update(**fields)
            _check_budgets(instance, attempt, server_type, candidates)
    instance.server_type, instance.own_ipv4 = server_type, own_ipv4


# Predicates saying that a location must keep its instances (a layer above registers one: static IPs
# are tied to their location, and OctoPerf associates them with the region's instances).
_location_keepers: list[Callable[[str], bool]] = []


def keep_instances_in_location_when(predicate: Callable[[str], bool]) -> None:
    """Register a predicate: when it says yes of a location, LOCATION_FALLBACKS does not apply to it."""
    if predicate not in _location_keepers:
        _location_keepers.append(predicate)


def _holds_static_ips(location: str) -> bool:
    return any(keep(location) for keep in _location_keepers)


def _locations_to_try(location: str) -> list[str]:
    fallbacks = catalog.location_fallbacks(location)
    if fallbacks and any(keep(location) for keep in _location_keepers):
        logger.info("No location fallback for %s: it holds static IPs", location)
        return [location]
    return [location, *fallbacks]


def _create_first_available(
    instance: Instance, candidates: list[str], user_data: str, attempt: _Attempt
) -> hetzner.Server:
    """Create the server in the region's location or, sold out there, in its LOCATION_FALLBACKS."""
    locations = _locations_to_try(instance.location)
    for index, location in enumerate(locations):
        if location != instance.location:
            candidates = catalog.server_type_candidates(location, instance.type)
            Instance.objects.filter(pk=instance.pk).update(location=location, server_type=candidates[0])
            instance.location, instance.server_type = location, candidates[0]
            logger.info("Trying instance %s in %s (LOCATION_FALLBACKS)", instance.id, location)
        try:
            return _create_in_location(instance, candidates, user_data, attempt)
        except HetznerNoCapacity:
            if index == len(locations) - 1:
                raise
    raise AssertionError("unreachable: the last location raises")


def _create_in_location(instance: Instance, candidates: list[str], user_data: str, attempt: _Attempt) -> hetzner.Server:
    """Create the server with the first server type Hetzner can deliver, falling back in order.

    Types the catalogue lists as deprecated or unavailable in the location are skipped without a
    try (the catalogue is cached); when it says that of all of them, the first is tried anyway.
    """
    unavailable, unsold, skipped = [], [], []
    for server_type in candidates:
        if not hetzner.server_type_orderable(server_type, instance.location):
            skipped.append(server_type)
            continue
        server = _try_create(instance, server_type, user_data, unavailable, unsold, attempt)
        if server is not None:
            return server
    if len(skipped) == len(candidates):
        server = _try_create(instance, candidates[0], user_data, unavailable, unsold, attempt)
        if server is not None:
            return server
    if unavailable:
        raise HetznerNoCapacity(
            f"Hetzner has no capacity for {', '.join(unavailable)} in {instance.location} right now"
            + (f" ({', '.join(skipped)} deprecated or not offered there)" if skipped else "")
            + "; try again later, or configure SERVER_TYPE_CANDIDATES or LOCATION_FALLBACKS."
        )
    raise HetznerTypeNotOrderable(
        f"Server type {', '.join(unsold)} (for {instance.type}) is not sold in {instance.location}; "
        f"the operator can map {instance.type} to another type with SERVER_TYPES.",
        hetzner_code="invalid_input",
    )


def _try_create(
    instance: Instance,
    server_type: str,
    user_data: str,
    unavailable: list[str],
    unsold: list[str],
    attempt: _Attempt,
) -> hetzner.Server | None:
    """Try one server type; return the server, or None (noting why) when Hetzner cannot deliver it."""
    _about_to_send(instance, server_type, attempt)
    try:
        return reuse.retried_over_hetzner_quota(  # parked servers count against Hetzner's quota
            lambda: hetzner.create_server(
                name=instance.name,
                server_type=server_type,
                image=settings.HCLOUD_IMAGE,
                location=instance.location,
                user_data=user_data,
                labels=hetzner.ownership_labels(instance.id),
                ssh_keys=settings.HCLOUD_SSH_KEYS,
                firewalls=settings.HCLOUD_FIREWALLS,
                public_ipv4_id=attempt.public_ipv4_id,
            )
        )
    except HetznerNoCapacity:
        unavailable.append(server_type)
    except HetznerTypeNotOrderable:
        unsold.append(server_type)
    logger.info("Hetzner cannot deliver %s in %s; trying the next fallback", server_type, instance.location)
    return None


def _record_failed_create(instance: Instance, exc: HetznerError) -> None:
    now = clock.now()
    if hetzner.refused_without_effect(exc):
        set_status(instance, Status.CREATING, status=Status.TERMINATED, terminated_at=now, last_error=str(exc))
    else:
        # The answer was lost or unclear: the server may exist. Nobody will ever learn this id, so
        # whatever appears under its name is deleted by the reconciler.
        set_status(instance, Status.CREATING, status=Status.DELETING, delete_requested_at=now, last_error=str(exc))


def _record_created(instance: Instance, server: hetzner.Server, *, own_ipv4: bool) -> None:
    now = clock.now()
    # Whether Hetzner billed the server an IPv4 of its own: none when it took the Primary IP we gave.
    Instance.objects.filter(pk=instance.pk).update(own_ipv4=own_ipv4)
    if set_status(instance, Status.CREATING, **observed_fields(server, now)):
        return
    # The row moved while Hetzner was creating: a delete came in, or the reconciler saw the server.
    Instance.objects.filter(pk=instance.pk, hetzner_id__isnull=True).update(hetzner_id=server.id)
    instance.refresh_from_db()
    if instance.status == Status.DELETING and instance.hetzner_status != "deleting":
        delete_at_hetzner(instance)


def observed_fields(server: hetzner.Server, now) -> dict:
    return {
        "hetzner_id": server.id,
        "status": FROM_HETZNER.get(server.status, Status.PENDING),
        "hetzner_status": server.status,
        "public_ipv4": server.public_ipv4,
        "observed_at": now,
    }


def instance_reboot(*, instance_id: str) -> Instance:
    """Reboot an instance; when Hetzner is busy with another action, reboot once it is free."""
    instance = _get(instance_id)
    if instance.status in (Status.DELETING, Status.TERMINATED):
        raise Conflict(f"Instance {instance.id} is {instance.state}; it cannot be rebooted.", code="instance_gone")
    if instance.hetzner_id is None:
        Instance.objects.filter(pk=instance.pk).update(reboot_requested_at=clock.now())
        return instance
    outcome = reboot_at_hetzner(instance)
    if outcome.kind is not Kind.FAILED:
        return instance  # done, or owed: the reconciler sends it once Hetzner's running action is over
    if isinstance(outcome.error, HetznerNotFound):
        if Instance.objects.filter(pk=instance.pk, status=Status.TERMINATED).exists():
            raise Conflict(f"Instance {instance.id} is terminated; it cannot be rebooted.", code="instance_gone")
        return instance  # Hetzner still lists the server: the reconciler sends the reboot again
    raise outcome.error  # OctoPerf tries again (503 with Retry-After): nothing is left owed here


def reboot_at_hetzner(instance: Instance) -> Outcome:
    """Send the reboot of the instance's server; return the outcome (see `octoprovider.core.reports`).

    `locked` is owed (`reboot_requested_at`): the reconciler sends it again. A `not_found` fails;
    while Hetzner still lists the server the reboot stays owed, and a server confirmed gone ends the
    row. Any other error fails, for the caller to report: the reconciler's pass goes on with its
    other rows, and the reboot it claimed stays owed.
    """
    try:
        hetzner.reboot_server(instance.hetzner_id)
    except HetznerLocked as exc:
        logger.info("Reboot of %s postponed: another Hetzner action is running", instance.id)
        Instance.objects.filter(pk=instance.pk).update(reboot_requested_at=clock.now())
        return Outcome.owed(exc)
    except HetznerNotFound as exc:
        # One `not_found` proves nothing: Hetzner has answered one for a server that kept running.
        # Only a listing made after it, without the server, does.
        if server_confirmed_gone(instance):
            _mark_gone(instance)
            return Outcome.failed(exc)
        logger.warning(
            "Reboot of %s: Hetzner answered not found, yet lists the server; the reconciler retries", instance.id
        )
        Instance.objects.filter(pk=instance.pk).update(reboot_requested_at=clock.now(), last_error=exc.message)
        return Outcome.failed(exc)
    except HetznerError as exc:
        logger.warning("Reboot of %s failed at Hetzner (%s)", instance.id, exc.message)
        Instance.objects.filter(pk=instance.pk).update(last_error=exc.message)
        return Outcome.failed(exc)
    Instance.objects.filter(pk=instance.pk).update(reboot_requested_at=None, last_error="")
    logger.info("Rebooted instance %s", instance.id)
    return Outcome.done()


def server_confirmed_gone(instance: Instance) -> bool:
    """Tell whether a listing of Hetzner, made now, lacks the instance's server (False when it cannot be asked)."""
    try:
        servers = hetzner.list_servers(label_selector=hetzner.managed_selector(ids=[instance.id]))
    except HetznerError:
        return False
    return not any(server.id == instance.hetzner_id for server in servers)


def instance_delete(*, instance_id: str) -> Instance:
    """Terminate an instance. Idempotent; once the intent is recorded the reconciler finishes the job."""
    instance = _get(instance_id)
    if instance.status == Status.TERMINATED:
        return instance
    if not _holds_static_ips(instance.location) and reuse.instance_park(instance=instance):
        instance.refresh_from_db()
        return instance  # terminated; its server is powered off and kept for the rest of its billed hour
    Instance.objects.filter(pk=instance.pk, status__in=Instance.LIVE).update(
        status=Status.DELETING, delete_requested_at=clock.now(), updated_at=clock.now()
    )
    instance.refresh_from_db()
    if instance.status == Status.DELETING and instance.hetzner_id is not None:
        # Without a Hetzner id the create is still in flight: its request deletes the server it gets.
        delete_at_hetzner(instance)
    return instance


def delete_at_hetzner(instance: Instance) -> Outcome:
    """Send the delete of the instance's server; return the outcome (see `octoprovider.core.reports`).

    Whatever held it back, the row stays `deleting` and the reconciler sends it again.
    """
    try:
        action_id = hetzner.delete_server(instance.hetzner_id)
    except HetznerLocked as exc:
        # Hetzner deletes a server only once its running action (the boot, a reboot, a power cycle)
        # has ended, within seconds: no request time means the next reconcile pass sends it again,
        # instead of DELETE_RETRY_AFTER later.
        logger.info("Delete of %s waits: another Hetzner action is running", instance.id)
        Instance.objects.filter(pk=instance.pk, status=Status.DELETING).update(
            delete_requested_at=None, last_error=exc.message
        )
        return Outcome.owed(exc)
    except HetznerError as exc:
        logger.warning("Delete of %s failed at Hetzner (%s); the reconciler retries it", instance.id, exc.message)
        Instance.objects.filter(pk=instance.pk).update(last_error=exc.message)
        return Outcome.failed(exc)
    if action_id is None:
        # Hetzner answered `not_found`. One such answer proves nothing (the server may still run and
        # bill): the row stays `deleting` until a listing shows the server gone.
        logger.warning("Delete of %s: Hetzner answered not found; the reconciler confirms", instance.id)
        Instance.objects.filter(pk=instance.pk, status=Status.DELETING).update(
            hetzner_status="", last_error="Hetzner answered not found to the delete; waiting for a listing to confirm"
        )
        return Outcome.done("Hetzner answered not found; a listing confirms")
    logger.info("Deleting instance %s (Hetzner action %s)", instance.id, action_id)
    Instance.objects.filter(pk=instance.pk, status=Status.DELETING).update(
        hetzner_status="deleting", delete_requested_at=clock.now()
    )
    return Outcome.done()


def instance_finish_delete(*, instance_id: str, hetzner_id: int | None = None) -> Outcome:
    """Send an instance's pending delete to Hetzner now; return the outcome (see `octoprovider.core.reports`).

    For cleanup, the operator's last resort. `hetzner_id` is the server found under the instance's
    labels, for a row whose create never recorded it. Left alone when no delete is pending (any more).
    """
    instance = _get(instance_id)
    if instance.status != Status.DELETING:
        return Outcome.left_alone(f"instance {instance.id} is {instance.status} now")
    if instance.hetzner_id is None:
        if hetzner_id is None:
            return Outcome.left_alone(f"instance {instance.id} has no server to delete")
        Instance.objects.filter(pk=instance.pk, hetzner_id__isnull=True).update(hetzner_id=hetzner_id)
        instance.refresh_from_db()
    return delete_at_hetzner(instance)


def instance_mark_terminated(*, instance_id: str, reason: str, as_seen: Instance | None = None) -> bool:
    """Record that an instance's server is gone (found by cleanup or an operator).

    With `as_seen`, only while the row is as it was then (status, server, last observation): a
    listing is seconds old, and a row observed, moved or given a server since is not gone.
    """
    instance = _get(instance_id)
    if as_seen is None:
        Instance.objects.filter(pk=instance.pk).update(last_error=reason)
        return _mark_gone(instance)
    return _mark_gone(
        instance,
        last_error=reason,
        status=as_seen.status,
        hetzner_id=as_seen.hetzner_id,
        observed_at=as_seen.observed_at,
    )


def instance_note_power_off(*, instance_id: str) -> bool:
    """Show a running instance as `stopping` at once: its static IP is moving and its power goes off.

    Compare-and-set from `running`, so a state the reconciler already moved on is left alone.
    """
    return Instance.objects.filter(pk=instance_id, status=Status.RUNNING).update(status=Status.STOPPING) == 1


def instance_note_power_cycle_ahead(*, instance_id: str) -> None:
    """Record, in the caller's transaction, that a static-IP move will power-cycle the instance.

    From then on no poll says `running` (it says `stopping`) until `instance_note_power_cycle_over`:
    otherwise a poller sees `running` just before the power goes off, until the reconciler's next pass.
    """
    Instance.objects.filter(pk=instance_id).update(power_cycle_pending=True)
    instance_note_power_off(instance_id=instance_id)


def instance_note_power_cycle_over(*, instance_id: str, server_running: bool) -> None:
    """Record that the static-IP move is over; `server_running`: its server was just seen running.

    Compare-and-set from the states the move showed, so that a delete meanwhile is never undone.
    """
    Instance.objects.filter(pk=instance_id, power_cycle_pending=True).update(power_cycle_pending=False)
    if server_running:
        Instance.objects.filter(pk=instance_id, status__in=[Status.STOPPING, Status.STOPPED, Status.PENDING]).update(
            status=Status.RUNNING, hetzner_status="running", updated_at=clock.now()
        )


def instance_set_own_ipv4(*, instance_id: str, own: bool) -> bool:
    """Record whether the instance's server has an IPv4 of its own (billed apart) since a static IP moved.

    Called by the static-IP steps: an associate replaces the server's own IPv4 with the static IP,
    a dissociate gives the server one back. Every spend figure prices the server from this field.
    """
    return Instance.objects.filter(pk=instance_id).exclude(own_ipv4=own).update(own_ipv4=own) == 1


def _mark_gone(instance: Instance, *, last_error: str | None = None, **unchanged) -> bool:
    """Compare-and-set the row to `terminated`, if it is not, and still has the `unchanged` values."""
    now = clock.now()
    fields = {"status": Status.TERMINATED, "hetzner_status": "", "terminated_at": now, "updated_at": now}
    if last_error is not None:
        fields["last_error"] = last_error
    updated = Instance.objects.filter(pk=instance.pk, **unchanged).exclude(status=Status.TERMINATED).update(**fields)
    if updated:
        logger.info("Instance %s is terminated", instance.id)
    return updated == 1
