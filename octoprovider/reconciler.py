"""One reconcile pass: the level-triggered loop that keeps the database true to Hetzner.

Each pass records what Hetzner says and takes every unfinished operation one step further. It is
safe to run several at once: every write is compare-and-set.
"""

import logging

from instances import services as instance_services
from octoprovider.exceptions import HetznerError

logger = logging.getLogger(__name__)


def reconcile_pass(*, full: bool) -> instance_services.RefreshReport:
    """Run one pass; `full` lists the whole fleet (drift), otherwise only what is in transition."""
    try:
        report = instance_services.instances_refresh(full=full)
    except HetznerError as exc:
        logger.warning("Reconcile pass stopped early: %s", exc.message)
        report = instance_services.RefreshReport(errors=[exc.message])
    for error in report.errors:
        logger.warning("Reconcile: %s", error)
    return report
