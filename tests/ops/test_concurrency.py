"""A burst of creates takes at most HETZNER_CALLS_PER_WORKER slots of a worker, and state polls take none.

Of the calls holding a slot, CPU_TURNS_PER_WORKER run Python at once; each gives its turn back while
Hetzner answers.
"""

import os
import runpy
import threading
import time
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.http import HttpResponse
from django.test import RequestFactory

from octoprovider import hetzner
from octoprovider.core import concurrency
from octoprovider.core.concurrency import HetznerCallSlotsMiddleware
from tests.services.test_budgets import on_postgresql

ROOT = Path(__file__).resolve().parent.parent.parent
CREATE = "/octoperf/instances"
POLL = "/octoperf/instances/i-0123/state"


class Hetzner:
    """A view whose creates wait until released, counting how many are inside at once."""

    def __init__(self):
        self.release = threading.Event()
        self.inside = 0
        self.most_inside = 0
        self.entered = threading.Semaphore(0)
        self.connected_on_entry: list[bool] = []
        self._lock = threading.Lock()

    def __call__(self, request):
        if request.method == "GET":
            return HttpResponse("running")
        with self._lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
            self.connected_on_entry.append(connection.connection is not None)
        self.entered.release()
        with concurrency.waiting_for_hetzner():  # as the gateway waits for Hetzner's answer
            self.release.wait(10)
        with self._lock:
            self.inside -= 1
        return HttpResponse("created")


def waiting_for_a_slot(size: int, count: int = 1) -> None:
    slots = concurrency._slots(size)
    deadline = time.monotonic() + 5
    while len(slots._cond._waiters) < count:  # CPython's Semaphore: a Condition's waiters
        assert time.monotonic() < deadline, "nobody waits for a slot"
        time.sleep(0.005)


def send(middleware, method: str, path: str, answers: list, *, connect_first: bool = False) -> threading.Thread:
    def run():
        try:
            if connect_first:
                connection.ensure_connection()  # as a call authenticated against admin-made tokens has
            request = getattr(RequestFactory(), method.lower())(path)
            answers.append(middleware(request).content.decode())
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_creates_beyond_the_slots_wait_while_a_state_poll_is_answered_at_once(settings):
    settings.HETZNER_CALLS_PER_WORKER = 2
    hetzner = Hetzner()
    middleware = HetznerCallSlotsMiddleware(hetzner)
    answers: list[str] = []

    creates = [send(middleware, "POST", CREATE, answers) for _ in range(5)]
    for _ in range(2):
        assert hetzner.entered.acquire(timeout=5)
    poll = send(middleware, "GET", POLL, answers)
    poll.join(5)

    assert answers == ["running"]  # while both slots are held
    assert hetzner.inside == 2
    hetzner.release.set()
    for thread in creates:
        thread.join(10)
    assert answers.count("created") == 5
    assert hetzner.most_inside == 2


@pytest.mark.django_db(transaction=True)
def test_a_create_gives_its_cpu_turn_back_while_hetzner_answers_it(settings, sandbox):
    settings.CPU_TURNS_PER_WORKER = 1
    sandbox.latency = 0.5  # wall clock: the listing below travels that long
    done: list[str] = []

    def view(request):
        if request.path == "/octoperf/instances/listing":
            hetzner.list_servers(label_selector=hetzner.managed_selector())
        done.append(request.path)
        return HttpResponse("ok")

    middleware = HetznerCallSlotsMiddleware(view)
    listing = send(middleware, "POST", "/octoperf/instances/listing", [])
    time.sleep(0.1)  # the listing holds the only turn, and has given it back to wait for Hetzner
    other = send(middleware, "POST", CREATE, [])
    for thread in (listing, other):
        thread.join(10)

    # The second call ran its Python while the first waited for Hetzner, not after it.
    assert done == [CREATE, "/octoperf/instances/listing"]


@pytest.mark.django_db(transaction=True)
def test_a_call_inside_a_transaction_keeps_its_turn_so_no_lock_holder_waits_for_one(settings, sandbox):
    settings.CPU_TURNS_PER_WORKER = 1
    sandbox.latency = 0.5
    done: list[str] = []

    def view(request):
        if request.path == "/octoperf/instances/listing":
            with transaction.atomic():  # as if it held a lock another call waits for
                hetzner.list_servers(label_selector=hetzner.managed_selector())
        done.append(request.path)
        return HttpResponse("ok")

    middleware = HetznerCallSlotsMiddleware(view)
    listing = send(middleware, "POST", "/octoperf/instances/listing", [])
    time.sleep(0.1)
    other = send(middleware, "POST", CREATE, [])
    for thread in (listing, other):
        thread.join(10)

    assert done == ["/octoperf/instances/listing", CREATE]


def test_calls_run_python_one_turn_at_a_time_and_wait_for_hetzner_together(settings):
    settings.HETZNER_CALLS_PER_WORKER = 3
    settings.CPU_TURNS_PER_WORKER = 1
    hetzner = Hetzner()
    middleware = HetznerCallSlotsMiddleware(hetzner)
    answers: list[str] = []

    creates = [send(middleware, "POST", CREATE, answers) for _ in range(3)]
    for _ in range(3):
        assert hetzner.entered.acquire(timeout=5)  # all three wait for Hetzner at once, on one turn

    assert hetzner.inside == 3
    hetzner.release.set()
    for thread in creates:
        thread.join(10)
    assert answers == ["created"] * 3


@on_postgresql  # SQLite's in-memory test database is never closed; PostgreSQL counts connections
@pytest.mark.django_db(transaction=True)
def test_a_create_waiting_for_a_slot_gives_its_database_connection_back(settings):
    settings.HETZNER_CALLS_PER_WORKER = 1
    hetzner = Hetzner()
    middleware = HetznerCallSlotsMiddleware(hetzner)
    answers: list[str] = []

    first = send(middleware, "POST", CREATE, answers, connect_first=True)
    assert hetzner.entered.acquire(timeout=5)
    second = send(middleware, "POST", CREATE, answers, connect_first=True)
    waiting_for_a_slot(1)
    hetzner.release.set()
    for thread in (first, second):
        thread.join(10)

    assert answers == ["created", "created"]
    # The first found a slot free and kept its connection; the second had to wait, without one.
    assert hetzner.connected_on_entry == [True, False]


def test_the_web_workers_have_a_thread_for_every_connection_they_take(monkeypatch):
    for name in ("WEB_CONCURRENCY", "GUNICORN_THREADS", "CONN_MAX_AGE"):
        monkeypatch.setenv(name, "")  # so that the config's setdefault is undone after the test
        monkeypatch.delenv(name)
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))

    assert config["worker_class"] == "gthread"
    assert config["workers"] * config["threads"] >= 200 + 20  # docs/deployment.md: a 200-agent burst and polls
    assert config["worker_connections"] <= config["threads"]  # none queues behind a create for a thread
    assert os.environ["CONN_MAX_AGE"] == "0"  # idle threads keep no PostgreSQL connection
