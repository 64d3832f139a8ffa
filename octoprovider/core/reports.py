"""What the reconciler's and cleanup's work came to: one outcome per row, one report per pass.

**One way to report an outcome.** A per-row Hetzner step (a delete, a reboot, a release, their
`*_finish_*` forms for cleanup, and cleanup's own actions) is run by a loop over many rows, and one
row's failure must never stop the others. So such a step never raises for what Hetzner answers or
for a race it loses: it returns an `Outcome`, one of four kinds, and the loops note it the same way
(`PassReport.note`, cleanup's command):

- `DONE`: Hetzner took the request, or nothing was left to send (one `not_found` to a delete: the
  reconciler's next listing confirms the resource gone);
- `OWED`: Hetzner held it back because another action runs on the resource (`locked`, seconds): the
  row keeps the work owed and the next pass sends it again, so a one-shot run waits for it;
- `LEFT_ALONE`: nothing was sent because another writer's change won since the row or the listing
  was read (a create, a claim, a move, a newer observation): harmless, never a failure;
- `FAILED`: Hetzner refused it or could not be reached (the error is kept): the row keeps the work
  owed too, and the operator hears of it (the pass's errors, cleanup's exit status).

Why returned, not raised: an exception reads as "stop", and these are the ordinary answers of a
level-triggered loop; a value makes each caller say what it does with each kind. Services called by
the API (`instance_delete`, `static_ip_release`, ...) keep raising domain exceptions: that is the
contract's one error path.
"""

import enum
from dataclasses import dataclass, field
from typing import Any

from octoprovider.core.exceptions import HetznerError, HetznerLocked


class Kind(enum.Enum):
    DONE = "done"
    OWED = "owed"
    LEFT_ALONE = "left alone"
    FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    """What one per-row step came to: its kind, why (for the operator), and Hetzner's error if any."""

    kind: Kind
    why: str = ""
    error: HetznerError | None = None

    @classmethod
    def done(cls, why: str = "") -> "Outcome":
        return cls(Kind.DONE, why)

    @classmethod
    def left_alone(cls, why: str) -> "Outcome":
        return cls(Kind.LEFT_ALONE, why)

    @classmethod
    def owed(cls, error: HetznerLocked) -> "Outcome":
        return cls(Kind.OWED, error.message, error)

    @classmethod
    def refused(cls, error: HetznerError) -> "Outcome":
        """Classify what Hetzner answered: `locked` is owed (sent again soon), anything else failed."""
        return cls(Kind.OWED if isinstance(error, HetznerLocked) else Kind.FAILED, error.message, error)

    @classmethod
    def failed(cls, error: HetznerError) -> "Outcome":
        return cls(Kind.FAILED, error.message, error)

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.why}" if self.why else self.kind.value


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

    def note(self, what: str, outcome: Outcome) -> None:
        """Add a row's outcome: owed work is waited for (`locked`), a failure is an error; the rest says nothing."""
        if outcome.kind is Kind.OWED:
            self.locked.append(what)
        elif outcome.kind is Kind.FAILED:
            self.errors.append(f"{what}: {outcome.why}")
