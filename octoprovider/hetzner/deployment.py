"""The deployment label this database's fleet carries at Hetzner, and the one deliberate way to change it.

Every server and Primary IP octoprovider makes is labelled `octoprovider-deployment=$OCTOPROVIDER_DEPLOYMENT`,
and every listing selects by that label. Started under another label, the reconciler sees none of the
fleet: its next full pass marks every row terminated while the servers run on and are billed, and the
new deployment's cleanup, by design, never touches another deployment's resources. So the first process
to start records the label in the database, and a process started under another one refuses to run
(`octoprovider/checks.py`, the reconcile and cleanup commands, the web process) until
`manage.py relabel-deployment` has moved the fleet to the new label.
"""

import logging
import re
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError

from octoprovider.core import clock
from octoprovider.core.exceptions import HetznerError
from octoprovider.hetzner.labels import LABEL_DEPLOYMENT, managed_selector
from octoprovider.hetzner.models import DeploymentLabel
from octoprovider.hetzner.primary_ips import label_primary_ip, list_primary_ips
from octoprovider.hetzner.servers import label_server, list_servers

logger = logging.getLogger(__name__)

_ROW = 1  # the one row
# Hetzner's rule for a label value (as settings check OCTOPROVIDER_DEPLOYMENT).
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")


def is_label_value(value: str) -> bool:
    """Tell whether Hetzner accepts `value` as a label value (1-63 letters, digits, '-', '_', '.')."""
    return bool(_LABEL_VALUE.match(value))


def deployment_label_recorded() -> str | None:
    """Return the label this database's fleet carries, or None before the first start."""
    row = DeploymentLabel.objects.filter(pk=_ROW).first()
    return row.label if row else None


def deployment_label_refusal() -> str | None:
    """Say why this process must not run under OCTOPROVIDER_DEPLOYMENT, or None; the first start records it.

    None too while the database cannot say (not migrated yet, unreachable): `migrate` must work on an
    empty database, and the processes that need the database stop on their own when it is gone.
    """
    configured = settings.OCTOPROVIDER_DEPLOYMENT
    try:
        row, _ = DeploymentLabel.objects.get_or_create(
            pk=_ROW, defaults={"label": configured, "recorded_at": clock.now()}
        )
    except DatabaseError as exc:
        logger.debug("Could not compare OCTOPROVIDER_DEPLOYMENT with the database's label now: %s", exc)
        return None
    if row.label == configured:
        return None
    return (
        f"OCTOPROVIDER_DEPLOYMENT is {configured!r}, but this database's servers and static IPs are labelled "
        f"{LABEL_DEPLOYMENT}={row.label} at Hetzner. Under another label the reconciler would mark them all "
        f"terminated while they run on, billed. Set OCTOPROVIDER_DEPLOYMENT={row.label} again, or move the fleet "
        f"to the new label with `manage.py relabel-deployment --to {configured}` (docs/deployment.md)."
    )


@dataclass
class Relabelling:
    """What `deployment_relabel` found under the old label, moved, and could not move."""

    old: str
    new: str
    servers: list[str] = field(default_factory=list)
    primary_ips: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    left_behind: int = 0

    @property
    def complete(self) -> bool:
        return not self.failures and not self.left_behind


def deployment_relabel(*, new: str, old: str | None = None, dry_run: bool) -> Relabelling:
    """Move the fleet from `old` (the recorded label) to `new`: every server and Primary IP at Hetzner, then the record.

    The record changes only once nothing is left under the old label: a resource relabelled by half
    would be orphaned by one side or the other. Run with the web and reconciler stopped, or a create
    made meanwhile under the old label is left behind (then found by the listing again, and reported).
    Each resource's failure is reported without stopping the others; running it again finishes the job.
    """
    old = old or deployment_label_recorded() or settings.OCTOPROVIDER_DEPLOYMENT
    done = Relabelling(old=old, new=new)
    if old == new:
        return done
    selector = managed_selector(deployment=old)
    servers, ips = list_servers(label_selector=selector), list_primary_ips(label_selector=selector)
    done.servers = [f"server {server.id} ({server.name})" for server in servers]
    done.primary_ips = [f"Primary IP {ip.id} ({ip.ip})" for ip in ips]
    if dry_run:
        return done
    moves = [(name, label_server, server.id, server.labels) for name, server in zip(done.servers, servers, strict=True)]
    moves += [(name, label_primary_ip, ip.id, ip.labels) for name, ip in zip(done.primary_ips, ips, strict=True)]
    for name, label, hetzner_id, labels in moves:
        try:
            label(hetzner_id, {**labels, LABEL_DEPLOYMENT: new})
        except HetznerError as exc:
            done.failures.append(f"{name}: {exc.message}")
    if not done.failures:
        done.left_behind = len(list_servers(label_selector=selector)) + len(list_primary_ips(label_selector=selector))
    if done.complete:
        DeploymentLabel.objects.update_or_create(pk=_ROW, defaults={"label": new, "recorded_at": clock.now()})
        logger.warning(
            "The fleet moved from %s=%s to %s=%s: %d servers, %d Primary IPs.",
            LABEL_DEPLOYMENT,
            old,
            LABEL_DEPLOYMENT,
            new,
            len(servers),
            len(ips),
        )
    return done
