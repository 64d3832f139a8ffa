"""Static IPs: Hetzner Primary IPv4s, and the multi-step work of moving them between servers.

Hetzner assigns and unassigns a Primary IP only while its server is off, and a server holds at most
one IPv4. So the contract's associate and dissociate answer at once, after recording what is wanted,
and the reconciler carries the work out one step per pass, deciding each step from what it observes
at Hetzner (level-triggered): a crash at any point is picked up where Hetzner actually is.

Associate:  power off -> label the server's own IPv4 as ours -> unassign it -> delete it
            -> assign the static IP -> power on.
Dissociate: power off -> unassign the static IP -> give the server a fresh auto-deleting IPv4
            -> power on (its agent must keep reaching OctoPerf).
"""

import logging
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

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
from octoprovider.hetzner import catalog
from staticips.models import Association, StaticIP

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
    with guardrails.guarded("static-ips"):
        # Releasing ones still cost until Hetzner has deleted them.
        guardrails.check_count(
            name="MAX_STATIC_IPS", current=StaticIP.objects.exclude(status=StaticIP.Status.RELEASED).count(),
            limit=settings.MAX_STATIC_IPS, what="static IPs",
        )
        if prices is not None:
            guardrails.check_budgets(
                prices=prices, adding_per_hour=prices.ipv4(location) or Decimal(0),
                adding_monthly=prices.primary_ipv4_monthly.get(location),
                what=f"a static IPv4 in {location}", now=clock.now(),
            )
        static_ip = StaticIP.objects.create(region=region.strip().lower(), zone=zone, location=location)
    try:
        primary_ip = hetzner.create_primary_ip(
            name=static_ip.name, location=location, labels=ownership_labels(static_ip.id, ROLE_STATIC), auto_delete=False
        )
    except HetznerError as exc:
        now = clock.now()
        if not hetzner.refused_without_effect(exc):
            # The answer was lost: the IP may exist. Nobody learns this id: release whatever appears.
            StaticIP.objects.filter(pk=static_ip.pk, status=StaticIP.Status.ALLOCATING).update(
                status=StaticIP.Status.RELEASING, release_requested_at=now, last_error=str(exc)
            )
        else:
            StaticIP.objects.filter(pk=static_ip.pk, status=StaticIP.Status.ALLOCATING).update(
                status=StaticIP.Status.RELEASED, released_at=now, last_error=str(exc)
            )
        raise
    StaticIP.objects.filter(pk=static_ip.pk, status=StaticIP.Status.ALLOCATING).update(
        status=StaticIP.Status.ALLOCATED, hetzner_id=primary_ip.id, address=primary_ip.ip, observed_at=clock.now()
    )
    logger.info("Allocated static IP %s as Hetzner Primary IP %s in %s", static_ip.id, primary_ip.id, location)
    static_ip.refresh_from_db()
    return static_ip


def location_holds_static_ips(location: str) -> bool:
    """Tell whether static IPs exist in a location (its instances must then stay there to take them)."""
    return StaticIP.objects.filter(location=location).exclude(status=StaticIP.Status.RELEASED).exists()


# --- associate and dissociate ----------------------------------------------------------------------


def static_ip_associate(*, static_ip_id: str, instance_id: str, region: str, zone: str = "") -> Association:
    """Record that the static IP should be the instance's public IPv4; the reconciler makes it so.

    Associating the pair again answers the existing association, with no power cycle.
    """
    location = catalog.location_for(region)
    try:
        with transaction.atomic():
            # Row locks serialise this with release and with another associate of the same IP.
            static_ip = _locked(StaticIP, static_ip_id, "static IP")
            instance = _locked(Instance, instance_id, "instance")
            existing = _active_association(static_ip=static_ip)
            if existing is not None and existing.instance_id == instance.pk and existing.status != Association.Status.DISSOCIATING:
                return existing
            _check_associable(static_ip, instance, location, existing)
            return Association.objects.create(static_ip=static_ip, instance=instance)
    except IntegrityError:
        # Another associate won the race between our check and our insert (one live association
        # per IP and per instance is a database constraint).
        existing = _active_association(static_ip_id=static_ip_id)
        if existing is not None and existing.instance_id == instance_id:
            return existing
        raise Conflict(f"Static IP {static_ip_id} or instance {instance_id} was just associated elsewhere.") from None


def _locked(model, pk: str, what: str):
    try:
        return model.objects.select_for_update().get(pk=pk)
    except model.DoesNotExist:
        raise NotFound(f"No {what} {pk!r} exists here.") from None


def _active_association(*, static_ip=None, static_ip_id=None) -> Association | None:
    return (
        Association.objects.filter(static_ip_id=static_ip_id or static_ip.pk, status__in=Association.ACTIVE)
        .first()
    )


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
    held = Association.objects.filter(instance=instance, status__in=Association.ACTIVE).first()
    if held is not None:
        raise Conflict(
            f"Instance {instance.id} already holds static IP {held.static_ip_id}; a server has one IPv4.",
            code="instance_has_static_ip",
        )


def static_ip_dissociate(*, static_ip_id: str, instance_id: str, association_id: str = "", region: str = "",
                         zone: str = "") -> Association | None:
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
    if association.status in (Association.Status.ENDED, Association.Status.DISSOCIATING):
        return association
    if association.instance.status in GONE:
        end_association(association, reason="instance terminated")
    else:
        Association.objects.filter(pk=association.pk, version=association.version).update(
            status=Association.Status.DISSOCIATING, step="", step_at=None, version=F("version") + 1
        )
    association.refresh_from_db()
    return association


def end_association(association: Association, *, reason: str) -> bool:
    updated = Association.objects.filter(pk=association.pk, version=association.version).exclude(
        status=Association.Status.ENDED
    ).update(status=Association.Status.ENDED, ended_at=clock.now(), step="", version=F("version") + 1)
    if updated:
        logger.info("Association %s ended (%s)", association.id, reason)
        association.version += 1
    return updated == 1


# --- release ---------------------------------------------------------------------------------------


def static_ip_release(*, static_ip_id: str, region: str = "", zone: str = "") -> StaticIP:
    """Delete the static IP's Primary IP. Idempotent; the reconciler finishes what Hetzner refuses now."""
    with transaction.atomic():
        static_ip = _locked(StaticIP, static_ip_id, "static IP")
        if static_ip.status == StaticIP.Status.RELEASED:
            return static_ip
        for association in Association.objects.filter(static_ip=static_ip, status__in=Association.ACTIVE).select_related("instance"):
            if association.instance.status not in GONE:
                raise Conflict(
                    f"Static IP {static_ip.id} is associated with instance {association.instance_id} "
                    f"({association.id}); dissociate it first.",
                    code="static_ip_in_use",
                )
            end_association(association, reason="static IP released")
        now = clock.now()
        StaticIP.objects.filter(pk=static_ip.pk).update(status=StaticIP.Status.RELEASING, release_requested_at=now)
    static_ip.refresh_from_db()
    if static_ip.hetzner_id is not None:
        release_at_hetzner(static_ip, assignee_id=static_ip.assignee_hetzner_id)
        static_ip.refresh_from_db()
    return static_ip


def release_at_hetzner(static_ip: StaticIP, *, assignee_id: int | None) -> HetznerError | None:
    """Delete the Primary IP, unassigning it first when its server is gone or going.

    Return what held the release back (the reconciler tries again), or None.
    """
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
        return exc
    except HetznerError as exc:
        logger.info("Release of %s not done yet (%s); the reconciler retries it", static_ip.id, exc.message)
        StaticIP.objects.filter(pk=static_ip.pk).update(last_error=exc.message)
        return exc
    if not deleted:
        # One `not_found` proves nothing while the IP may still bill: the reconciler's listing decides.
        logger.warning("Release of %s: Hetzner answered not found; the reconciler confirms", static_ip.id)
        StaticIP.objects.filter(pk=static_ip.pk).update(last_error="Hetzner answered not found to the delete")
        return None
    StaticIP.objects.filter(pk=static_ip.pk, status=StaticIP.Status.RELEASING).update(
        status=StaticIP.Status.RELEASED, released_at=clock.now(), assignee_hetzner_id=None, last_error=""
    )
    logger.info("Released static IP %s", static_ip.id)
    return None


def static_ip_finish_release(*, static_ip_id: str, hetzner_id: int, assignee_id: int | None) -> bool:
    """Delete a releasing static IP's Primary IP now; raise what Hetzner answered if it did not.

    For cleanup, the operator's last resort: `hetzner_id` and `assignee_id` are the Primary IP as
    just listed (an allocate whose request died never recorded its id). Return False when no release
    is pending.
    """
    static_ip = _get_static_ip(static_ip_id)
    if static_ip.status != StaticIP.Status.RELEASING:
        return False
    if static_ip.hetzner_id is None:
        StaticIP.objects.filter(pk=static_ip.pk, hetzner_id__isnull=True).update(hetzner_id=hetzner_id)
        static_ip.refresh_from_db()
    error = release_at_hetzner(static_ip, assignee_id=assignee_id)
    if error is not None:
        raise error
    return True


def static_ip_mark_released(*, static_ip_id: str, reason: str) -> bool:
    """Record that a static IP's Primary IP is gone (found by cleanup or an operator); end its associations."""
    static_ip = _get_static_ip(static_ip_id)
    updated = StaticIP.objects.filter(pk=static_ip.pk).exclude(status=StaticIP.Status.RELEASED).update(
        status=StaticIP.Status.RELEASED, released_at=clock.now(), assignee_hetzner_id=None, last_error=reason
    )
    for association in Association.objects.filter(static_ip=static_ip, status__in=Association.ACTIVE):
        end_association(association, reason=reason)
    return updated == 1
