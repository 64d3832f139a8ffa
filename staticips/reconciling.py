"""Carrying static IPs out step by step: the reconciler's half of `staticips`.

Each pass observes the Primary IPs, records what it sees, and takes every association in flight one
step further, deciding the step from what Hetzner shows (see `staticips.services` for the steps).
"""

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q

from instances import services as instance_services
from instances.models import Instance
from octoprovider import hetzner
from octoprovider.core import clock
from octoprovider.core.exceptions import HetznerError
from octoprovider.core.reports import PassReport
from staticips import selectors
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
    power_cycle_over,
    release_at_hetzner,
)

logger = logging.getLogger(__name__)


def associations_to_advance() -> list[Association]:
    """Snapshot the associations a pass works on: in flight, left behind by an instance that is gone,
    or ended with the server's own IPv4 still to delete.

    Take it BEFORE observing Hetzner. A step is decided from an observation, and the observation must
    be newer than the last step the snapshot shows as sent and finished; a step another reconciler
    has claimed but not finished is waited for.
    """
    return list(
        Association.objects.filter(
            Q(status__in=Association.IN_FLIGHT)
            | Q(status__in=Association.ACTIVE, instance__status__in=GONE)
            | Q(status=Association.Status.ENDED, replaced_hetzner_ip_id__isnull=False)
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
    # What the listing shows is as old as the moment it was asked for: a row written after that
    # moment may be missing from it without being gone.
    listed_at = clock.now()
    ips = hetzner.list_primary_ips(label_selector=hetzner.managed_selector())
    report.hetzner_calls += max(1, -(-len(ips) // 50))
    by_hetzner_id = {ip.id: ip for ip in ips}
    # Labels name the ipId an IP was allocated for; swaps move ipIds between IPs, so a row with a
    # Hetzner id is matched by it, and only a row still allocating by its label.
    static_by_label = {ip.our_id: ip for ip in ips if ip.labels.get(LABEL_ROLE) == ROLE_STATIC}
    now = clock.now()

    rows = StaticIP.objects.exclude(status=StaticIP.Status.RELEASED) if full else pending
    for static_ip in rows:
        seen = by_hetzner_id.get(static_ip.hetzner_id) if static_ip.hetzner_id else static_by_label.get(static_ip.id)
        _observe_static_ip(static_ip, seen, listed_at, report)

    for association in associations:
        association.static_ip.refresh_from_db()
        try:
            if association.status == Association.Status.ENDED:
                _settle_replaced_ip(association, servers.get(association.instance_id), by_hetzner_id, report)
            else:
                _advance(association, servers.get(association.instance_id), by_hetzner_id, now, report)
        except HetznerError as exc:
            report.errors.append(f"{association.id}: {exc.message}")
    if full:
        _delete_orphans(ips, now, report)
    return report


def _delete_orphans(ips: list[hetzner.PrimaryIP], now, report: PassReport) -> None:
    """Delete the Primary IPs of ours that no live row owns: they bill for nothing.

    Ownership is by Hetzner id: a swap leaves an IP labelled with the ipId it was allocated for while
    another ipId stands for it, so a released label says nothing. A static IP no live row owns, its
    label's row released, was made by a create that reached Hetzner after its row gave up on it
    (answered late). One with no row at all, or a server's own IPv4 left unassigned that no association
    is taking care of, is waited for CREATE_GRACE first, as the servers of creates in flight are.
    """
    grace_over = now - timedelta(seconds=settings.CREATE_GRACE)
    ours = [ip for ip in ips if ip.our_id]
    live = StaticIP.objects.exclude(status=StaticIP.Status.RELEASED)
    owned = set(live.exclude(hetzner_id=None).values_list("hetzner_id", flat=True))
    rows = dict(StaticIP.objects.filter(pk__in=[ip.our_id for ip in ours]).values_list("pk", "status"))
    # An association that took a server's own IPv4 puts it back or deletes it itself, ended or not.
    needed = set(
        Association.objects.filter(replaced_hetzner_ip_id__isnull=False).values_list(
            "replaced_hetzner_ip_id", flat=True
        )
    )
    for ip in ours:
        role = ip.labels.get(LABEL_ROLE)
        old = ip.created is None or ip.created < grace_over
        if ip.id in owned or ip.id in needed:
            continue
        if role == ROLE_STATIC and rows.get(ip.our_id) == StaticIP.Status.RELEASED:
            why = f"no live static IP owns it (its label's {ip.our_id} is released)"
        elif role == ROLE_STATIC and ip.our_id not in rows and old:
            why = "no static IP row owns it"
        elif role == ROLE_SERVER_IPV4 and ip.assignee_id is None and old:
            why = "a server's own IPv4, unassigned, that no association needs"
        else:
            continue
        logger.warning("Deleting Primary IP %s (%s): %s", ip.id, ip.our_id, why)
        report.leaks.append(f"primary IP {ip.id} ({ip.ip} in {ip.location}): {why}, deleted")
        report.actions.append(f"delete orphan primary IP {ip.id}")
        try:
            hetzner.delete_primary_ip(ip.id)
        except HetznerError as exc:
            report.errors.append(f"delete of orphan primary IP {ip.id}: {exc.message}")


def _observe_static_ip(static_ip: StaticIP, primary_ip: hetzner.PrimaryIP | None, now, report) -> None:
    """Record one row's Primary IP as the listing asked for at `now` showed it (None: not in it)."""
    Status = StaticIP.Status
    if static_ip.status == Status.ALLOCATING and not _settle_allocating(static_ip, primary_ip, now, report):
        return
    if primary_ip is not None:
        fields = {
            "hetzner_id": primary_ip.id,
            "address": primary_ip.ip,
            "assignee_hetzner_id": primary_ip.assignee_id,
            "observed_at": now,
        }
        # Not over a swap made since the row was read (it would be another IP's news).
        if (
            StaticIP.objects.filter(pk=static_ip.pk, status=static_ip.status, hetzner_id=static_ip.hetzner_id).update(
                **fields
            )
            and static_ip.status == Status.ALLOCATED
        ):
            _follow_holder(static_ip, primary_ip, now)
        if static_ip.status == Status.RELEASING:
            if selectors.static_ip_is_bound(static_ip):
                return  # its holder is being moved off it first; the end of that move sends the release
            retry_due = (
                static_ip.release_requested_at is None or static_ip.release_requested_at < now - RELEASE_RETRY_AFTER
            )
            # The release_requested_at compare-and-set lets one reconciler at a time retry the release.
            if static_ip.hetzner_id is None or retry_due:
                claimed = StaticIP.objects.filter(
                    pk=static_ip.pk, release_requested_at=static_ip.release_requested_at
                ).update(release_requested_at=now, hetzner_id=primary_ip.id)
                if claimed:
                    static_ip.hetzner_id = primary_ip.id
                    report.actions.append(f"release {static_ip.id}")
                    report.note(
                        f"release {static_ip.id}", release_at_hetzner(static_ip, assignee_id=primary_ip.assignee_id)
                    )
        return

    if static_ip.hetzner_id is not None or _past_create_grace(static_ip, now):
        _record_vanished(static_ip, now, report)


def _past_create_grace(static_ip: StaticIP, now) -> bool:
    return static_ip.created_at < now - timedelta(seconds=settings.CREATE_GRACE)


def _settle_allocating(static_ip: StaticIP, primary_ip: hetzner.PrimaryIP | None, now, report: PassReport) -> bool:
    """Give up on an allocate whose request died; return whether the listed Primary IP is still to record."""
    Status = StaticIP.Status
    if not _past_create_grace(static_ip, now):
        return False  # its request is still running and records the outcome itself
    # The request died before recording the IP: nobody learned this ipId. Release what exists.
    if StaticIP.objects.filter(pk=static_ip.pk, status=Status.ALLOCATING).update(
        status=Status.RELEASING if primary_ip else Status.RELEASED,
        release_requested_at=None,
        released_at=None if primary_ip else now,
        last_error="allocate abandoned",
    ):
        report.changed += 1
        static_ip.status = Status.RELEASING if primary_ip else Status.RELEASED
        static_ip.release_requested_at = None
    return primary_ip is not None


def _record_vanished(static_ip: StaticIP, now, report: PassReport) -> None:
    """Mark released a static IP whose Primary IP the listing asked for at `now` did not show; end its associations.

    Gone from Hetzner: released by us, deleted outside octoprovider, or never created. Only if the
    listing was asked for after the row last saw its IP (an allocate or a swap may have written it
    while the listing was on its way), and the row still is what was read.
    """
    seen_before_listing = Q(observed_at__lt=now) | Q(observed_at__isnull=True, created_at__lt=now)
    if StaticIP.objects.filter(
        seen_before_listing, pk=static_ip.pk, status=static_ip.status, hetzner_id=static_ip.hetzner_id
    ).update(status=StaticIP.Status.RELEASED, released_at=now, assignee_hetzner_id=None):
        report.changed += 1
        if static_ip.status == StaticIP.Status.ALLOCATED:
            logger.warning("Static IP %s vanished from Hetzner; its associations end", static_ip.id)
        for association in Association.objects.filter(static_ip=static_ip, status__in=Association.ACTIVE):
            end_association(association, reason="static IP vanished")


def _follow_holder(static_ip: StaticIP, primary_ip: hetzner.PrimaryIP, listed_at) -> None:
    """Make `holder` name the instance whose server Hetzner shows the Primary IP on (None: on no server).

    The next create and the next swap choose by it, and the allow-list shows it: a step lost, or a
    move that ended otherwise than planned, must not leave it naming a server the address is not on.
    Only a listing asked for after `holder` was last written tells (`holder_since`), and one asked
    for before the holder's server was created (it got the IP with it) says nothing of that server.
    """
    assignee = primary_ip.assignee_id
    # A server taken from a parking (instances/reuse.py) is on two rows: the one that parked it, now
    # terminated, and the one that took it. The newest row is the one the server runs for.
    rows = Instance.objects.filter(hetzner_id=assignee).order_by("-created_at")
    holder_id = rows.values_list("pk", flat=True).first() if assignee else None
    if holder_id == static_ip.holder_id:
        return
    if (
        static_ip.holder_id is not None
        and holder_id is None
        and not Instance.objects.filter(
            Q(status=Instance.Status.TERMINATED) | Q(observed_at__lt=listed_at), pk=static_ip.holder_id
        ).exists()
    ):
        return  # its server may have been created (with the IP) since the listing was asked for
    if StaticIP.objects.filter(
        Q(holder_since__lt=listed_at) | Q(holder_since__isnull=True),
        pk=static_ip.pk,
        hetzner_id=primary_ip.id,
        holder=static_ip.holder_id,
    ).update(holder=holder_id, holder_since=clock.now()):
        logger.warning(
            "Static IP %s is on the server of %s at Hetzner, not of %s: corrected",
            static_ip.id,
            holder_id or "no instance",
            static_ip.holder_id or "no instance",
        )


@dataclass(frozen=True)
class Step:
    """One Hetzner mutation of a move: its name (kept in `Association.step`), the call, the fields recorded with it.

    `fields` are written with the claim, before the call (a None value is not written).
    """

    name: str
    call: Callable[[], object]
    fields: dict[str, object] = field(default_factory=dict)


class NoStep(enum.Enum):
    """Why a pass sends no step for a move."""

    WAIT = "wait"  # Hetzner is on its way (a server booting, shutting down, letting go of the IP)
    DONE = "done"  # Hetzner shows the move complete: the association is associated, or ended


def _advance(
    association: Association, server: hetzner.Server | None, ips: dict[int, hetzner.PrimaryIP], now, report: PassReport
) -> None:
    """Take one association in flight (or left behind) one step further, from what this pass observed."""
    if _end_if_left_behind(association, server, ips, report):
        return
    static = ips.get(association.static_ip.hetzner_id) if association.static_ip.hetzner_id else None
    if server is None or static is None:
        return  # not created yet, or not observed in this pass
    if association.step and not association.step_done and association.step_at > now - STEP_TIMEOUT:
        return  # another reconciler is sending a step right now: what we observed may predate it
    if association.status == Association.Status.ASSOCIATING:
        step = _next_associate_step(association, server, static, ips)
    else:
        step = _next_dissociate_step(association, server, static, ips)
    if isinstance(step, Step):
        _run_step(association, step, now, report)
    elif step is NoStep.DONE:
        _finish_move(association, server, now, report)
    # NoStep.WAIT: the next pass looks again.


def _end_if_left_behind(
    association: Association, server: hetzner.Server | None, ips: dict[int, hetzner.PrimaryIP], report: PassReport
) -> bool:
    """End an association whose instance or static IP is gone; return whether it was left behind."""
    # A release waits for the dissociation under way (OctoPerf's, or an internal one off its holder):
    # the move finishes, so that the server is not left off or without an IPv4.
    vacating_for_release = (
        association.status == Association.Status.DISSOCIATING
        and association.static_ip.status == StaticIP.Status.RELEASING
    )
    if association.instance.status not in GONE and (
        association.static_ip.status in StaticIP.LIVE or vacating_for_release
    ):
        return False
    # Hetzner unassigns a Primary IP when its server is deleted: nothing left to do there, but an IPv4
    # we took from the server must not stay behind, billed (the ended association stays in the
    # reconciler's hands until it is deleted).
    if end_association(association, reason="instance or static IP gone"):
        association.status = Association.Status.ENDED
        _settle_replaced_ip(association, server, ips, report)
        _release_once_vacated(association)
    return True


def _finish_move(association: Association, server: hetzner.Server, now, report: PassReport) -> None:
    """Record a move Hetzner shows complete: associated, or ended (compare-and-set on `version`)."""
    associated = association.status == Association.Status.ASSOCIATING
    final = Association.Status.ASSOCIATED if associated else Association.Status.ENDED
    extra = {} if associated else {"ended_at": now}
    if not associated and server.public_ipv4_id == association.replaced_hetzner_ip_id:
        extra["replaced_hetzner_ip_id"] = None  # given back to its server, which deletes it in the end
    if not Association.objects.filter(pk=association.pk, version=association.version).update(
        status=final, step="", step_at=None, step_done=True, version=F("version") + 1, last_error="", **extra
    ):
        return  # another reconciler, or a dissociate, moved it on
    report.changed += 1
    logger.info("Association %s is %s", association.id, final)
    # The server's own IPv4 was replaced by the static IP, or given back: billed or not.
    instance_services.instance_set_own_ipv4(instance_id=association.instance_id, own=not associated)
    # Whose server has the address now, for the next create and the next swap. A server has one IPv4:
    # the instance holds no other static IP any more.
    if associated:
        StaticIP.objects.filter(holder=association.instance_id).exclude(pk=association.static_ip_id).update(
            holder=None, holder_since=now
        )
        StaticIP.objects.filter(pk=association.static_ip_id).update(holder=association.instance_id, holder_since=now)
    else:
        StaticIP.objects.filter(pk=association.static_ip_id, holder=association.instance_id).update(
            holder=None, holder_since=now
        )
    # Seen running, with its new address: the state may say so.
    power_cycle_over(association.instance_id, server_running=True)
    if not associated:
        _release_once_vacated(association)


def _power_cycle_step(server: hetzner.Server) -> Step | NoStep:
    """Power the server off when it is up; wait while it is on its way."""
    if server.status in ("running", "starting", "initializing"):
        return Step("poweroff", lambda: hetzner.power_off(server.id))
    return NoStep.WAIT


def _next_associate_step(
    association: Association, server: hetzner.Server, static: hetzner.PrimaryIP, ips: dict[int, hetzner.PrimaryIP]
) -> Step | NoStep:
    if static.assignee_id == server.id:
        if server.status == "off":
            return Step("poweron", lambda: hetzner.power_on(server.id))
        return NoStep.DONE if server.status == "running" else NoStep.WAIT
    if static.assignee_id is not None:
        return NoStep.WAIT  # still on a server being deleted: Hetzner lets go of it shortly
    if server.status != "off":
        return _power_cycle_step(server)
    if server.public_ipv4_id is not None:
        own = ips.get(server.public_ipv4_id)
        if own is None:
            # The server's own IPv4 carries no label of ours: claim it first, so that nothing acts
            # on an unlabelled resource and a crash after the unassign leaves it findable.
            labels = ownership_labels(association.instance_id, ROLE_SERVER_IPV4)
            return Step(
                "label_own_ipv4",
                lambda: hetzner.label_primary_ip(server.public_ipv4_id, labels),
                {"replaced_hetzner_ip_id": server.public_ipv4_id},
            )
        return Step(
            "unassign_own_ipv4",
            lambda: hetzner.unassign_primary_ip(own.id),
            {"replaced_hetzner_ip_id": own.id if own.labels.get(LABEL_ROLE) == ROLE_SERVER_IPV4 else None},
        )
    replaced = ips.get(association.replaced_hetzner_ip_id) if association.replaced_hetzner_ip_id else None
    if replaced is not None and replaced.assignee_id is None and replaced.labels.get(LABEL_ROLE) == ROLE_SERVER_IPV4:
        # An unassigned IP is still billed.
        return Step("delete_own_ipv4", lambda: hetzner.delete_primary_ip(replaced.id))
    return Step("assign", lambda: hetzner.assign_primary_ip(static.id, server.id))


def _next_dissociate_step(
    association: Association, server: hetzner.Server, static: hetzner.PrimaryIP, ips: dict[int, hetzner.PrimaryIP]
) -> Step | NoStep:
    if static.assignee_id == server.id:
        if server.status != "off":
            return _power_cycle_step(server)
        return Step("unassign", lambda: hetzner.unassign_primary_ip(static.id))
    if server.public_ipv4_id is None:
        if server.status != "off":
            return _power_cycle_step(server)
        replaced = ips.get(association.replaced_hetzner_ip_id) if association.replaced_hetzner_ip_id else None
        if (
            replaced is not None
            and replaced.assignee_id is None
            and replaced.labels.get(LABEL_ROLE) == ROLE_SERVER_IPV4
        ):
            # A dissociate came mid-move, before the server's own IPv4 was deleted: give it back
            # rather than leave it unassigned (billed) and pay for a fresh one.
            return Step("restore_own_ipv4", lambda: hetzner.assign_primary_ip(replaced.id, server.id))
        labels = ownership_labels(association.instance_id, ROLE_SERVER_IPV4)
        return Step(
            "create_own_ipv4",
            lambda: hetzner.create_primary_ip(
                name=f"octoperf-{association.id}-ipv4", labels=labels, assignee_id=server.id, auto_delete=True
            ),
        )
    if server.status == "off":
        return Step("poweron", lambda: hetzner.power_on(server.id))
    return NoStep.DONE if server.status == "running" else NoStep.WAIT


def _run_step(association: Association, step: Step, now, report: PassReport) -> None:
    """Send one step's Hetzner mutation, once: the version compare-and-set elects one reconciler."""
    if association.step == step.name and association.step_at and association.step_at > now - STEP_TIMEOUT:
        return  # sent already; its effect is not visible yet
    claimed = Association.objects.filter(pk=association.pk, version=association.version).update(
        step=step.name,
        step_at=now,
        step_done=False,
        version=F("version") + 1,
        **{k: v for k, v in step.fields.items() if v is not None},
    )
    if not claimed:
        return  # another reconciler took this step
    report.actions.append(f"{association.id}: {step.name}")
    if step.name == "poweroff":
        instance_services.instance_note_power_off(instance_id=association.instance_id)
    # Matched by the step itself, not the version: a dissociate may have moved the version meanwhile,
    # and the next step must still see this one finished.
    this_step = Association.objects.filter(pk=association.pk, step=step.name, step_at=now)
    try:
        step.call()
    except HetznerError as exc:
        # `locked`, `server_not_stopped` and outages are waited out: forget the step so that the
        # next pass decides again from what it sees.
        this_step.update(step="", step_at=None, step_done=True, last_error=exc.message)
        logger.info("Association %s: %s not done yet (%s)", association.id, step.name, exc.message)
        return
    this_step.update(step_done=True)
    logger.info("Association %s: %s sent", association.id, step.name)


def _settle_replaced_ip(
    association: Association, server: hetzner.Server | None, ips: dict[int, hetzner.PrimaryIP], report: PassReport
) -> None:
    """Delete the server's own IPv4 that an ended association took away, then forget it.

    It stays billed while unassigned: deleted when seen unassigned; forgotten once gone from the
    listing or back on its live server (which deletes it in the end, auto_delete).
    """
    if association.replaced_hetzner_ip_id is None:
        return
    replaced = ips.get(association.replaced_hetzner_ip_id)
    forget = Association.objects.filter(pk=association.pk, replaced_hetzner_ip_id=association.replaced_hetzner_ip_id)
    if replaced is None or replaced.labels.get(LABEL_ROLE) != ROLE_SERVER_IPV4:
        forget.update(replaced_hetzner_ip_id=None)
        return
    if replaced.assignee_id is not None:
        if server is not None and replaced.assignee_id == server.id and association.instance.status not in GONE:
            forget.update(replaced_hetzner_ip_id=None)
        return  # on a server being deleted: Hetzner lets go of it shortly
    report.actions.append(f"{association.id}: delete_own_ipv4")
    try:
        hetzner.delete_primary_ip(replaced.id)
    except HetznerError as exc:
        report.errors.append(f"{association.id}: delete of replaced IPv4 {replaced.id}: {exc.message}")
        return
    forget.update(replaced_hetzner_ip_id=None)


def _release_once_vacated(association: Association) -> None:
    """Send the release a live server's move off the IP was holding back, now that it is over."""
    static_ip = StaticIP.objects.get(pk=association.static_ip_id)
    if static_ip.status == StaticIP.Status.RELEASING and static_ip.hetzner_id is not None:
        release_at_hetzner(static_ip, assignee_id=None)
