"""The reconciler survives being killed at any step, and concurrent reconcilers never act twice."""

from collections import Counter

import pytest
from django.conf import settings as django_settings

from instances import services as instance_services
from instances.models import Instance
from octoprovider import hetzner
from octoprovider.core import clock
from octoprovider.operations.reconciler import reconcile_pass
from staticips import services
from staticips.models import Association, StaticIP
from tests.conftest import in_threads, ipv4s
from tests.faults import ProcessDied

ASSOCIATE_STEPS = ["poweroff", "label own IPv4", "unassign own IPv4", "delete own IPv4", "assign", "poweron"]
DISSOCIATE_STEPS = ["poweroff", "unassign", "create fresh IPv4", "poweron"]

# Hetzner's answers take a little time, as they do for real: races between passes show with it.
pytestmark = pytest.mark.usefixtures("with_latency")

on_postgresql = pytest.mark.skipif(
    "postgresql" not in django_settings.DATABASES["default"]["ENGINE"],
    reason="row locks and concurrent connections: PostgreSQL only (CI runs it)",
)


def die_after_mutation(number: int):
    """Kill the reconciler right after its `number`-th Hetzner mutation took effect."""
    seen = []

    def hook(response, *args, **kwargs):
        if response.request.method != "GET" and response.ok:
            seen.append(response.request.path_url)
            if len(seen) == number:
                raise ProcessDied(response.request.path_url)

    hetzner.add_response_hook(hook)
    return hook


def run_passes(sandbox, count: int = 15, seconds: float = 10) -> int:
    """Run reconcile passes as a restarted loop would; return how many times the process died."""
    deaths = 0
    for _ in range(count):
        sandbox.clock.advance(seconds)
        clock.advance(seconds)
        try:
            reconcile_pass(full=False)
        except ProcessDied:
            deaths += 1
    return deaths


def create_running_instance(sandbox) -> Instance:
    instance = instance_services.instance_create(region="fsn1", type="SMALL", user_data="#!/bin/sh")
    run_passes(sandbox, count=2, seconds=30)
    instance.refresh_from_db()
    assert instance.status == "running"
    return instance


def server_ipv4(sandbox, instance: Instance) -> dict | None:
    return sandbox.servers[Instance.objects.get(pk=instance.pk).hetzner_id]["public_net"]["ipv4"]


@pytest.mark.django_db
@pytest.mark.parametrize("step", range(1, len(ASSOCIATE_STEPS) + 1), ids=ASSOCIATE_STEPS)
def test_associate_killed_after_any_step_ends_associated_with_no_ip_left_over(sandbox, step):
    instance = create_running_instance(sandbox)
    static_ip = services.static_ip_allocate(region="fsn1")
    services.static_ip_associate(static_ip_id=static_ip.id, instance_id=instance.id, region="fsn1")
    die_after_mutation(step)

    # A step whose reconciler died is taken up again once STEP_TIMEOUT has passed.
    deaths = run_passes(sandbox, count=30)

    assert deaths == 1
    assert Association.objects.get().status == "associated"
    assert Instance.objects.get(pk=instance.pk).status == "running"
    assert server_ipv4(sandbox, instance)["ip"] == StaticIP.objects.get().address
    assert [ip["ip"] for ip in ipv4s(sandbox)] == [StaticIP.objects.get().address]


@pytest.mark.django_db
@pytest.mark.parametrize("step", range(1, len(DISSOCIATE_STEPS) + 1), ids=DISSOCIATE_STEPS)
def test_dissociate_killed_after_any_step_ends_with_a_fresh_ipv4_and_no_ip_left_over(sandbox, step):
    instance = create_running_instance(sandbox)
    static_ip = services.static_ip_allocate(region="fsn1")
    association = services.static_ip_associate(static_ip_id=static_ip.id, instance_id=instance.id, region="fsn1")
    run_passes(sandbox)
    services.static_ip_dissociate(static_ip_id=static_ip.id, instance_id=instance.id, association_id=association.id)
    die_after_mutation(step)

    # A step whose reconciler died is taken up again once STEP_TIMEOUT has passed.
    deaths = run_passes(sandbox, count=30)

    assert deaths == 1
    assert Association.objects.get().status == "ended"
    assert Instance.objects.get(pk=instance.pk).status == "running"
    fresh = server_ipv4(sandbox, instance)
    assert fresh is not None and fresh["ip"] != StaticIP.objects.get().address
    static = next(ip for ip in sandbox.primary_ips.values() if ip["ip"] == StaticIP.objects.get().address)
    assert static["assignee_id"] is None
    # The static IP, and the fresh one that dies with its server: nothing else is billed.
    assert sorted(ip["auto_delete"] for ip in ipv4s(sandbox)) == [False, True]


# --- concurrency, on PostgreSQL ----------------------------------------------------------------------


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_associates_of_one_ip_make_exactly_one_association(sandbox):
    first, second = create_running_instance(sandbox), create_running_instance(sandbox)
    static_ip = services.static_ip_allocate(region="fsn1")

    results = in_threads(
        2,
        lambda i: services.static_ip_associate(
            static_ip_id=static_ip.id, instance_id=(first, second)[i].id, region="fsn1"
        ),
    )

    assert Association.objects.count() == 1
    assert sorted(type(result).__name__ for result in results) == ["Association", "Conflict"]


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_an_associate_racing_the_delete_of_its_instance_strands_no_ip(sandbox):
    for _ in range(5):
        instance = create_running_instance(sandbox)
        static_ip = services.static_ip_allocate(region="fsn1")

        in_threads(
            2,
            lambda i, static_ip=static_ip, instance=instance: (
                services.static_ip_associate(static_ip_id=static_ip.id, instance_id=instance.id, region="fsn1")
                if i == 0
                else instance_services.instance_delete(instance_id=instance.id)
            ),
        )
        run_passes(sandbox)

        assert not Association.objects.filter(status__in=Association.ACTIVE).exists()
        assert Instance.objects.get(pk=instance.pk).status == "terminated"
        services.static_ip_release(static_ip_id=static_ip.id)
        run_passes(sandbox, count=3)
        assert sandbox.primary_ips == {}
        assert sandbox.servers == {}


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_two_reconcilers_at_once_never_send_the_same_mutation_twice(sandbox):
    instances = [create_running_instance(sandbox) for _ in range(3)]
    static_ips = [services.static_ip_allocate(region="fsn1") for _ in instances]
    for instance, static_ip in zip(instances, static_ips, strict=True):
        services.static_ip_associate(static_ip_id=static_ip.id, instance_id=instance.id, region="fsn1")
    before = len(sandbox.mutation_requests())

    for _ in range(20):
        sandbox.clock.advance(5)
        clock.advance(5)
        in_threads(2, lambda i: reconcile_pass(full=False))
    for association in Association.objects.all():
        services.static_ip_dissociate(
            static_ip_id=association.static_ip_id, instance_id=association.instance_id, association_id=association.id
        )
    for _ in range(20):
        sandbox.clock.advance(5)
        clock.advance(5)
        in_threads(2, lambda i: reconcile_pass(full=False))

    sent = Counter((r.method, r.path, repr(r.body)) for r in sandbox.mutation_requests()[before:])
    assert set(Association.objects.values_list("status", flat=True)) == {"ended"}
    # Each server was powered off and on twice (associate, dissociate); everything else once.
    assert {key: n for key, n in sent.items() if n > 1 and not key[1].endswith(("poweroff", "poweron"))} == {}
    assert all(n <= 2 for n in sent.values()), sent
    # And none was refused for being sent at the wrong moment (another step's action still running).
    assert [r.status for r in sandbox.mutation_requests()[before:] if r.status == 423] == []
