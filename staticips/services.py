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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q

from instances.models import Instance
from octoprovider import hetzner
from octoprovider.hetzner import catalog
from octoprovider.core import clock
from octoprovider.core import guardrails
from octoprovider.core.exceptions import (
    Conflict,
    HetznerConflict,
    HetznerError,
    NotFound,
)
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

_GONE = [Instance.Status.DELETING, Instance.Status.TERMINATED]


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


def _labels(our_id: str, role: str) -> dict[str, str]:
    return {**hetzner.ownership_labels(our_id), LABEL_ROLE: role}


# --- allocate --------------------------------------------------------------------------------------


def static_ip_allocate(*, region: str, zone: str = "") -> StaticIP:
    """Allocate a Primary IPv4 in the region's location, kept when servers come and go."""
    location = catalog.location_for(region)
    guardrails.check_region_and_type(region=region, location=location)
    with guardrails.guarded("static-ips"):
        # Releasing ones still cost until Hetzner has deleted them.
        guardrails.check_count(
            name="MAX_STATIC_IPS", current=StaticIP.objects.exclude(status=StaticIP.Status.RELEASED).count(),
            limit=settings.MAX_STATIC_IPS, what="static IPs",
        )
        static_ip = StaticIP.objects.create(region=region, zone=zone, location=location)
    try:
        primary_ip = hetzner.create_primary_ip(
            name=static_ip.name, location=location, labels=_labels(static_ip.id, ROLE_STATIC), auto_delete=False
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
    if instance.status in _GONE:
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
    if association.instance.status in _GONE:
        _end(association, reason="instance terminated")
    else:
        Association.objects.filter(pk=association.pk, version=association.version).update(
            status=Association.Status.DISSOCIATING, step="", step_at=None, version=F("version") + 1
        )
    association.refresh_from_db()
    return association


def _end(association: Association, *, reason: str) -> bool:
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
            if association.instance.status not in _GONE:
                raise Conflict(
                    f"Static IP {static_ip.id} is associated with instance {association.instance_id} "
                    f"({association.id}); dissociate it first.",
                    code="static_ip_in_use",
                )
            _end(association, reason="static IP released")
        now = clock.now()
        StaticIP.objects.filter(pk=static_ip.pk).update(status=StaticIP.Status.RELEASING, release_requested_at=now)
    static_ip.refresh_from_db()
    if static_ip.hetzner_id is not None:
        _release_at_hetzner(static_ip, assignee_id=static_ip.assignee_hetzner_id)
        static_ip.refresh_from_db()
    return static_ip


def _release_at_hetzner(static_ip: StaticIP, *, assignee_id: int | None) -> None:
    """Delete the Primary IP, unassigning it first when its server is gone or going."""
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
    except HetznerError as exc:
        logger.info("Release of %s not done yet (%s); the reconciler retries it", static_ip.id, exc.message)
        StaticIP.objects.filter(pk=static_ip.pk).update(last_error=exc.message)
        return
    StaticIP.objects.filter(pk=static_ip.pk, status=StaticIP.Status.RELEASING).update(
        status=StaticIP.Status.RELEASED, released_at=clock.now(), assignee_hetzner_id=None, last_error=""
    )
    logger.info("Released static IP %s (%s)", static_ip.id, "deleted" if deleted else "already gone")


def static_ip_mark_released(*, static_ip_id: str, reason: str) -> bool:
    """Record that a static IP's Primary IP is gone (found by cleanup or an operator); end its associations."""
    static_ip = _get_static_ip(static_ip_id)
    updated = StaticIP.objects.filter(pk=static_ip.pk).exclude(status=StaticIP.Status.RELEASED).update(
        status=StaticIP.Status.RELEASED, released_at=clock.now(), assignee_hetzner_id=None, last_error=reason
    )
    for association in Association.objects.filter(static_ip=static_ip, status__in=Association.ACTIVE):
        _end(association, reason=reason)
    return updated == 1


# --- reconcile -------------------------------------------------------------------------------------


@dataclass
class ReconcileReport:
    hetzner_calls: int = 0
    changed: int = 0
    actions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def associations_to_advance() -> list[Association]:
    """Snapshot the associations a pass works on: in flight, or left behind by an instance that is gone.

    Take it BEFORE observing Hetzner. A step is decided from an observation, and the observation must
    be newer than the last step the snapshot shows as sent and finished; a step another reconciler
    has claimed but not finished is waited for.
    """
    return list(
        Association.objects.filter(
            Q(status__in=Association.IN_FLIGHT) | Q(status__in=Association.ACTIVE, instance__status__in=_GONE)
        ).select_related("static_ip", "instance")
    )


def static_ips_reconcile(
    *, full: bool, servers: dict[str, hetzner.Server], associations: list[Association]
) -> ReconcileReport:
    """Record what Hetzner says of our Primary IPs and take every association one step further.

    `associations` is the snapshot taken before `servers` (the instances' servers, by our id) were
    observed; the Primary IPs are observed here, later still.
    """
    report = ReconcileReport()
    pending = list(StaticIP.objects.filter(status__in=[StaticIP.Status.ALLOCATING, StaticIP.Status.RELEASING]))
    if not (full or associations or pending):
        return report
    ips = hetzner.list_primary_ips(label_selector=hetzner.managed_selector())
    report.hetzner_calls += max(1, -(-len(ips) // 50))
    by_hetzner_id = {ip.id: ip for ip in ips}
    static_by_our_id = {ip.our_id: ip for ip in ips if ip.labels.get(LABEL_ROLE) == ROLE_STATIC}
    now = clock.now()

    rows = StaticIP.objects.exclude(status=StaticIP.Status.RELEASED) if full else pending
    for static_ip in rows:
        _observe_static_ip(static_ip, static_by_our_id.get(static_ip.id), now, report)

    for association in associations:
        association.static_ip.refresh_from_db()
        try:
            _advance(association, servers.get(association.instance_id), by_hetzner_id, now, report)
        except HetznerError as exc:
            report.errors.append(f"{association.id}: {exc.message}")
    return report


def _observe_static_ip(static_ip: StaticIP, primary_ip: hetzner.PrimaryIP | None, now, report) -> None:
    Status = StaticIP.Status
    grace_over = static_ip.created_at < now - timedelta(seconds=settings.CREATE_GRACE)
    if static_ip.status == Status.ALLOCATING:
        if not grace_over:
            return  # its request is still running and records the outcome itself
        # The request died before recording the IP: nobody learned this ipId. Release what exists.
        if StaticIP.objects.filter(pk=static_ip.pk, status=Status.ALLOCATING).update(
            status=Status.RELEASING if primary_ip else Status.RELEASED,
            release_requested_at=None, released_at=None if primary_ip else now, last_error="allocate abandoned",
        ):
            report.changed += 1
            static_ip.status = Status.RELEASING if primary_ip else Status.RELEASED
            static_ip.release_requested_at = None
        if primary_ip is None:
            return
    if primary_ip is not None:
        fields = {"hetzner_id": primary_ip.id, "address": primary_ip.ip,
                  "assignee_hetzner_id": primary_ip.assignee_id, "observed_at": now}
        StaticIP.objects.filter(pk=static_ip.pk, status=static_ip.status).update(**fields)
        if static_ip.status == Status.RELEASING:
            retry_due = static_ip.release_requested_at is None or static_ip.release_requested_at < now - RELEASE_RETRY_AFTER
            # The release_requested_at compare-and-set lets one reconciler at a time retry the release.
            if static_ip.hetzner_id is None or retry_due:
                claimed = StaticIP.objects.filter(
                    pk=static_ip.pk, release_requested_at=static_ip.release_requested_at
                ).update(release_requested_at=now, hetzner_id=primary_ip.id)
                if claimed:
                    static_ip.hetzner_id = primary_ip.id
                    report.actions.append(f"release {static_ip.id}")
                    _release_at_hetzner(static_ip, assignee_id=primary_ip.assignee_id)
        return

    if static_ip.hetzner_id is not None or grace_over:
        # Gone from Hetzner: released by us, deleted outside octoprovider, or never created.
        if StaticIP.objects.filter(pk=static_ip.pk, status=static_ip.status).update(
            status=Status.RELEASED, released_at=now, assignee_hetzner_id=None
        ):
            report.changed += 1
            if static_ip.status == Status.ALLOCATED:
                logger.warning("Static IP %s vanished from Hetzner; its associations end", static_ip.id)
            for association in Association.objects.filter(static_ip=static_ip, status__in=Association.ACTIVE):
                _end(association, reason="static IP vanished")


Step = tuple[str, Callable[[], object], dict]
DONE = "done"


def _advance(association: Association, server: hetzner.Server | None, ips: dict[int, hetzner.PrimaryIP], now,
             report: ReconcileReport) -> None:
    if association.instance.status in _GONE or association.static_ip.status not in StaticIP.LIVE:
        # Hetzner unassigns a Primary IP when its server is deleted: nothing left to do there,
        # but an IPv4 we took from the server must not stay behind, billed.
        if _end(association, reason="instance or static IP gone"):
            _delete_replaced_ip(association, ips, report)
        return
    static = ips.get(association.static_ip.hetzner_id) if association.static_ip.hetzner_id else None
    if server is None or static is None:
        return  # not created yet, or not observed in this pass
    if association.step and not association.step_done and association.step_at > now - STEP_TIMEOUT:
        return  # another reconciler is sending a step right now: what we observed may predate it
    if association.status == Association.Status.ASSOCIATING:
        step = _next_associate_step(association, server, static, ips)
    else:
        step = _next_dissociate_step(association, server, static)
    if step is None:
        return
    if step == DONE:
        final = Association.Status.ASSOCIATED if association.status == Association.Status.ASSOCIATING else Association.Status.ENDED
        extra = {"ended_at": now} if final == Association.Status.ENDED else {}
        if Association.objects.filter(pk=association.pk, version=association.version).update(
            status=final, step="", step_at=None, step_done=True, version=F("version") + 1, last_error="", **extra
        ):
            report.changed += 1
            logger.info("Association %s is %s", association.id, final)
        return
    _run_step(association, step, now, report)


def _power_cycle_step(server: hetzner.Server) -> Step | None:
    """Power the server off when it is up; wait while it is on its way."""
    if server.status in ("running", "starting", "initializing"):
        return ("poweroff", lambda: hetzner.power_off(server.id), {})
    return None


def _next_associate_step(association: Association, server: hetzner.Server, static: hetzner.PrimaryIP,
                         ips: dict[int, hetzner.PrimaryIP]) -> Step | str | None:
    if static.assignee_id == server.id:
        if server.status == "off":
            return ("poweron", lambda: hetzner.power_on(server.id), {})
        return DONE if server.status == "running" else None
    if static.assignee_id is not None:
        return None  # still held by a server being deleted: Hetzner lets go of it shortly
    if server.status != "off":
        return _power_cycle_step(server)
    if server.public_ipv4_id is not None:
        own = ips.get(server.public_ipv4_id)
        if own is None:
            # The server's own IPv4 carries no label of ours: claim it first, so that nothing acts
            # on an unlabelled resource and a crash after the unassign leaves it findable.
            labels = _labels(association.instance_id, ROLE_SERVER_IPV4)
            return ("label_own_ipv4", lambda: hetzner.label_primary_ip(server.public_ipv4_id, labels),
                    {"replaced_hetzner_ip_id": server.public_ipv4_id})
        return ("unassign_own_ipv4", lambda: hetzner.unassign_primary_ip(own.id),
                {"replaced_hetzner_ip_id": own.id if own.labels.get(LABEL_ROLE) == ROLE_SERVER_IPV4 else None})
    replaced = ips.get(association.replaced_hetzner_ip_id) if association.replaced_hetzner_ip_id else None
    if replaced is not None and replaced.assignee_id is None and replaced.labels.get(LABEL_ROLE) == ROLE_SERVER_IPV4:
        # An unassigned IP is still billed.
        return ("delete_own_ipv4", lambda: hetzner.delete_primary_ip(replaced.id), {})
    return ("assign", lambda: hetzner.assign_primary_ip(static.id, server.id), {})


def _next_dissociate_step(association: Association, server: hetzner.Server,
                          static: hetzner.PrimaryIP) -> Step | str | None:
    if static.assignee_id == server.id:
        if server.status != "off":
            return _power_cycle_step(server)
        return ("unassign", lambda: hetzner.unassign_primary_ip(static.id), {})
    if server.public_ipv4_id is None:
        if server.status != "off":
            return _power_cycle_step(server)
        labels = _labels(association.instance_id, ROLE_SERVER_IPV4)
        return ("create_own_ipv4", lambda: hetzner.create_primary_ip(
            name=f"octoperf-{association.id}-ipv4", labels=labels, assignee_id=server.id, auto_delete=True), {})
    if server.status == "off":
        return ("poweron", lambda: hetzner.power_on(server.id), {})
    return DONE if server.status == "running" else None


def _run_step(association: Association, step: Step, now, report: ReconcileReport) -> None:
    """Send one step's Hetzner mutation, once: the version compare-and-set elects one reconciler."""
    name, call, fields = step
    if association.step == name and association.step_at and association.step_at > now - STEP_TIMEOUT:
        return  # sent already; its effect is not visible yet
    claimed = Association.objects.filter(pk=association.pk, version=association.version).update(
        step=name, step_at=now, step_done=False, version=F("version") + 1,
        **{k: v for k, v in fields.items() if v is not None},
    )
    if not claimed:
        return  # another reconciler took this step
    report.actions.append(f"{association.id}: {name}")
    if name == "poweroff":
        Instance.objects.filter(pk=association.instance_id, status=Instance.Status.RUNNING).update(
            status=Instance.Status.STOPPING
        )
    try:
        call()
    except HetznerError as exc:
        # `locked`, `server_not_stopped` and outages are waited out: forget the step so that the
        # next pass decides again from what it sees.
        Association.objects.filter(pk=association.pk, version=association.version + 1).update(
            step="", step_at=None, step_done=True, last_error=exc.message
        )
        logger.info("Association %s: %s not done yet (%s)", association.id, name, exc.message)
        return
    Association.objects.filter(pk=association.pk, version=association.version + 1).update(step_done=True)
    logger.info("Association %s: %s sent", association.id, name)


def _delete_replaced_ip(association: Association, ips: dict[int, hetzner.PrimaryIP], report: ReconcileReport) -> None:
    replaced = ips.get(association.replaced_hetzner_ip_id) if association.replaced_hetzner_ip_id else None
    if replaced is None or replaced.assignee_id is not None or replaced.labels.get(LABEL_ROLE) != ROLE_SERVER_IPV4:
        return
    report.actions.append(f"{association.id}: delete_own_ipv4")
    try:
        hetzner.delete_primary_ip(replaced.id)
    except HetznerError as exc:
        report.errors.append(f"{association.id}: delete of replaced IPv4 {replaced.id}: {exc.message}")
