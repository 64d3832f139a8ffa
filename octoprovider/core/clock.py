"""The service's notion of now, which tests move forward together with the sandbox's clock.

Retry delays and grace periods (a delete re-sent after 30 s, a create abandoned after
CREATE_GRACE) are measured with it, so tests need not sleep through them.
"""

from datetime import datetime, timedelta

from django.utils import timezone

_offset = timedelta(0)


def now() -> datetime:
    return timezone.now() + _offset


def advance(seconds: float) -> None:
    """Move this process's clock forward (tests only)."""
    global _offset
    _offset += timedelta(seconds=seconds)


def reset() -> None:
    global _offset
    _offset = timedelta(0)
