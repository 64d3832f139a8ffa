"""The service's notion of now, which tests move forward together with the sandbox's clock.

Retry delays and grace periods (a delete re-sent after 30 s, a create abandoned after
CREATE_GRACE) are measured with it, so tests need not sleep through them.
"""

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.utils import timezone

_offset = timedelta(0)
_sleep: Callable[[float], None] = time.sleep


def now() -> datetime:
    return timezone.now() + _offset


def monotonic() -> float:
    """Return seconds on a clock that never jumps, for intervals; tests move it with `advance`, as `now`."""
    return time.monotonic() + _offset.total_seconds()


def sleep(seconds: float) -> None:
    """Wait, e.g. for a Hetzner action to end; in tests, simulated time passes instead."""
    _sleep(seconds)


def use_sleep(sleeper: Callable[[float], None] | None) -> None:
    """Make `sleep` call `sleeper` (tests: move the clocks forward); None restores the real sleep."""
    global _sleep
    _sleep = sleeper or time.sleep


def advance(seconds: float) -> None:
    """Move this process's clock forward (tests only)."""
    global _offset
    _offset += timedelta(seconds=seconds)


def reset() -> None:
    global _offset
    _offset = timedelta(0)
