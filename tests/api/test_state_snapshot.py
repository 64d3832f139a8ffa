"""State polls are answered from one read of the live fleet per second, not one query per poll."""

import threading
import time

import pytest

from instances import services
from instances.models import Instance
from octoprovider.core import clock

pytestmark = pytest.mark.django_db


@pytest.fixture
def snapshot(settings, monkeypatch):
    settings.STATE_SNAPSHOT_SECONDS = 60
    fresh = services._StateSnapshot()
    monkeypatch.setattr(services, "_snapshot", fresh)
    return fresh


def test_polls_between_two_reads_of_the_fleet_cost_no_query(octoperf, snapshot, settle, django_assert_num_queries):
    ids = [octoperf.create() for _ in range(3)]
    settle(60)
    octoperf.state(ids[0])  # reads the fleet

    with django_assert_num_queries(0):
        states = {octoperf.state(instance_id) for instance_id in ids * 20}

    assert states == {"running"}


def test_an_instance_created_after_the_read_is_found_at_once(octoperf, snapshot):
    first = octoperf.create()
    octoperf.state(first)

    second = octoperf.create()

    assert octoperf.state(second) == "pending"


def test_a_state_lags_the_database_at_most_until_the_next_read(octoperf, snapshot, settle):
    instance_id = octoperf.create()
    settle(60)
    assert octoperf.state(instance_id) == "running"
    Instance.objects.filter(pk=instance_id).update(status=Instance.Status.STOPPED)

    stale = octoperf.state(instance_id)
    clock.advance(60)  # the snapshot's time is up
    fresh = octoperf.state(instance_id)

    assert (stale, fresh) == ("running", "stopped")


def test_terminated_and_unknown_ids_are_answered_from_the_database(octoperf, snapshot, settle):
    instance_id = octoperf.create()
    octoperf.delete(instance_id)
    settle(60)
    settle(60)

    assert octoperf.state(instance_id) == "terminated"
    assert octoperf.call("GET", "/instances/i-00000000000000000/state").status_code == 404


def test_a_poll_never_waits_for_another_thread_reading_the_fleet(octoperf, snapshot, settle, django_assert_num_queries):
    instance_id = octoperf.create()
    settle(60)
    octoperf.state(instance_id)  # reads the fleet
    clock.advance(60)  # the next poll is due to read it again...
    reading, done = threading.Event(), threading.Event()

    def another_thread_reading():
        with snapshot._lock:  # ...and another thread is at it
            reading.set()
            done.wait(timeout=5)

    reader = threading.Thread(target=another_thread_reading)
    reader.start()
    reading.wait()
    started = time.monotonic()
    try:
        with django_assert_num_queries(0):
            state = octoperf.state(instance_id)
    finally:
        waited = time.monotonic() - started
        done.set()
        reader.join()

    assert state == "running"  # from the previous read
    assert waited < 1
