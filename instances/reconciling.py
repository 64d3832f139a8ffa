"""Keeping the instances true to Hetzner, in batched calls: the reconciler's half of `instances`.

A refresh observes the servers in transition (or the whole fleet, in a drift sweep), records what
it sees by compare-and-set, and takes unfinished work one step further: deletes and reboots Hetzner
refused for now, creates whose request died, servers alive under terminated rows.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q

from instances import reuse
from instances.models import Instance
from instances.services import (
    DELETE_RETRY_AFTER,
    FROM_HETZNER,
    Status,
    delete_at_hetzner,
    observed_fields,
    reboot_at_hetzner,
    set_status,
)
from octoprovider import hetzner
from octoprovider.core import clock
from octoprovider.core.exceptions import HetznerError
from octoprovider.core.reports import Outcome, PassReport
from octoprovider.hetzner import budget

logger = logging.getLogger(__name__)

# Hetzner's label selectors get long: at most this many of our ids in one `in (...)`.
_IDS_PER_CALL = 50

_NOT_RUNNING = [status for status in FROM_HETZNER if status != "running"]


def instances_refresh(
    *, full: bool = False, also: list[str] | None = None, report: PassReport | None = None
) -> PassReport:
    """Record what Hetzner says of our instances and take unfinished work one step further.

    A quick refresh looks only at instances in transition (one label-selector call per 50). A full
    one (the drift sweep) also catches servers stopped or deleted behind our back and servers still
    alive under terminated rows, at a cost that does not grow with the fleet: it asks Hetzner for
    the servers that are not running and for how many servers there are, and lists the whole fleet
    only when those disagree with the database, or when no reconciler has listed it for
    SWEEP_FULL_INTERVAL seconds. `also` names instances to look at in any case (those whose static
    IP is being moved). Adds to `report` (a new one by default), which keeps the servers seen, by our id.
    """
    report = report if report is not None else PassReport()
    listing = full and budget.claim_full_listing(interval=settings.SWEEP_FULL_INTERVAL)
    if not listing:
        rows = list(
            Instance.objects.filter(
                Q(status__in=Instance.IN_TRANSITION) | Q(reboot_requested_at__isnull=False) | Q(pk__in=also or [])
            )
        )
        servers = _look_up([row.id for row in rows], report)
        if full:
            swept = _sweep(rows, servers, report)
            if swept is None:
                listing = True
                budget.full_listing_done()
            else:
                rows += swept
    if listing:
        rows = list(Instance.objects.exclude(status=Status.TERMINATED))
        servers, calls = hetzner.list_servers_counted(label_selector=hetzner.managed_selector())
        report.hetzner_calls += calls
    by_our_id = {server.our_id: server for server in servers if server.our_id}
    report.servers = dict(by_our_id)
    now = clock.now()
    for row in rows:
        report.observed += 1
        _observe(row, by_our_id.pop(row.id, None), now, report)
    if full:
        _delete_zombies(by_our_id, report)
    return report


def _look_up(ids: list[str], report: PassReport) -> list[hetzner.Server]:
    """Look servers up by our ids, 50 to a label selector."""
    servers = []
    for start in range(0, len(ids), _IDS_PER_CALL):
        servers += hetzner.list_servers(label_selector=hetzner.managed_selector(ids=ids[start : start + _IDS_PER_CALL]))
        report.hetzner_calls += 1
    return servers


def _sweep(looked_up: list[Instance], servers: list[hetzner.Server], report: PassReport) -> list[Instance] | None:
    """Find drift among the instances not in transition in two requests, or return None if only a full listing can.

    Hetzner is asked for the servers that are not running (a server stopped behind our back is
    there) and for how many servers there are: when that number is the number of servers the
    database accounts for, no server is missing (deleted behind our back) and none is unknown.
    `servers` (the look-up of `looked_up`) is extended with what the sweep saw; the rows to observe
    are returned, the running ones the count vouches for are left alone (no write).
    """
    selector = hetzner.managed_selector()
    total = hetzner.count_servers(label_selector=selector)
    if total is None:
        # Without the count, nothing vouches for the running servers: only a full listing can tell.
        report.hetzner_calls += 1
        logger.info("Drift sweep: Hetzner did not say how many servers there are; listing them all")
        return None
    not_running, calls = hetzner.list_servers_counted(label_selector=selector, statuses=_NOT_RUNNING)
    report.hetzner_calls += 1 + calls
    looked_up_ids = {row.id for row in looked_up}
    seen = {server.our_id for server in servers if server.our_id}
    servers += [server for server in not_running if server.our_id not in seen]
    known = {server.id for server in servers} | reuse.held_server_ids()  # parked: ours, under terminated rows
    not_running_ids = {server.our_id for server in not_running if server.our_id}

    observe, unsure = [], []
    for row in Instance.objects.exclude(status=Status.TERMINATED).exclude(pk__in=looked_up_ids):
        if row.id in not_running_ids:
            observe.append(row)
        elif row.status == Status.RUNNING and row.hetzner_id is not None:
            known.add(row.hetzner_id)  # presumed still running: the count below vouches for it
            report.observed += 1
        else:
            unsure.append(row)  # stopped here, not stopped there: started behind our back, or deleted
    if unsure:
        extra = _look_up([row.id for row in unsure], report)
        servers += extra
        known |= {server.id for server in extra}
        observe += unsure

    in_flight = Instance.objects.filter(status=Status.CREATING, hetzner_id__isnull=True).count()
    # A create in flight may have its server already: tolerate as many unknown servers for one sweep.
    if not len(known) <= total <= len(known) + in_flight:
        logger.info(
            "Drift sweep: Hetzner counts %s servers, the database accounts for %s; listing them all", total, len(known)
        )
        return None
    return observe


def _observe(row: Instance, server: hetzner.Server | None, now, report: PassReport) -> None:
    created_long_ago = row.created_at < now - timedelta(seconds=settings.CREATE_GRACE)
    if row.status == Status.CREATING:
        if created_long_ago:
            _abandon(row, server, now, report)
        # Otherwise its request is still running and records the outcome itself.
        return
    if server is None:
        if row.hetzner_id is not None or created_long_ago:
            # Gone from Hetzner (deleted, or never created by a request that died): terminated.
            if set_status(row, row.status, status=Status.TERMINATED, hetzner_status="", terminated_at=now):
                report.terminated += 1
                report.changed += 1
        return

    fields = observed_fields(server, now)
    if row.status == Status.DELETING:
        fields["status"] = Status.DELETING
    elif row.power_cycle_pending and fields["status"] == Status.RUNNING:
        # A static-IP move will power it off, or has and is bringing it back: not `running` until it is over.
        fields["status"] = Status.STOPPING if row.status in (Status.RUNNING, Status.STOPPING) else Status.PENDING
    changed = fields["status"] != row.status or row.hetzner_id != server.id or row.public_ipv4 != server.public_ipv4
    # The flag is part of the compare-and-set: a move recorded since the row was read keeps `running` away.
    if not Instance.objects.filter(pk=row.pk, status=row.status, power_cycle_pending=row.power_cycle_pending).update(
        updated_at=clock.now(), **fields
    ):
        return
    report.changed += int(changed)
    row.hetzner_id = server.id

    if row.status == Status.DELETING and server.status != "deleting":
        # No request time: Hetzner has not taken the delete yet (it was locked), send it now. A
        # delete sent but not seen taking effect is sent again after DELETE_RETRY_AFTER.
        requested = row.delete_requested_at
        if requested is None or requested < now - DELETE_RETRY_AFTER or row.hetzner_status == "":
            # Claimed by compare-and-set on the request time: one reconciler sends it.
            if Instance.objects.filter(pk=row.pk, delete_requested_at=requested).update(delete_requested_at=now):
                report.actions.append(f"delete {row.id}")
                report.note(f"delete {row.id}", delete_at_hetzner(row))
    elif row.reboot_requested_at is not None and fields["status"] == Status.RUNNING:
        if Instance.objects.filter(pk=row.pk, reboot_requested_at=row.reboot_requested_at).update(
            reboot_requested_at=now
        ):
            report.actions.append(f"reboot {row.id}")
            # Whatever Hetzner answers is this row's alone: noted, and the pass goes on with the others.
            report.note(f"reboot {row.id}", reboot_at_hetzner(row))


def _abandon(row: Instance, server: hetzner.Server | None, now, report: PassReport) -> None:
    """Give up a create whose request died before recording its server: nobody learned its id."""
    if server is None:
        if set_status(row, Status.CREATING, status=Status.TERMINATED, terminated_at=now, last_error="create abandoned"):
            report.terminated += 1
            report.changed += 1
        return
    if set_status(
        row,
        Status.CREATING,
        status=Status.DELETING,
        hetzner_id=server.id,
        hetzner_status=server.status,
        delete_requested_at=now,
        last_error="create abandoned: its request died",
    ):
        logger.warning("Instance %s: its create request died; deleting server %s", row.id, server.id)
        row.hetzner_id = server.id
        report.changed += 1
        report.actions.append(f"delete abandoned {row.id}")
        report.note(f"delete abandoned {row.id}", delete_at_hetzner(row))


def _delete_zombies(servers_by_our_id: dict[str, hetzner.Server], report: PassReport) -> None:
    """Delete servers still alive under rows that are terminated; leave unknown ones to cleanup."""
    if not servers_by_our_id:
        return
    terminated = {
        row.pk: row for row in Instance.objects.filter(pk__in=list(servers_by_our_id), status=Status.TERMINATED)
    }
    parked = reuse.held_server_ids()
    for our_id, server in servers_by_our_id.items():
        if server.id in parked:
            continue  # kept for reuse under its terminated instance's labels, deleted at its deadline
        row = terminated.get(our_id)
        if row is None:
            logger.warning("Hetzner server %s (%s) has no instance row; cleanup decides its fate", server.id, our_id)
            report.leaks.append(f"server {server.id} ({server.name}) unknown to the database, left to cleanup")
            continue
        if server.status == "deleting":
            continue
        report.leaks.append(f"server {server.id} ({server.name}) alive under terminated instance {our_id}, deleted")
        # Claimed by compare-and-set on updated_at: one reconciler sends the delete.
        if not Instance.objects.filter(pk=row.pk, updated_at=row.updated_at).update(updated_at=clock.now()):
            continue
        report.actions.append(f"delete zombie {our_id}")
        try:
            hetzner.delete_server(server.id)
        except HetznerError as exc:
            report.note(f"delete zombie {our_id}", Outcome.refused(exc))
