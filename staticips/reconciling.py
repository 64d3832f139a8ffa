"""Carrying static IPs out step by step: the reconciler's half of `staticips`.

Each pass observes the Primary IPs, records what it sees, and takes every association in flight one
step further, deciding the step from what Hetzner shows (see `staticips.services` for the steps).
"""

import logging
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q

from instances import services as instance_services
from octoprovider import hetzner
from octoprovider.core import clock
from octoprovider.core.exceptions import HetznerError, HetznerLocked
from octoprovider.core.reports import PassReport
from staticips.models import Association, StaticIP
from staticips.services import (
    GONE,
    LABEL_ROLE,
    RELEASE_RETRY_AFTER,
    ROLE_SERVER_IPV4,
    ROLE_STATIC,
    STEP_TIMEOUT,
    end_association,
    ownership_labels,
    release_at_hetzner,
)

logger = logging.getLogger(__name__)


def associations_to_advance() -> list[Association]:
    """Snapshot the associations a pass works on: in flight, or left behind by an instance that is gone.

    Take it BEFORE observing Hetzner. A step is decided from an observation, and the observation must
    be newer than the last step the snapshot shows as sent and finished; a step another reconciler
    has claimed but not finished is waited for.
    """
    return list(
        Association.objects.filter(
            Q(status__in=Association.IN_FLIGHT) | Q(status__in=Association.ACTIVE, instance__status__in=GONE)
        ).select_related("static_ip", "instance")
    )


def static_ips_reconcile(*, full: bool, associations: list[Association], report: PassReport) -> PassReport:
    """Record what Hetzner says of our Primary IPs and take every association one step further.

    `associations` is the snapshot taken before `report.servers` (the instances' servers, by our id)
    were observed; the Primary IPs are observed here, later still. Adds to `report`.
    """
    servers = report.servers
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
    if full:
        _delete_orphans(ips, now, report)
    return report


def _delete_orphans(ips: list[hetzner.PrimaryIP], now, report: PassReport) -> None:
    """Delete the Primary IPs of ours that no live row owns: they bill for nothing.

    A static IP under a released row was made by a create that reached Hetzner after its row gave
    up on it (answered late, after the client timed out). One with no row at all, or a server's own
    IPv4 left unassigned that no association is about to delete, is waited for CREATE_GRACE first,
    as the servers of creates in flight are.
    """
    grace_over = now - timedelta(seconds=settings.CREATE_GRACE)
    ours = [ip for ip in ips if ip.our_id]
    rows = dict(StaticIP.objects.filter(pk__in=[ip.our_id for ip in ours]).values_list("pk", "status"))
    needed = set(
        Association.objects.filter(status__in=Association.ACTIVE, replaced_hetzner_ip_id__isnull=False)
        .values_list("replaced_hetzner_ip_id", flat=True)
    )
    for ip in ours:
        role = ip.labels.get(LABEL_ROLE)
        old = ip.created is None or ip.created < grace_over
        if role == ROLE_STATIC and rows.get(ip.our_id) == StaticIP.Status.RELEASED:
            why = f"its static IP {ip.our_id} is released"
        elif role == ROLE_STATIC and ip.our_id not in rows and old:
            why = "no static IP row owns it"
        elif role == ROLE_SERVER_IPV4 and ip.assignee_id is None and ip.id not in needed and old:
            why = "a server's own IPv4, unassigned, that no association needs"
        else:
            continue
        logger.warning("Deleting Primary IP %s (%s): %s", ip.id, ip.our_id, why)
        report.actions.append(f"delete orphan primary IP {ip.id}")
        try:
            hetzner.delete_primary_ip(ip.id)
        except HetznerError as exc:
            report.errors.append(f"delete of orphan primary IP {ip.id}: {exc.message}")


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
                    error = release_at_hetzner(static_ip, assignee_id=primary_ip.assignee_id)
                    if isinstance(error, HetznerLocked):
                        report.locked.append(f"release {static_ip.id}")
                    elif error is not None:
                        report.errors.append(f"release {static_ip.id}: {error.message}")
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
                end_association(association, reason="static IP vanished")


Step = tuple[str, Callable[[], object], dict]
DONE = "done"


def _advance(association: Association, server: hetzner.Server | None, ips: dict[int, hetzner.PrimaryIP], now,
             report: PassReport) -> None:
    if association.instance.status in GONE or association.static_ip.status not in StaticIP.LIVE:
        # Hetzner unassigns a Primary IP when its server is deleted: nothing left to do there,
        # but an IPv4 we took from the server must not stay behind, billed.
        if end_association(association, reason="instance or static IP gone"):
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
            labels = ownership_labels(association.instance_id, ROLE_SERVER_IPV4)
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
        labels = ownership_labels(association.instance_id, ROLE_SERVER_IPV4)
        return ("create_own_ipv4", lambda: hetzner.create_primary_ip(
            name=f"octoperf-{association.id}-ipv4", labels=labels, assignee_id=server.id, auto_delete=True), {})
    if server.status == "off":
        return ("poweron", lambda: hetzner.power_on(server.id), {})
    return DONE if server.status == "running" else None


def _run_step(association: Association, step: Step, now, report: PassReport) -> None:
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
        instance_services.instance_note_power_off(instance_id=association.instance_id)
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


def _delete_replaced_ip(association: Association, ips: dict[int, hetzner.PrimaryIP], report: PassReport) -> None:
    replaced = ips.get(association.replaced_hetzner_ip_id) if association.replaced_hetzner_ip_id else None
    if replaced is None or replaced.assignee_id is not None or replaced.labels.get(LABEL_ROLE) != ROLE_SERVER_IPV4:
        return
    report.actions.append(f"{association.id}: delete_own_ipv4")
    try:
        hetzner.delete_primary_ip(replaced.id)
    except HetznerError as exc:
        report.errors.append(f"{association.id}: delete of replaced IPv4 {replaced.id}: {exc.message}")
