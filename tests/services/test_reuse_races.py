"""Server reuse under concurrency (PostgreSQL): two creates and one parked server, a take and the deadline delete."""

import time

import pytest
from django.conf import settings as django_settings

from instances import reuse
from instances import services as instance_services
from instances.models import Instance, ParkedServer
from tests.conftest import in_threads, succeeded

pytestmark = [pytest.mark.usefixtures("with_latency"), pytest.mark.django_db(transaction=True)]

on_postgresql = pytest.mark.skipif(
    "postgresql" not in django_settings.DATABASES["default"]["ENGINE"],
    reason="concurrent connections: PostgreSQL only (CI runs it)",
)


@pytest.fixture(autouse=True)
def reuse_on(settings):
    settings.SERVER_REUSE = "billed-hour"


def park_one(settle) -> int:
    instance = instance_services.instance_create(region="fsn1", type="SMALL", user_data="#!/bin/sh")
    settle(60)
    settle(14 * 60)
    instance_services.instance_delete(instance_id=instance.pk)
    settle(5)
    return ParkedServer.objects.get(status="parked").hetzner_id


def live_servers(sandbox) -> set[int]:
    return {sid for sid, server in sandbox.servers.items() if server["status"] != "deleting"}


@on_postgresql
def test_two_creates_never_take_one_parked_server(sandbox, settle):
    sandbox.slow_down("PUT", r"/servers/\d+", seconds=0.2)
    parked = park_one(settle)

    created = succeeded(
        in_threads(
            2, lambda i: instance_services.instance_create(region="fsn1", type="SMALL", user_data=f"#!/bin/sh\n# {i}")
        )
    )

    servers = [Instance.objects.get(pk=instance.pk).hetzner_id for instance in created]
    assert sorted(servers, key=lambda s: s != parked)[0] == parked and len(set(servers)) == 2
    row = ParkedServer.objects.get(hetzner_id=parked)
    assert row.status == "taken" and row.taken_by in {instance.pk for instance in created}
    for _ in range(3):
        settle(10)
    assert {instance_services.instance_get_state(instance_id=i.pk) for i in created} == {"running"}
    assert live_servers(sandbox) == set(servers)


@on_postgresql
@pytest.mark.parametrize("delay", [0.0, 0.1, 0.2, 0.5])
def test_a_take_racing_the_deadline_delete_never_loses_the_instance_nor_leaks_the_server(sandbox, settle, delay):
    """The deadline delete read the row `parked`; it acts before, during or after the take (rename, rebuild)."""
    sandbox.slow_down("PUT", r"/servers/\d+", seconds=0.1)
    sandbox.slow_down("POST", r"/servers/\d+/actions/rebuild", seconds=0.1)
    parked = park_one(settle)
    row = ParkedServer.objects.get(hetzner_id=parked)

    def race(index: int):
        if index == 0:
            time.sleep(delay)
            return reuse.parked_server_delete(row=row, old_status=ParkedServer.Status.PARKED, because="deadline")
        return instance_services.instance_create(region="fsn1", type="SMALL", user_data="#!/bin/sh")

    deleted, instance = succeeded(in_threads(2, race))

    instance.refresh_from_db()
    assert (instance.hetzner_id == parked) is not deleted  # one of them won, never both
    for _ in range(3):
        settle(10)
    assert instance_services.instance_get_state(instance_id=instance.pk) == "running"
    assert live_servers(sandbox) == {instance.hetzner_id}
    assert ParkedServer.objects.get(hetzner_id=parked).status == ("deleted" if deleted else "taken")
