"""What a reconcile pass saw and did: one report, filled by each app's reconciling module in turn."""

from dataclasses import dataclass, field
from typing import Any


@dataclass
class PassReport:
    """What one pass saw and did, for the command's output, the metrics and the operators."""

    observed: int = 0
    changed: int = 0
    terminated: int = 0
    hetzner_calls: int = 0
    actions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Work Hetzner refused because another action was running on the resource: the next pass sends it again.
    locked: list[str] = field(default_factory=list)
    deferred: str = ""
    # Why the pass ended before its end: Hetzner could not be listed (the loop waits longer each time).
    stopped: str = ""
    # Resources of ours that no live row accounts for, found by a full sweep: the operators are alerted.
    leaks: list[str] = field(default_factory=list)
    # The servers Hetzner showed in this pass, by our instance id: later parts decide from them.
    servers: dict[str, Any] = field(default_factory=dict, repr=False)
