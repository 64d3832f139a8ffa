"""Server reuse: keep a deleted instance's server for the hour Hetzner billed, and give it to the next create.

Hetzner bills every hour started from a server's creation, however little of it was used. A test
that ran 15 minutes paid 60; the next run, minutes later, would pay a new hour on new servers. With
SERVER_REUSE=billed-hour (the default), a delete whose server has more than REUSE_MIN_LEFT seconds of
its billed hour left parks it instead, and a create of the same location and server type takes it.

Each parking is one `ParkedServer` row; every step is recorded before Hetzner is called, and a
crash between two steps leaves a row the reconciler finishes (by deleting the server: a parking is
only worth its minutes, never a risk):

- park (from `instance_delete`): the instance is terminated and the row written `parking`, in one
  transaction; then a hard power-off (no agent keeps sending load after its test ended), the
  `octoprovider-parked-until` label, and the row `parked`, with a deadline REUSE_MARGIN before the
  server's next billed hour starts;
- take (from `instance_create`, under the instances lock): the row `taking` and the new instance's
  row `creating`; then the server renamed and relabelled for the new instance, rebuilt with the new
  `user_data` (the disk is wiped: nothing of the last run remains), the instance `pending` and the
  row `taken`; the reconciler powers it on if the rebuild left it off;
- deadline (`parked_servers_advance`, each reconcile pass, and cleanup): a row `parked` past its
  deadline goes `deleting`, its server is deleted, the row `deleted`.

Whatever Hetzner refuses in a park or a take (`locked`, `not_found`, a refused rebuild, an answer
lost) ends the parking: the server is deleted (retried by each pass until Hetzner takes it), and
the create goes on to create a new server. Reuse never fails a delete or a create. Each status change
is a compare-and-set, so a take racing the deadline delete, or two creates, act once.
"""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from django.conf import settings
from django.db import transaction
from django.dispatch import Signal

from instances.models import Instance, ParkedServer
from octoprovider import hetzner
from octoprovider.core import clock, guardrails
from octoprovider.core.exceptions import HetznerError, HetznerLocked, HetznerUnavailable, LimitReached

logger = logging.getLogger(__name__)
T = TypeVar("T")

Parked = ParkedServer.Status
Because = ParkedServer.EndReason
LABEL_PARKED_UNTIL = "octoprovider-parked-until"
PARKED_NOTE = "parked: its server is kept, powered off, for the rest of the hour Hetzner billed"
# Sent with `event` ("park", "take" or "deadline_delete") and the parking's `row`: the metrics count them.
parked_server_event = Signal()
# A row `parking` or `taking` this much older than its last step was cut short (its request died).
STEP_TIMEOUT = timedelta(seconds=120)
# A row `deleting` whose delete was sent is sent again after this long (once per pass while `locked`).
DELETE_RETRY_AFTER = timedelta(seconds=30)
# The statuses an instance is parked from: created, and not on its way out. A server still booting
# (`pending`) is locked by its start action, and one in a static-IP move holds a static IP.
_PARKABLE = [Instance.Status.RUNNING, Instance.Status.STOPPED]


class _Lost(Exception):
    """A compare-and-set found the row moved by another worker: nothing of this step was done."""


def reuse_on() -> bool:
    return settings.SERVER_REUSE == "billed-hour"


def next_billed_hour(billed_since: datetime, now: datetime) -> datetime:
    """Return when the server's next billed hour starts (Hetzner bills each hour started from its creation)."""
    return billed_since + max(1, guardrails.started_hours(billed_since, now)) * guardrails.HOUR


def billed_since(instance: Instance) -> datetime:
    """Return when the instance's server was created: the take's parking says so, or its own row does.

    The row is written a moment before Hetzner creates the server, so deadlines come early, never late.
    """
    taken = ParkedServer.objects.filter(taken_by=instance.pk, status=Parked.TAKEN).values_list(
        "billed_since", flat=True
    )
    return taken.first() or instance.created_at


# --- park ---------------------------------------------------------------------------------------------


def instance_park(*, instance: Instance) -> bool:
    """Park the server of an instance OctoPerf deletes, if its billed hour has more than REUSE_MIN_LEFT left.

    Return True when the instance is terminated by the parking (even if Hetzner then refused the
    power-off: its server is being deleted instead), False when the caller deletes it as usual.
    """
    now = clock.now()
    if not (
        reuse_on()
        and instance.status in _PARKABLE
        and instance.hetzner_id is not None
        and instance.own_ipv4  # a server on a static IP is deleted: the address goes back to the free ones
        and not instance.power_cycle_pending
    ):
        return False
    since = billed_since(instance)
    ends = next_billed_hour(since, now)
    if ends - now <= timedelta(seconds=settings.REUSE_MIN_LEFT):
        return False
    try:
        with transaction.atomic():
            # Compare-and-set on what was read: a delete, a reconciler or a static-IP move since then wins.
            if not Instance.objects.filter(
                pk=instance.pk, status=instance.status, hetzner_id=instance.hetzner_id, power_cycle_pending=False
            ).update(
                status=Instance.Status.TERMINATED,
                hetzner_status="",
                delete_requested_at=now,
                terminated_at=now,
                updated_at=now,
                last_error=PARKED_NOTE,
            ):
                raise _Lost
            row = ParkedServer.objects.create(
                hetzner_id=instance.hetzner_id,
                location=instance.location,
                server_type=instance.server_type,
                labelled_as=instance.pk,
                billed_since=since,
                parked_at=now,
                deadline=ends - timedelta(seconds=settings.REUSE_MARGIN),
                updated_at=now,
            )
    except _Lost:
        return False
    logger.info("Instance %s is terminated; parking its server %s until %s", instance.pk, row.hetzner_id, row.deadline)
    _park_at_hetzner(row)
    return True


def _park_at_hetzner(row: ParkedServer) -> None:
    """Power the server off, label it parked, and record it `parked`; any refusal deletes it instead."""
    try:
        # Hard power-off at once: ACPI shutdown lets an agent run on for as long as it takes to stop.
        hetzner.power_off(row.hetzner_id)
        labels = hetzner.ownership_labels(row.labelled_as) | {LABEL_PARKED_UNTIL: str(int(row.deadline.timestamp()))}
        hetzner.label_server(row.hetzner_id, labels)
    except HetznerError as exc:
        logger.warning("Parking server %s failed at Hetzner (%s); deleting it", row.hetzner_id, exc.message)
        _give_up(row, Parked.PARKING, Because.PARK_FAILED, exc.message)
        return
    if not _move(row, Parked.PARKING, status=Parked.PARKED):
        logger.info("Parking of server %s was taken over meanwhile (status %s)", row.hetzner_id, row.status)
        return
    parked_server_event.send(sender=ParkedServer, event="park", row=row)


# --- take ---------------------------------------------------------------------------------------------


def instance_take_parked(
    *, region: str, zone: str, location: str, type: str, candidates: list[str], user_data: str
) -> Instance | None:
    """Give a create a parked server of its location and server type; return its instance, or None to create one.

    The server type is the one a create would order: the first candidate Hetzner sells there now.
    A rebuild Hetzner refuses, `locked`, `not_found`, an answer lost: the server is deleted and None
    returned, so the create goes on as if nothing were parked.
    """
    if not reuse_on() or not ParkedServer.objects.filter(status=Parked.PARKED, location=location).exists():
        return None
    server_type = next((name for name in candidates if hetzner.server_type_orderable(name, location)), candidates[0])
    taken = _claim(region=region, zone=zone, location=location, type=type, server_type=server_type)
    if taken is None:
        return None
    instance, row = taken
    try:
        # Named and labelled first: a crash after this leaves a server under the new instance's
        # labels, which the reconciler deletes with the abandoned create (CREATE_GRACE).
        hetzner.rename_server(row.hetzner_id, name=instance.name, labels=hetzner.ownership_labels(instance.pk))
        hetzner.rebuild_server(row.hetzner_id, image=settings.HCLOUD_IMAGE, user_data=user_data)
    except HetznerError as exc:
        logger.warning(
            "Taking server %s for %s failed at Hetzner (%s); deleting it and creating a new one",
            row.hetzner_id,
            instance.pk,
            exc.message,
        )
        now = clock.now()
        Instance.objects.filter(pk=instance.pk, status=Instance.Status.CREATING).update(
            status=Instance.Status.TERMINATED,
            terminated_at=now,
            updated_at=now,
            last_error=f"take failed: {exc.message}",
        )
        _give_up(row, Parked.TAKING, Because.TAKE_FAILED, exc.message)
        return None
    now = clock.now()
    _move(row, Parked.TAKING, status=Parked.TAKEN, ended_at=now, power_on_owed=True)
    if not Instance.objects.filter(pk=instance.pk, status=Instance.Status.CREATING).update(
        status=Instance.Status.PENDING,
        hetzner_id=row.hetzner_id,
        hetzner_status="rebuilding",
        observed_at=now,
        updated_at=now,
    ):
        # The row moved while Hetzner rebuilt (the reconciler gave the create up): it deletes the server.
        Instance.objects.filter(pk=instance.pk, hetzner_id__isnull=True).update(hetzner_id=row.hetzner_id)
    logger.info("Instance %s took parked server %s (%s in %s)", instance.pk, row.hetzner_id, server_type, location)
    parked_server_event.send(sender=ParkedServer, event="take", row=row)
    instance.refresh_from_db()
    return instance


def _claim(*, region: str, zone: str, location: str, type: str, server_type: str):
    """Under the instances lock, move the parked server closest to its deadline to `taking` for a new instance row."""
    prices = hetzner.hourly_prices() if guardrails.budgets_set() else None
    guardrails.measure_spend_ahead(prices)
    now = clock.now()
    try:
        with guardrails.guarded("instances"):
            row = (
                ParkedServer.objects.filter(
                    status=Parked.PARKED, location=location, server_type=server_type, deadline__gt=now
                )
                .order_by("deadline")
                .first()
            )
            if row is None:
                return None
            if prices is not None:
                _check_budgets(prices, row, now)
            instance = Instance.objects.create(
                region=region.strip().lower(),
                zone=zone,
                location=location,
                type=type.strip().upper(),
                server_type=server_type,
                image=settings.HCLOUD_IMAGE,
            )
            # Compare-and-set: the deadline delete claims `parked` rows without this lock.
            if not ParkedServer.objects.filter(pk=row.pk, status=Parked.PARKED).update(
                status=Parked.TAKING, taken_by=instance.pk, taken_at=now, updated_at=now
            ):
                raise _Lost
    except (_Lost, LimitReached):
        return None  # the deadline took it, or a budget: a create decides for itself
    row.refresh_from_db()
    return instance, row


def _check_budgets(prices: hetzner.Prices, row: ParkedServer, now: datetime) -> None:
    """Refuse a take whose hours from its server's next billed hour on would cross a budget."""
    price = prices.instance(row.server_type, row.location, own_ipv4=True)
    if price is None:
        return
    guardrails.check_budgets(
        prices=prices,
        adding_per_hour=price.hourly,
        adding_monthly=price.monthly,
        what=f"a parked {row.server_type} in {row.location}",
        now=now,
    )


# --- deadline, and steps cut short ----------------------------------------------------------------------


def parked_servers_advance() -> list[str]:
    """Take every parking one step further; return what was done (for the reconciler's report).

    Deletes the parked servers at their deadline, sends again the deletes Hetzner did not take,
    deletes the servers of parks and takes cut short (STEP_TIMEOUT), and powers on a taken server
    its rebuild left off.
    """
    done = []
    now = clock.now()
    for row in ParkedServer.objects.filter(status=Parked.PARKED, deadline__lte=now):
        if parked_server_delete(row=row, old_status=Parked.PARKED, because=Because.DEADLINE):
            done.append(f"delete parked server {row.hetzner_id} (deadline)")
    for old_status in (Parked.PARKING, Parked.TAKING):
        for row in ParkedServer.objects.filter(status=old_status, updated_at__lt=now - STEP_TIMEOUT):
            if parked_server_delete(row=row, old_status=old_status, because=Because.CUT_SHORT):
                done.append(f"delete parked server {row.hetzner_id} ({old_status} cut short)")
    for row in ParkedServer.objects.filter(status=Parked.DELETING, updated_at__lt=now - DELETE_RETRY_AFTER):
        # Claimed by compare-and-set on the last try's time: one reconciler sends it.
        if ParkedServer.objects.filter(pk=row.pk, status=Parked.DELETING, updated_at=row.updated_at).update(
            updated_at=now
        ):
            _delete(row)
            done.append(f"delete parked server {row.hetzner_id} (again)")
    for row in ParkedServer.objects.filter(status=Parked.TAKEN, power_on_owed=True):
        done.extend(_power_on_if_off(row))
    return done


def parked_server_delete(*, row: ParkedServer, old_status: str, because: str) -> bool:
    """Claim a parking from `old_status` for deletion and delete its server; False if another worker moved it."""
    if not _move(row, old_status, status=Parked.DELETING, end_reason=because):
        return False
    logger.info("Deleting parked server %s (%s)", row.hetzner_id, because)
    if because == Because.DEADLINE:
        parked_server_event.send(sender=ParkedServer, event="deadline_delete", row=row)
    _delete(row)
    return True


def parked_servers_due():
    """Return the parked servers past their deadline (cleanup lists them)."""
    return ParkedServer.objects.filter(status=Parked.PARKED, deadline__lte=clock.now())


def held_server_ids() -> set[int]:
    """Return the Hetzner ids of the servers a parking holds: ours, billed, and never an orphan or a zombie."""
    return set(ParkedServer.objects.filter(status__in=ParkedServer.HOLDING).values_list("hetzner_id", flat=True))


def parked_count(*, location: str | None = None) -> int:
    """Count the servers parkings hold (in `location`): they count against MAX_INSTANCES and its per-region cap."""
    # Not `taking`: its new instance's row counts it already.
    rows = ParkedServer.objects.filter(status__in=[Parked.PARKING, Parked.PARKED, Parked.DELETING])
    return (rows.filter(location=location) if location else rows).count()


def make_room(*, location: str) -> int:
    """Delete parked servers while a create in `location` would hit MAX_INSTANCES or its region's cap; say how many.

    Run before the create's own check (which counts parked servers), outside its lock: the check
    under the lock stays the authority.
    """
    deleted = 0
    while ParkedServer.objects.filter(status=Parked.PARKED).exists():
        live = Instance.objects.exclude(status=Instance.Status.TERMINATED)
        total = live.count() + parked_count()
        in_location = live.filter(location=location).count() + parked_count(location=location)
        if total < settings.MAX_INSTANCES and in_location < settings.MAX_INSTANCES_PER_REGION:
            return deleted
        parked = ParkedServer.objects.filter(status=Parked.PARKED)
        if in_location >= settings.MAX_INSTANCES_PER_REGION:
            parked = parked.filter(location=location)
        row = parked.order_by("deadline").first()
        if row is None:
            return deleted
        if parked_server_delete(row=row, old_status=Parked.PARKED, because=Because.ROOM):
            deleted += 1
    return deleted


# How long a create over Hetzner's quota waits for the parked server it deleted to be gone (a delete takes seconds).
QUOTA_WAIT_SECONDS = 30


def retried_over_hetzner_quota(create: Callable[[], T]) -> T:
    """Call `create`; when Hetzner answers that the project's quota is reached, delete a parked server and retry once.

    Parked servers count against Hetzner's server limit (and its Primary IPs'): one is given up
    rather than refuse the create. Hetzner counts a server until its delete has finished, so the
    retry waits (QUOTA_WAIT_SECONDS at most) for a listing without it.
    """
    try:
        return create()
    except HetznerUnavailable as exc:
        if exc.hetzner_code != "resource_limit_exceeded" or not _free_a_parked_server():
            raise
    return create()


def _free_a_parked_server() -> bool:
    row = ParkedServer.objects.filter(status=Parked.PARKED).order_by("deadline").first()
    if row is None or not parked_server_delete(row=row, old_status=Parked.PARKED, because=Because.ROOM):
        return False
    logger.info("Hetzner's quota is reached: deleted parked server %s to make room", row.hetzner_id)
    waited = 0.0
    while _still_listed(row) and waited < QUOTA_WAIT_SECONDS:
        clock.sleep(1.0)
        waited += 1.0
    return not _still_listed(row)


def _give_up(row: ParkedServer, old_status: str, because: str, error: str) -> None:
    if _move(row, old_status, status=Parked.DELETING, end_reason=because, last_error=error):
        _delete(row)


def _delete(row: ParkedServer) -> HetznerError | None:
    """Send the delete of a `deleting` parking's server; the row is `deleted` once Hetzner took it or it is gone."""
    try:
        action_id = hetzner.delete_server(row.hetzner_id)
    except HetznerError as exc:
        # `locked` (a rebuild, a power-off still running) is waited out; anything else retried.
        level = logging.INFO if isinstance(exc, HetznerLocked) else logging.WARNING
        logger.log(level, "Delete of parked server %s held back (%s); retried", row.hetzner_id, exc.message)
        ParkedServer.objects.filter(pk=row.pk, status=Parked.DELETING).update(last_error=exc.message)
        return exc
    if action_id is None and _still_listed(row):
        # One `not_found` proves nothing: only a listing made after it, without the server, does.
        ParkedServer.objects.filter(pk=row.pk, status=Parked.DELETING).update(
            last_error="Hetzner answered not found to the delete, yet lists the server"
        )
        return None
    _move(row, Parked.DELETING, status=Parked.DELETED, ended_at=clock.now())
    return None


def _still_listed(row: ParkedServer) -> bool:
    ids = [our_id for our_id in (row.labelled_as, row.taken_by) if our_id]
    try:
        servers = hetzner.list_servers(label_selector=hetzner.managed_selector(ids=ids))
    except HetznerError:
        return True
    return any(server.id == row.hetzner_id for server in servers)


def _power_on_if_off(row: ParkedServer) -> list[str]:
    """Power on a taken server its rebuild left off; stop caring once its instance runs or ends."""
    instance = Instance.objects.filter(pk=row.taken_by).values("status", "hetzner_status").first()
    if instance is None or instance["status"] in (Instance.Status.RUNNING, Instance.Status.DELETING, "terminated"):
        ParkedServer.objects.filter(pk=row.pk).update(power_on_owed=False)
        return []
    if instance["hetzner_status"] != "off":
        return []  # still rebuilding: the reconciler looks again next pass
    if not ParkedServer.objects.filter(pk=row.pk, power_on_owed=True).update(power_on_owed=False):
        return []
    try:
        hetzner.power_on(row.hetzner_id)
    except HetznerError as exc:
        logger.warning("Power-on of taken server %s failed (%s); retried", row.hetzner_id, exc.message)
        ParkedServer.objects.filter(pk=row.pk).update(power_on_owed=True, last_error=exc.message)
        return []
    # In transition again: the reconciler's quick passes look at it until it runs.
    Instance.objects.filter(pk=row.taken_by, status=Instance.Status.STOPPED).update(
        status=Instance.Status.PENDING, hetzner_status="starting", updated_at=clock.now()
    )
    return [f"power on taken server {row.hetzner_id}"]


def _move(row: ParkedServer, old_status: str, **fields) -> bool:
    """Compare-and-set a parking's status; refresh `row` either way."""
    fields.setdefault("updated_at", clock.now())
    moved = ParkedServer.objects.filter(pk=row.pk, status=old_status).update(**fields) == 1
    row.refresh_from_db()
    return moved
