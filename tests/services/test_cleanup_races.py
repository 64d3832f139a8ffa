"""Cleanup while OctoPerf starts a test: slow listings, creates landing while they travel.

The audit's reproduction: 0.3 s per Hetzner GET, an instance created every 0.3 s, `cleanup` run
again and again. Nothing a create just made may be ended, and nothing may be left billed.
"""

import threading

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.db import connection

from instances import services as instance_services
from instances.models import Instance

pytestmark = pytest.mark.usefixtures("with_latency", "no_leftovers")

on_postgresql = pytest.mark.skipif(
    "postgresql" not in django_settings.DATABASES["default"]["ENGINE"],
    reason="concurrent connections: PostgreSQL only (CI runs it)",
)


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_cleanup_runs_during_a_stream_of_creates_with_slow_listings_end_no_instance(sandbox):
    sandbox.slow_down("GET", r".*", seconds=0.3)
    instance_services.instance_create(region="fsn1", type="SMALL", user_data="#!/bin/sh")
    stop = threading.Event()
    created, failures = [], []

    def octoperf_starts_a_test():
        try:
            while not stop.is_set():
                created.append(instance_services.instance_create(region="fsn1", type="SMALL", user_data="#!/bin/sh").pk)
                stop.wait(0.3)
        except Exception as exc:  # reported below
            failures.append(exc)
        finally:
            connection.close()

    creator = threading.Thread(target=octoperf_starts_a_test)
    creator.start()
    try:
        for _ in range(4):
            try:
                call_command("cleanup", verbosity=0)
            except CommandError as exc:
                failures.append(exc)
    finally:
        stop.set()
        creator.join(timeout=60)

    assert len(created) >= 4
    ended = Instance.objects.filter(pk__in=created, status__in=["terminated", "deleting"])
    assert list(ended.values_list("pk", flat=True)) == []
    assert failures == []
    assert len(sandbox.servers) == len(created) + 1
