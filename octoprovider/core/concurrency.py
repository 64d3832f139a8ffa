"""How many of OctoPerf's calls that may reach Hetzner one web worker serves at a time.

The web workers are threaded (gunicorn.conf.py): a create holds its thread while Hetzner takes a
second or two to answer, and a state poll must never queue behind a burst of them, so a worker has
more threads than a test has agents. What it must not have as many of is database connections:
each call that reaches Hetzner keeps one open meanwhile (the intent row, the rate budget), and
PostgreSQL allows a hundred by default. So those calls (every contract call but a GET) take one of
HETZNER_CALLS_PER_WORKER slots first; the rest wait for one without holding a connection. Polls
take no slot: they never reach Hetzner.
"""

import functools
import threading

from django.conf import settings
from django.db import connection

_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


@functools.lru_cache(maxsize=2)
def _slots(size: int) -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(size)


class HetznerCallSlotsMiddleware:
    """Serve at most HETZNER_CALLS_PER_WORKER contract calls that may reach Hetzner at once, per process."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method in _SAFE_METHODS:
            return self.get_response(request)
        slots = _slots(settings.HETZNER_CALLS_PER_WORKER)
        if not slots.acquire(blocking=False):
            if not connection.in_atomic_block:
                connection.close()  # wait without a connection: the calls being served need them
            slots.acquire()
        try:
            return self.get_response(request)
        finally:
            slots.release()
