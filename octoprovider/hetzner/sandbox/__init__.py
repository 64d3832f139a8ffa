"""A simulated Hetzner Cloud API for tests and for running without a Hetzner token."""

from .clock import FakeClock, SystemClock
from .cloud import SandboxCloud
from .persistent import FileBackedSandbox
from .transport import Exchange, SandboxAdapter, add_observer, remove_observer

__all__ = [
    "Exchange",
    "FakeClock",
    "FileBackedSandbox",
    "SandboxAdapter",
    "SandboxCloud",
    "SystemClock",
    "add_observer",
    "remove_observer",
]
