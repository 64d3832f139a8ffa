"""Answers that take time to travel: the sandbox's latency and its slow-listing fault."""

import threading
import time

from hcloud.locations import Location


def test_every_answer_takes_the_configured_latency(cloud, client):
    cloud.latency = 0.05

    started = time.monotonic()
    client.primary_ips.get_all()

    assert time.monotonic() - started >= 0.05


def test_a_slow_listing_answers_what_existed_when_it_was_asked(cloud, client):
    cloud.slow_down("GET", r"/primary_ips", seconds=0.3, times=1)
    on_its_way, created_meanwhile = threading.Event(), threading.Event()
    latency_for = cloud.latency_for

    def travelling(method: str, path: str) -> float:
        """Hold the listing's answer, once decided, on its way until the create is done: no sleep orders them."""
        delay = latency_for(method, path)
        if (method, path) == ("GET", "/primary_ips") and not on_its_way.is_set():
            on_its_way.set()
            assert created_meanwhile.wait(timeout=30)
        return delay

    cloud.latency_for = travelling
    listed, took = [], []

    def listing() -> None:
        started = time.monotonic()
        listed.extend(client.primary_ips.get_all())
        took.append(time.monotonic() - started)

    thread = threading.Thread(target=listing)
    thread.start()
    assert on_its_way.wait(timeout=30)
    created = client.primary_ips.create(type="ipv4", name="meanwhile", location=Location(name="fsn1")).primary_ip
    created_meanwhile.set()
    thread.join()

    assert created.id not in [ip.id for ip in listed]
    assert took[0] >= 0.3  # the slow-listing fault's delay
    assert [ip.id for ip in client.primary_ips.get_all()] == [created.id]  # the fault was used up


def test_calm_drops_latency_and_faults(cloud, client):
    cloud.latency = 5
    cloud.slow_down("*", r".*", seconds=5)
    cloud.inject_fault("GET", r"/primary_ips", times=5)

    cloud.calm()

    started = time.monotonic()
    assert client.primary_ips.get_all() == []
    assert time.monotonic() - started < 1
