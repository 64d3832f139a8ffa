"""How many of OctoPerf's calls that may reach Hetzner one web worker serves at a time.

The web workers are threaded (gunicorn.conf.py): a create holds its thread while Hetzner takes a
second or two to answer, and a state poll must never queue behind a burst of them, so a worker has
more threads than a test has agents. What it must not have as many of is database connections:
each call that reaches Hetzner keeps one open meanwhile (the intent row, the rate budget), and
PostgreSQL allows a hundred by default. So those calls (every contract call but a GET) take one of
HETZNER_CALLS_PER_WORKER slots first; the rest wait for one without holding a connection. Polls
take no slot: they never reach Hetzner.

Slots bound connections, not Python: 32 creates of one worker running Python at once make a poll
wait for the worker's GIL behind each of them (a p99 of half a second during a 200-create burst,
57 ms with 8 slots, at the price of a burst twice as long). So a call holding a slot also takes
one of CPU_TURNS_PER_WORKER turns, and gives it back while it waits for Hetzner's answer
(`waiting_for_hetzner`, around the gateway's HTTP exchange): many calls wait on Hetzner at once,
few run Python at once, and polls, which take no turn, find the GIL free.
"""

import contextlib
import functools
import threading
from collections.abc import Iterator

from django.conf import settings
from django.db import connection

_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# The turn this thread holds, if it serves a call that took one (the web workers' threads only).
_held = threading.local()


@functools.lru_cache(maxsize=4)
def _semaphore(kind: str, size: int) -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(size)


def _slots(size: int) -> threading.BoundedSemaphore:
    return _semaphore("slots", size)


@contextlib.contextmanager
def waiting_for_hetzner() -> Iterator[None]:
    """Give this thread's CPU turn back while it waits for Hetzner, and take one again after.

    Not inside a transaction: it may hold a lock (the guardrails', a row's) that a thread holding a
    turn waits for, and waiting for a turn then would deadlock the two. No Hetzner call should run
    inside one anyway (intent first).
    """
    turns = getattr(_held, "turns", None)
    if turns is None or connection.in_atomic_block:
        yield
        return
    turns.release()
    try:
        yield
    finally:
        turns.acquire()


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
        turns = _semaphore("turns", settings.CPU_TURNS_PER_WORKER)
        turns.acquire()
        _held.turns = turns
        try:
            return self.get_response(request)
        finally:
            _held.turns = None
            turns.release()
            slots.release()
