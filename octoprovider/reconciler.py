"""One reconcile pass: the level-triggered loop that keeps the database true to Hetzner.

Each pass records what Hetzner says and takes every unfinished operation one step further. It is
safe to run several at once: every write, and every Hetzner mutation, is claimed by compare-and-set.
"""

import logging
from dataclasses import dataclass, field

from instances import services as instance_services
from octoprovider import clock, hetzner
from octoprovider.exceptions import HetznerError
from octoprovider.metrics import observed_reconcile_pass
from octoprovider.models import ReconcilerRun
from staticips import services as static_ip_services

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


@observed_reconcile_pass
def reconcile_pass(*, full: bool) -> PassReport:
    """Run one pass; `full` lists the whole fleet (drift), otherwise only what is in transition."""
    report = PassReport()
    started_at = clock.now()
    try:
        # Snapshot the associations before observing Hetzner, so that what is observed is never
        # older than the database state the static-IP steps are decided on.
        associations = static_ip_services.associations_to_advance()
        instances = instance_services.instances_refresh(
            full=full, also=[association.instance_id for association in associations]
        )
        _add(report, instances)
        report.observed, report.terminated = instances.observed, instances.terminated
        _add(report, static_ip_services.static_ips_reconcile(
            full=full, servers=instances.servers, associations=associations
        ))
    except HetznerError as exc:
        logger.warning("Reconcile pass stopped early: %s", exc.message)
        report.errors.append(exc.message)
    for error in report.errors:
        logger.warning("Reconcile: %s", error)
    # For the operators' dashboard, with the rate budget as this process (the loop) last saw it.
    ReconcilerRun.record(full=full, report=report, started_at=started_at, rate_budget=hetzner.rate_budget())
    return report


def _add(report: PassReport, part) -> None:
    report.changed += part.changed
    report.hetzner_calls += part.hetzner_calls
    report.actions += part.actions
    report.errors += part.errors
