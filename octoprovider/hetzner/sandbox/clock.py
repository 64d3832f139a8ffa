"""Clocks for the sandbox: the wall clock, and a fake one that tests move by hand."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Tell the current time, in epoch seconds."""

    def now(self) -> float: ...


class SystemClock:
    """Read the wall clock."""

    def now(self) -> float:
        """Return the current time in epoch seconds."""
        return time.time()


class FakeClock:
    """Stand still until a test advances it."""

    DEFAULT_START = 1_767_225_600.0  # 2026-01-01T00:00:00Z

    def __init__(self, start: float | None = None) -> None:
        self._now = self.DEFAULT_START if start is None else float(start)

    def now(self) -> float:
        """Return the frozen time in epoch seconds."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._now += seconds
