"""Static IPs: Hetzner Primary IPv4s, and the multi-step work of moving them between servers.

Hetzner assigns and unassigns a Primary IP only while its server is off, and a server holds at most
one IPv4. So the contract's associate and dissociate answer at once, after recording what is wanted,
and the reconciler carries the work out one step per pass, deciding each step from what it observes
at Hetzner (level-triggered): a crash at any point is picked up where Hetzner actually is.

Associate:  power off -> label the server's own IPv4 as ours -> unassign it -> delete it
            -> assign the static IP -> power on.
Dissociate: power off -> unassign the static IP -> give the server its own IPv4 back (or a fresh
            auto-deleting one) -> power on (its agent must keep reaching OctoPerf).

The words *holder*, *held*, *in use*, *free*, *bound* and *spare* are defined once, in
`staticips.selectors`, which answers the questions they ask.

Most of that power cycle is avoided. A create in a location with a spare static IP gives the server
that Primary IP from the start (`PreAttach`), and an ipId is only a handle on one of the allocated
addresses (OctoPerf never learns which): associating ipId A with a server that already holds the
address behind another unbound ipId B swaps what A and B stand for, with no Hetzner call. Every swap
is kept in `AddressChange` and announced by `static_ips_swapped` (the audit log listens). A bound row
is never swapped: the steps of its move are bound to the row, not to the address.

Which server is disturbed: only the instance OctoPerf named, whenever possible (see `_associate`).
A free static IP A held by a live server X (given at create) stays X's address when a spare exists
(A swaps with it); without one X is moved off A first, a power cycle onto an address outside the
allow-list, which STATIC_IP_STRICT refuses (409 `static_ip_on_another_instance`, for an associate or
a release).

The state tells the truth at once: whatever answers a call that starts a power cycle (associate,
dissociate, a move off X) records it on the instance in the same transaction
(`instance_note_power_cycle_ahead`), and no poll says `running` until the reconciler has seen the
server back up with its new address. A release that comes while a dissociation runs (OctoPerf's
teardown order) is accepted and sent once that move has ended. `holder` follows Hetzner: the sweep
corrects it from the Primary IPs' assignees.
"""

import logging
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.dispatch import Signal

from instances import services as instance_services
from instances.models import Instance
from octoprovider import hetzner
from octoprovider.core import clock, guardrails
from octoprovider.core.exceptions import (
    Conflict,
    HetznerConflict,
    HetznerError,
    HetznerLocked,
    NotFound,
)
from octoprovider.core.reports import Outcome
from octoprovider.hetzner import catalog
from staticips import selectors
from staticips.models import AddressChange, Association, StaticIP

logger = logging.getLogger(__name__)

# Labels that tell our Primary IPs apart: static IPs, and servers' own IPv4s we took over or made.
LABEL_ROLE = "octoprovider-role"
ROLE_STATIC = "static-ip"
ROLE_SERVER_IPV4 = "server-ipv4"

# A step sent but whose effect is not seen after this long is sent again.
STEP_TIMEOUT = timedelta(seconds=120)
# A release Hetzner did not finish is retried after this long.
RELEASE_RETRY_AFTER = timedelta(seconds=30)

GONE = [Instance.Status.DELETING, Instance.Status.TERMINATED]

# Sent (inside the swap's transaction) when two static IPs exchange the Primary IPs they stand for:
# `first`, `second` (ipIds), `instance_id` (whose associate or release caused it), `reason`. The audit
# log, a layer above, records it.
static_ips_swapped = Signal()


def _get_static_ip(static_ip_id: str) -> StaticIP:
    try:
        return StaticIP.objects.get(pk=static_ip_id)
    except StaticIP.DoesNotExist:
        raise NotFound(f"No static IP {static_ip_id!r} was ever allocated here.") from None


def _get_instance(instance_id: str) -> Instance:
    try:
        return Instance.objects.get(pk=instance_id)
    except Instance.DoesNotExist:
        raise NotFound(f"No instance {instance_id!r} was ever created here.") from None


def ownership_labels(our_id: str, role: str) -> dict[str, str]:
    return {**hetzner.ownership_labels(our_id), LABEL_ROLE: role}


# --- allocate --------------------------------------------------------------------------------------


def static_ip_allocate(*, region: str, zone: str = "") -> StaticIP:
    """Allocate a Primary IPv4 in the region's location, kept when servers come and go."""
    location = catalog.location_for(region)
    guardrails.check_region_and_type(region=region, location=location)
    # Read before the lock: no transaction stays open across a Hetzner call (cached for an hour).
    prices = hetzner.hourly_prices() if guardrails.budgets_set() else None
    guardrails.measure_spend_ahead(prices)  # the month's rows, summed before the lock
    static_ip = _reserve_row(region=region, zone=zone, location=location, prices=prices)
    try:
        primary_ip = hetzner.create_primary_ip(
            name=static_ip.name,
            location=location,
            labels=ownership_labels(static_ip.id, ROLE_STATIC),
            auto_delete=False,
        )
    except HetznerError as exc:
        _record_allocate_failure(static_ip, exc)
        raise
    StaticIP.objects.filter(pk=static_ip.pk, status=StaticIP.Status.ALLOCATING).update(
        status=StaticIP.Status.ALLOCATED, hetzner_id=primary_ip.id, address=primary_ip.ip, observed_at=clock.now()
    )
    AddressChange.objects.create(
        static_ip=static_ip, address=primary_ip.ip, hetzner_id=primary_ip.id, reason="allocated"
    )
    logger.info("Allocated static IP %s as Hetzner Primary IP %s in %s", static_ip.id, primary_ip.id, location)
    static_ip.refresh_from_db()
    return static_ip


def _reserve_row(*, region: str, zone: str, location: str, prices: hetzner.Prices | None) -> StaticIP:
    """Create the allocating row, within MAX_STATIC_IPS and the budgets (checked under one lock)."""
    with guardrails.guarded("static-ips"):
        # Releasing ones still cost until Hetzner has deleted them.
        guardrails.check_count(
            name="MAX_STATIC_IPS",
            current=StaticIP.objects.exclude(status=StaticIP.Status.RELEASED).count(),
            limit=settings.MAX_STATIC_IPS,
            what="static IPs",
        )
        if prices is not None:
            guardrails.check_budgets(
                prices=prices,
                adding_per_hour=prices.ipv4(location) or Decimal(0),
                adding_monthly=prices.primary_ipv4_monthly.get(location),
                what=f"a static IPv4 in {location}",
                now=clock.now(),
            )
        return StaticIP.objects.create(region=region.strip().lower(), zone=zone, location=location)


def _record_allocate_failure(static_ip: StaticIP, exc: HetznerError) -> None:
    now = clock.now()
    allocating = StaticIP.objects.filter(pk=static_ip.pk, status=StaticIP.Status.ALLOCATING)
    if not hetzner.refused_without_effect(exc):
        # The answer was lost: the IP may exist. Nobody learns this id: release whatever appears.
        allocating.update(status=StaticIP.Status.RELEASING, release_requested_at=now, last_error=str(exc))
    else:
        allocating.update(status=StaticIP.Status.RELEASED, released_at=now, last_error=str(exc))


# --- a spare static IP for a new server ------------------------------------------------------------


def _lock_one_spare(location: str, *, exclude: list[str] = (), exclude_hetzner_ids: list[int] = ()) -> StaticIP | None:
    """Lock a spare static IP of the location, skipping the ones other transactions hold.

    Taking it (as a new server's IPv4, or in a swap) is then safe from a concurrent create, associate
    or release: they lock it too. SQLite has no row locks but runs one writing transaction at a time.
    Those with no holder first, then those whose holder went longest ago (Hetzner may still report an IP
    assigned for a moment after its server's delete), then the oldest.
    """
    candidates = (
        selectors.static_ips_spare()
        .filter(location=location)
        .exclude(pk__in=list(exclude))
        .exclude(hetzner_id__in=list(exclude_hetzner_ids))
        .order_by(F("holder__terminated_at").asc(nulls_first=True), "created_at")
    )
    for candidate in candidates.select_for_update(skip_locked=True, of=("self",))[:5]:
        # Row locks stop writers, not a read made before the lock: look again now that it is ours.
        if selectors.static_ips_spare().filter(pk=candidate.pk).exists():
            return candidate
    return None


class PreAttach:
    """Give a new server a spare static IP as its public IPv4 (`instances.services.PublicIPv4Source`)."""

    def take(self, *, instance: Instance, exclude: list[int]) -> int | None:
        """Take a spare static IP of the instance's location for it, making the instance its holder.

        None when there is none. With STATIC_IP_STRICT, a location that has static IPs but none spare
        refuses the create (409), so that no agent ever leaves from an address outside the allow-list.
        """
        static_ip = _lock_one_spare(instance.location, exclude_hetzner_ids=exclude)
        if static_ip is None:
            if settings.STATIC_IP_STRICT:
                live = StaticIP.objects.filter(location=instance.location, status__in=StaticIP.LIVE).count()
                if live:
                    raise Conflict(
                        f"None of the {live} static IPs in {instance.location} is spare (each is on a server or "
                        f"being moved); STATIC_IP_STRICT refuses a server without one. Allocate another static "
                        f"IP, or wait for one to be dissociated.",
                        code="no_free_static_ip",
                    )
            return None
        StaticIP.objects.filter(pk=static_ip.pk).update(holder=instance, holder_since=clock.now())
        logger.info("Instance %s gets static IP %s (%s) at create", instance.id, static_ip.id, static_ip.address)
        return static_ip.hetzner_id

    def give_back(self, *, instance: Instance) -> None:
        StaticIP.objects.filter(holder=instance).update(holder=None, holder_since=clock.now())


def _swap(a: StaticIP, b: StaticIP, *, instance_id: str, reason: str) -> None:
    """Exchange what two locked, allocated static IPs of one location stand for. No Hetzner call.

    The Primary IPs keep their names and labels (those of the ipId they were allocated for): the
    database, matching by Hetzner id, is what maps an ipId to its address.
    """
    # The steps of a bound row's move belong to the row, not to the address: swapping would send them
    # to another Primary IP and leave `holder` naming a server the address is no longer on.
    if selectors.static_ip_is_bound(a) or selectors.static_ip_is_bound(b):
        raise Conflict(f"Static IP {a.id} or {b.id} is being moved; try again.", code="busy")
    moved = ("hetzner_id", "address", "assignee_hetzner_id", "holder_id", "holder_since", "observed_at")
    of_a = {field: getattr(a, field) for field in moved}
    of_b = {field: getattr(b, field) for field in moved}
    StaticIP.objects.filter(pk=b.pk).update(hetzner_id=None)  # hetzner_id is unique
    StaticIP.objects.filter(pk=a.pk).update(**of_b)
    StaticIP.objects.filter(pk=b.pk).update(**of_a)
    for static_ip, now_of, other in ((a, of_b, b), (b, of_a, a)):
        for field, value in now_of.items():
            setattr(static_ip, field, value)
        AddressChange.objects.create(
            static_ip=static_ip,
            address=now_of["address"],
            hetzner_id=now_of["hetzner_id"],
            swapped_with=other,
            reason=reason[:200],
        )
    logger.info("Static IPs %s and %s swapped addresses (%s)", a.id, b.id, reason)
    # Inside the transaction: the audit row stands or falls with the swap.
    static_ips_swapped.send(sender=StaticIP, first=a.id, second=b.id, instance_id=instance_id, reason=reason)


def _vacate(static_ip: StaticIP, *, why: str) -> Association:
    """Start moving a free static IP off the live server that holds it (it got it at create): bind it.

    An internal dissociation: the holder is powered off, given its own IPv4 and powered on again.
    Never under STATIC_IP_STRICT (the callers refuse instead): the server would leave from an address
    outside the allow-list.
    """
    logger.info("Static IP %s moves off instance %s first (%s)", static_ip.id, static_ip.holder_id, why)
    instance_services.instance_note_power_cycle_ahead(instance_id=static_ip.holder_id)
    return Association.objects.create(
        static_ip=static_ip,
        instance_id=static_ip.holder_id,
        status=Association.Status.DISSOCIATING,
        internal=True,
        last_error=why[:200],
    )


# --- associate and dissociate ----------------------------------------------------------------------


# Attempts of an associate whose instance's held static IP changes between the read and the lock.
ASSOCIATE_ATTEMPTS = 3


def static_ip_associate(*, static_ip_id: str, instance_id: str, region: str, zone: str = "") -> Association:
    """Record that the static IP should be the instance's public IPv4; the reconciler makes it so.

    When the instance holds the address behind another unbound static IP, the two swap what they
    stand for and the association is done at once, with no Hetzner call. Associating the pair again
    answers the existing association, with no power cycle.
    """
    location = catalog.location_for(region)
    for _ in range(ASSOCIATE_ATTEMPTS):
        association = _associate_attempt(static_ip_id, instance_id, location)
        if association is not None:
            return association
    raise Conflict(f"Static IP {static_ip_id} and instance {instance_id} keep changing; try again.", code="busy")


def _associate_attempt(static_ip_id: str, instance_id: str, location: str) -> Association | None:
    """Associate under row locks; None when the instance's held static IP changed meanwhile (try again)."""
    # A static IP the instance holds may swap with this one, so both rows are locked, in one order (by
    # id), or two associates swapping the same pair the other way round deadlock. Which one it holds
    # is therefore read before the locks: a hint of what to lock, decided again under them.
    hint = selectors.static_ip_unbound_held_by(instance_id=instance_id, other_than=static_ip_id)
    try:
        with transaction.atomic():
            locked = _lock_static_ips([static_ip_id] + ([hint.pk] if hint else []))
            if static_ip_id not in locked:
                raise NotFound(f"No static IP {static_ip_id!r} exists here.")
            static_ip = locked[static_ip_id]
            instance = _locked(Instance, instance_id, "instance")
            existing = selectors.static_ip_use(static_ip_id=static_ip.pk)
            if (
                existing is not None
                and existing.instance_id == instance.pk
                and existing.status != Association.Status.DISSOCIATING
            ):
                return existing
            _check_associable(static_ip, instance, location, existing)
            held = selectors.static_ip_unbound_held_by(instance_id=instance.pk, other_than=static_ip.pk)
            if held is not None and held.pk not in locked:
                return None  # the hint was stale: the row to swap with is not locked
            return _associate(static_ip, instance, locked[held.pk] if held else None)
    except IntegrityError:
        # Another associate won the race between our check and our insert (one association in use per
        # IP and per instance is a database constraint).
        existing = selectors.static_ip_use(static_ip_id=static_ip_id)
        if existing is not None and existing.instance_id == instance_id:
            return existing
        raise Conflict(f"Static IP {static_ip_id} or instance {instance_id} was just associated elsewhere.") from None


def _lock_static_ips(ids: list[str]) -> dict[str, StaticIP]:
    return {row.pk: row for row in StaticIP.objects.select_for_update().filter(pk__in=ids).order_by("pk")}


def _associate(static_ip: StaticIP, instance: Instance, held: StaticIP | None) -> Association:
    """Decide how the association comes true, inside the transaction that locked both static IPs.

    `held` is the unbound static IP the instance holds, if any. The rule, cheapest first: no Hetzner
    call when the instance holds A (A's address is its server's), or holds B (A and B swap);
    otherwise only the instance OctoPerf named is power-cycled, onto A's address or, when A is held
    by another live server X (given at create), onto a spare's (A swaps with it). Without a spare, X
    must let go of A first: X is power-cycled onto an address of its own, outside the allow-list,
    which STATIC_IP_STRICT refuses (409 `static_ip_on_another_instance`). A bound A is never swapped:
    the association waits for that move instead.
    """
    now = clock.now()
    done = {"status": Association.Status.ASSOCIATED, "step": "", "step_done": True}
    unbound = static_ip.status == StaticIP.Status.ALLOCATED and not selectors.static_ip_is_bound(static_ip)
    if unbound and static_ip.holder_id == instance.pk:
        logger.info("Static IP %s is already instance %s's address: associated at once", static_ip.id, instance.id)
        return Association.objects.create(static_ip=static_ip, instance=instance, **done)
    if unbound and held is not None:
        # The server has B's address; OctoPerf wants A. Let A stand for that address and B for A's.
        _swap(
            static_ip,
            held,
            instance_id=instance.id,
            reason=f"associate {static_ip.id} with {instance.id}, which had {held.address}",
        )
        return Association.objects.create(static_ip=static_ip, instance=instance, **done)
    if unbound and selectors.static_ip_held_by_live_server(static_ip):
        # OctoPerf thinks A free, and it is, but another live server holds it. Swap A with a spare
        # when there is one; otherwise that server must let go of it (a power cycle) first.
        _off_its_live_holder(
            static_ip,
            for_instance=instance.id,
            doing=f"associating it with {instance.id}",
            swap_reason=f"associate {static_ip.id} with {instance.id}; its address stays on {static_ip.holder_id}",
            vacate_why=f"associated with {instance.id} at {now:%H:%M:%S}",
        )
    # The move power-cycles the instance: from this answer on, no poll may say `running` until it is over.
    instance_services.instance_note_power_cycle_ahead(instance_id=instance.pk)
    return Association.objects.create(static_ip=static_ip, instance=instance)


def _off_its_live_holder(
    static_ip: StaticIP, *, for_instance: str, doing: str, swap_reason: str, vacate_why: str
) -> None:
    """Take a free static IP off its live holder (it got it at create), disturbing that server only as a last resort.

    It swaps with a spare when there is one (the holder keeps its address, still allow-listed);
    otherwise the holder must be moved off it (a power cycle onto an address of its own), which
    STATIC_IP_STRICT refuses.
    """
    spare = _lock_one_spare(static_ip.location, exclude=[static_ip.pk])
    if spare is not None:
        _swap(static_ip, spare, instance_id=for_instance, reason=swap_reason)
    elif settings.STATIC_IP_STRICT:
        raise _strict_refusal(static_ip, doing)
    else:
        _vacate(static_ip, why=vacate_why)


def _strict_refusal(static_ip: StaticIP, doing: str) -> Conflict:
    return Conflict(
        f"Static IP {static_ip.id}'s address is the public IPv4 of live instance {static_ip.holder_id} "
        f"(given when it was created), and no static IP of {static_ip.location} is spare: {doing} would "
        f"power-cycle {static_ip.holder_id} onto an address outside the allow-list, which STATIC_IP_STRICT "
        f"refuses. Use another static IP, allocate one more, or wait until {static_ip.holder_id} is deleted.",
        code="static_ip_on_another_instance",
    )


def _locked(model, pk: str, what: str):
    try:
        return model.objects.select_for_update().get(pk=pk)
    except model.DoesNotExist:
        raise NotFound(f"No {what} {pk!r} exists here.") from None


def _check_associable(static_ip: StaticIP, instance: Instance, location: str, existing: Association | None) -> None:
    if static_ip.status not in StaticIP.LIVE:
        raise Conflict(f"Static IP {static_ip.id} is {static_ip.status}.", code="static_ip_released")
    if instance.status in GONE:
        raise Conflict(f"Instance {instance.id} is {instance.state}; it cannot take a static IP.", code="instance_gone")
    if static_ip.location != instance.location:
        raise Conflict(
            f"Static IP {static_ip.id} is in {static_ip.location} and instance {instance.id} in "
            f"{instance.location}: Hetzner assigns a Primary IP only within its location.",
            code="region_mismatch",
        )
    if location != static_ip.location:
        raise Conflict(
            f"Static IP {static_ip.id} is in {static_ip.location}, not in the region given ({location}).",
            code="region_mismatch",
        )
    if existing is not None:
        raise Conflict(
            f"Static IP {static_ip.id} is associated with instance {existing.instance_id}; dissociate it first.",
            code="static_ip_in_use",
        )
    its_use = selectors.instance_static_ip_use(instance_id=instance.pk)
    if its_use is not None:
        raise Conflict(
            f"Instance {instance.id} already uses static IP {its_use.static_ip_id}; a server has one IPv4.",
            code="instance_has_static_ip",
        )


def static_ip_dissociate(
    *, static_ip_id: str, instance_id: str, association_id: str = "", region: str = "", zone: str = ""
) -> Association | None:
    """End an association. With the instance gone this is bookkeeping (Hetzner unassigned the IP)."""
    if association_id:
        try:
            association = Association.objects.select_related("instance").get(pk=association_id)
        except Association.DoesNotExist:
            raise NotFound(f"No association {association_id!r} exists here.") from None
        if association.static_ip_id != static_ip_id or association.instance_id != instance_id:
            raise Conflict(
                f"Association {association.id} links {association.static_ip_id} with {association.instance_id}, "
                f"not {static_ip_id} with {instance_id}.",
                code="association_mismatch",
            )
    else:
        _get_static_ip(static_ip_id)
        _get_instance(instance_id)
        association = (
            Association.objects.select_related("instance")
            .filter(static_ip_id=static_ip_id, instance_id=instance_id, status__in=Association.ACTIVE)
            .first()
        )
        if association is None:
            return None
    with transaction.atomic():
        # The row lock makes the change stick whatever the reconciler claims meanwhile: its steps are
        # compare-and-set on `version`, so a step claimed before this commit finds the version moved
        # and the next pass decides from the new status. A 200 always means the dissociation happens.
        association = Association.objects.select_for_update().get(pk=association.pk)
        if association.status in (Association.Status.ENDED, Association.Status.DISSOCIATING):
            return association
        instance_status = Instance.objects.filter(pk=association.instance_id).values_list("status", flat=True).get()
        if instance_status in GONE:
            end_association(association, reason="instance terminated")
        else:
            # The step in flight, if any, stays recorded: the next step waits for its effect.
            Association.objects.filter(pk=association.pk).update(
                status=Association.Status.DISSOCIATING, version=F("version") + 1
            )
            instance_services.instance_note_power_cycle_ahead(instance_id=association.instance_id)
    association.refresh_from_db()
    return association


def end_association(association: Association, *, reason: str) -> bool:
    """End it by compare-and-set; the reconciler still deletes the IPv4 it took from the server, if any."""
    updated = (
        Association.objects.filter(pk=association.pk, version=association.version)
        .exclude(status=Association.Status.ENDED)
        .update(status=Association.Status.ENDED, ended_at=clock.now(), step="", version=F("version") + 1)
    )
    if updated:
        logger.info("Association %s ended (%s)", association.id, reason)
        association.version += 1
        power_cycle_over(association.instance_id, server_running=False)
    return updated == 1


def power_cycle_over(instance_id: str, *, server_running: bool) -> None:
    """Let the instance's state say `running` again, unless another move of a static IP still cycles it."""
    if not Association.objects.filter(instance_id=instance_id, status__in=Association.IN_FLIGHT).exists():
        instance_services.instance_note_power_cycle_over(instance_id=instance_id, server_running=server_running)


# --- release ---------------------------------------------------------------------------------------


def static_ip_release(*, static_ip_id: str, region: str = "", zone: str = "") -> StaticIP:
    """Delete the static IP's Primary IP. Idempotent; the reconciler finishes what Hetzner refuses now.

    A free static IP may be held by a live server (given at create): that server is never cut off.
    The ipId swaps with a spare when there is one (whose address is then deleted); otherwise the
    holder is given its own IPv4 first and the IP deleted after.
    """
    with transaction.atomic():
        static_ip = _locked(StaticIP, static_ip_id, "static IP")
        if static_ip.status == StaticIP.Status.RELEASED:
            return static_ip
        for association in Association.objects.filter(
            static_ip=static_ip, status__in=Association.ACTIVE, internal=False
        ).select_related("instance"):
            if association.instance.status in GONE:
                end_association(association, reason="static IP released")
            elif association.status != Association.Status.DISSOCIATING:
                raise Conflict(
                    f"Static IP {static_ip.id} is associated with instance {association.instance_id} "
                    f"({association.id}); dissociate it first.",
                    code="static_ip_in_use",
                )
            # Dissociating (OctoPerf's teardown order: dissociate, then release at once): the server's
            # power cycle is under way, and the end of that move sends the release.
        if (
            static_ip.status == StaticIP.Status.ALLOCATED
            and not selectors.static_ip_is_bound(static_ip)
            and selectors.static_ip_held_by_live_server(static_ip)
        ):
            _off_its_live_holder(
                static_ip,
                for_instance=static_ip.holder_id,
                doing="releasing it",
                swap_reason=f"release {static_ip.id}; its address stays on {static_ip.holder_id}",
                vacate_why="released while on a live server",
            )
        now = clock.now()
        StaticIP.objects.filter(pk=static_ip.pk).update(status=StaticIP.Status.RELEASING, release_requested_at=now)
        # Bound (by OctoPerf's dissociation, or by the move off its holder just started): the end of
        # that move sends the release.
        waits = selectors.static_ip_is_bound(static_ip)
    static_ip.refresh_from_db()
    if static_ip.hetzner_id is not None and not waits:
        release_at_hetzner(static_ip, assignee_id=static_ip.assignee_hetzner_id)
        static_ip.refresh_from_db()
    return static_ip


def release_at_hetzner(static_ip: StaticIP, *, assignee_id: int | None) -> Outcome:
    """Delete the Primary IP, unassigning it first when its server is gone or going; return the outcome.

    See `octoprovider.core.reports`: whatever held it back, the row stays releasing and the
    reconciler tries again. Left alone while a live server is being moved off it (a dissociation,
    OctoPerf's or internal): the end of that move sends the release.
    """
    if Association.objects.filter(static_ip=static_ip, status__in=Association.ACTIVE).exists():
        return Outcome.left_alone(f"a server is being moved off static IP {static_ip.id}; the move sends the release")
    try:
        if assignee_id is not None:
            hetzner.unassign_primary_ip(static_ip.hetzner_id)
        try:
            deleted = hetzner.delete_primary_ip(static_ip.hetzner_id)
        except HetznerConflict as exc:
            if exc.hetzner_code != "must_be_unassigned":
                raise
            # Right after a server delete Hetzner may still report the IP assigned: let go of it.
            hetzner.unassign_primary_ip(static_ip.hetzner_id)
            deleted = hetzner.delete_primary_ip(static_ip.hetzner_id)
    except HetznerLocked as exc:
        # The IP's server is busy (being deleted, powered off): that ends within seconds, so no
        # request time makes the next reconcile pass try again rather than RELEASE_RETRY_AFTER later.
        logger.info("Release of %s waits: another Hetzner action is running", static_ip.id)
        StaticIP.objects.filter(pk=static_ip.pk, status=StaticIP.Status.RELEASING).update(
            release_requested_at=None, last_error=exc.message
        )
        return Outcome.owed(exc)
    except HetznerError as exc:
        logger.info("Release of %s not done yet (%s); the reconciler retries it", static_ip.id, exc.message)
        StaticIP.objects.filter(pk=static_ip.pk).update(last_error=exc.message)
        return Outcome.failed(exc)
    if not deleted:
        # One `not_found` proves nothing while the IP may still bill: the reconciler's listing decides.
        logger.warning("Release of %s: Hetzner answered not found; the reconciler confirms", static_ip.id)
        StaticIP.objects.filter(pk=static_ip.pk).update(last_error="Hetzner answered not found to the delete")
        return Outcome.done("Hetzner answered not found; a listing confirms")
    StaticIP.objects.filter(pk=static_ip.pk, status=StaticIP.Status.RELEASING).update(
        status=StaticIP.Status.RELEASED, released_at=clock.now(), assignee_hetzner_id=None, last_error=""
    )
    logger.info("Released static IP %s", static_ip.id)
    return Outcome.done()


def static_ip_finish_release(*, static_ip_id: str, hetzner_id: int, assignee_id: int | None) -> Outcome:
    """Delete a releasing static IP's Primary IP now; return the outcome (see `octoprovider.core.reports`).

    For cleanup, the operator's last resort: `hetzner_id` and `assignee_id` are the Primary IP as
    just listed (an allocate whose request died never recorded its id). Left alone when no release
    is pending (any more).
    """
    static_ip = _get_static_ip(static_ip_id)
    if static_ip.status != StaticIP.Status.RELEASING:
        return Outcome.left_alone(f"static IP {static_ip.id} is {static_ip.status} now")
    if static_ip.hetzner_id is None:
        StaticIP.objects.filter(pk=static_ip.pk, hetzner_id__isnull=True).update(hetzner_id=hetzner_id)
        static_ip.refresh_from_db()
    return release_at_hetzner(static_ip, assignee_id=assignee_id)


def static_ip_mark_released(*, static_ip_id: str, reason: str, as_seen: StaticIP | None = None) -> bool:
    """Record that a static IP's Primary IP is gone (found by cleanup or an operator); end its associations.

    With `as_seen`, only while the row is as it was then (status, Primary IP, last observation): a
    swap or a newer observation since means the listing's news is stale, and nothing is done.
    """
    static_ip = _get_static_ip(static_ip_id)
    rows = StaticIP.objects.filter(pk=static_ip.pk).exclude(status=StaticIP.Status.RELEASED)
    if as_seen is not None:
        rows = rows.filter(status=as_seen.status, hetzner_id=as_seen.hetzner_id, observed_at=as_seen.observed_at)
    updated = rows.update(
        status=StaticIP.Status.RELEASED, released_at=clock.now(), assignee_hetzner_id=None, last_error=reason
    )
    if as_seen is not None and not updated:
        return False
    for association in Association.objects.filter(static_ip=static_ip, status__in=Association.ACTIVE):
        end_association(association, reason=reason)
    return updated == 1
