"""One reconcile pass: the level-triggered loop that keeps the database true to Hetzner.

Each pass records what Hetzner says and takes every unfinished operation one step further. It is
safe to run several at once: every write, and every Hetzner mutation, is claimed by compare-and-set.

A pass costs Hetzner requests in proportion to what changes, not to the fleet: a quick pass looks up
only what is in transition; a full pass (the drift sweep) adds two requests, and lists the whole
fleet only when they disagree with the database or once every SWEEP_FULL_INTERVAL. While the shared
rate budget is below the reserve kept for mutations, passes are skipped and say so.
"""

import logging
from collections.abc import Iterator
from datetime import timedelta

from django.db.models import Q

from instances import reconciling as instances_reconciling
from instances import reuse
from instances import services as instances_services
from octoprovider.core import clock
from octoprovider.core.exceptions import HetznerError
from octoprovider.core.reports import PassReport
from octoprovider.hetzner import budget
from octoprovider.operations import alerts
from octoprovider.operations.metrics import observed_reconcile_pass
from octoprovider.operations.models import ReconcilerRun
from staticips import reconciling as static_ips_reconciling
from staticips.models import StaticIP

logger = logging.getLogger(__name__)

# How long after the last release the sweeps keep listing Primary IPs when no static IP is live.
ORPHANS_LOOKED_FOR = timedelta(hours=1)


@observed_reconcile_pass
def reconcile_pass(*, full: bool) -> PassReport:
    """Run one pass; `full` sweeps the whole fleet for drift, otherwise only what is in transition is looked at."""
    report = PassReport()
    started_at = clock.now()
    kind = "full" if full else "quick"
    with budget.observing_as(f"the reconciler ({kind} pass)"):
        deferral = budget.refresh_deferral(what=f"{kind.capitalize()} pass")
        if deferral:
            # Said as an error too, so that the dashboard and the error metric show that states go stale.
            report.deferred = deferral
            report.errors.append(deferral)
        else:
            _run(report, full=full)
    for error in report.errors:
        logger.warning("Reconcile: %s", error)
    # For the operators' dashboard, with the rate budget all processes share.
    ReconcilerRun.record(full=full, report=report, started_at=started_at, rate_budget=budget.snapshot())
    alerts.alerts_after_pass(report, full=full)  # never raises
    return report


def reconcile_once(*, wait: float, interval: float) -> Iterator[PassReport]:
    """Run a full pass, then quick passes while Hetzner holds work back with `locked`, for `wait` seconds at most.

    A delete or release that meets `locked` waits for an action that ends within seconds (a boot, a
    reboot, a power cycle); a one-shot run (cron, an operator) should finish it rather than leave it
    to a loop that may not be running. Yields each pass's report; the last one says what is still
    held back.
    """
    deadline = clock.now() + timedelta(seconds=wait)
    report = reconcile_pass(full=True)
    yield report
    while report.locked and not report.errors and clock.now() + timedelta(seconds=interval) <= deadline:
        clock.sleep(interval)
        report = reconcile_pass(full=False)
        yield report


def _run(report: PassReport, *, full: bool) -> None:
    """Observe Hetzner and take every unfinished operation one step further, adding to `report`."""
    try:
        # Snapshot the associations before observing Hetzner, so that what is observed is never
        # older than the database state the static-IP steps are decided on.
        associations = static_ips_reconciling.associations_to_advance()
        instances_reconciling.instances_refresh(
            full=full, also=[association.instance_id for association in associations], report=report
        )
        # With no static IP to check, listing the Primary IPs would cost a request and tell nothing;
        # for an hour after a release, a create answered late may still leave an IP to delete.
        ips_full = (
            full
            and StaticIP.objects.filter(
                ~Q(status=StaticIP.Status.RELEASED) | Q(released_at__gte=clock.now() - ORPHANS_LOOKED_FOR)
            ).exists()
        )
        static_ips_reconciling.static_ips_reconcile(full=ips_full, associations=associations, report=report)
        report.actions.extend(reuse.parked_servers_advance())  # deadlines, and parks or takes cut short
        if full:  # creates whose answer OctoPerf never received (UNCLAIMED_INSTANCE_GRACE)
            report.actions.extend(f"end never-claimed {i}" for i in instances_services.instances_end_unclaimed())
    except HetznerError as exc:
        # Only a listing, the whole pass's input, gets here: each row's own Hetzner calls note their
        # failure in the report and let the pass go on. Said once, by reconcile_pass, as an error.
        report.stopped = f"Reconcile pass stopped early: {exc.message}"
        report.errors.append(report.stopped)
