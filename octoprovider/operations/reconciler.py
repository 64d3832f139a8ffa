"""One reconcile pass: the level-triggered loop that keeps the database true to Hetzner.

Each pass records what Hetzner says and takes every unfinished operation one step further. It is
safe to run several at once: every write, and every Hetzner mutation, is claimed by compare-and-set.

A pass costs Hetzner requests in proportion to what changes, not to the fleet: a quick pass looks up
only what is in transition; a full pass (the drift sweep) adds two requests, and lists the whole
fleet only when they disagree with the database or once every SWEEP_FULL_INTERVAL. While the shared
rate budget is below the reserve kept for mutations, passes are skipped and say so.
"""

import logging
from dataclasses import dataclass, field

from instances import services as instance_services
from octoprovider import hetzner
from octoprovider.hetzner import budget
from octoprovider.core import clock
from octoprovider.core.exceptions import HetznerError
from octoprovider.operations.metrics import observed_reconcile_pass
from octoprovider.operations.models import ReconcilerRun
from staticips import services as static_ip_services
from staticips.models import StaticIP

logger = logging.getLogger(__name__)


@dataclass
class PassReport:
    """What one pass saw and did, for the command's output and the operators."""

    observed: int = 0
    changed: int = 0
    terminated: int = 0
    hetzner_calls: int = 0
    actions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    deferred: str = ""


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
    return report


def _run(report: PassReport, *, full: bool) -> None:
    """Observe Hetzner and take every unfinished operation one step further, adding to `report`."""
    try:
        # Snapshot the associations before observing Hetzner, so that what is observed is never
        # older than the database state the static-IP steps are decided on.
        associations = static_ip_services.associations_to_advance()
        instances = instance_services.instances_refresh(
            full=full, also=[association.instance_id for association in associations]
        )
        _add(report, instances)
        report.observed, report.terminated = instances.observed, instances.terminated
        # With no static IP to check, listing the Primary IPs would cost a request and tell nothing.
        ips_full = full and StaticIP.objects.exclude(status=StaticIP.Status.RELEASED).exists()
        _add(report, static_ip_services.static_ips_reconcile(
            full=ips_full, servers=instances.servers, associations=associations
        ))
    except HetznerError as exc:
        logger.warning("Reconcile pass stopped early: %s", exc.message)
        report.errors.append(exc.message)


def _add(report: PassReport, part) -> None:
    report.changed += part.changed
    report.hetzner_calls += part.hetzner_calls
    report.actions += part.actions
    report.errors += part.errors
