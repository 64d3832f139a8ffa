"""Races between OctoPerf's calls, the reconciler and Hetzner's slow answers, found by black-box runs.

Each ends with nothing left billed at Hetzner (`no_leftovers`).
"""

import threading

import pytest
from django.conf import settings as django_settings
from django.db import connection

from instances import services as instance_services
from instances.models import Instance
from octoprovider import hetzner
from octoprovider.core import clock
from octoprovider.operations.reconciler import reconcile_pass
from staticips import services
from staticips.models import Association, StaticIP
from tests.conftest import in_threads, succeeded

pytestmark = pytest.mark.usefixtures("with_latency", "no_leftovers")

on_postgresql = pytest.mark.skipif(
    "postgresql" not in django_settings.DATABASES["default"]["ENGINE"],
    reason="row locks and concurrent connections: PostgreSQL only (CI runs it)",
)


def running_instance(settle) -> Instance:
    instance = instance_services.instance_create(region="fsn1", type="SMALL", user_data="#!/bin/sh")
    settle(60)
    instance.refresh_from_db()
    assert instance.status == "running"
    return instance


# --- a full pass must not take an IP allocated during its listing for vanished ------------------------


@pytest.mark.django_db
def test_an_ip_allocated_while_a_full_pass_lists_primary_ips_is_not_marked_released(octoperf, sandbox, settle):
    octoperf.allocate()  # something to list
    allocated = []

    def allocate_while_the_answer_travels(response, *args, **kwargs):
        if (
            response.request.method == "GET"
            and response.request.path_url.startswith("/v1/primary_ips")
            and not allocated
        ):
            allocated.append(octoperf.allocate())

    hetzner.add_response_hook(allocate_while_the_answer_travels)
    settle(30, full=True)
    hetzner.remove_hook(allocate_while_the_answer_travels)
    settle(30, full=True)

    assert StaticIP.objects.get(pk=allocated[0]).status == "allocated"
    instance_id = octoperf.create()
    settle(60)
    assert octoperf.associate(allocated[0], instance_id).status_code == 200


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_bursts_of_allocations_during_slow_listings_by_two_reconcilers_leave_nothing_at_hetzner(sandbox, settings):
    """The reproduction: sweeps back to back, Primary IP listings answered late, allocations in bursts."""
    settings.CREATE_GRACE = 1
    sandbox.slow_down("GET", r"/primary_ips", seconds=0.15)
    services.static_ip_allocate(region="fsn1")
    stop = threading.Event()

    def reconciler():
        try:
            while not stop.is_set():
                reconcile_pass(full=True)
        finally:
            connection.close()

    loops = [threading.Thread(target=reconciler) for _ in range(2)]
    for loop in loops:
        loop.start()
    allocated = []
    try:
        for _ in range(3):
            allocated += succeeded(in_threads(4, lambda i: services.static_ip_allocate(region="fsn1").id))
            stop.wait(0.2)
        stop.wait(0.4)
    finally:
        stop.set()
        for loop in loops:
            loop.join(timeout=30)

    assert set(StaticIP.objects.filter(pk__in=allocated).values_list("status", flat=True)) == {"allocated"}
    for ip_id in allocated:
        services.static_ip_release(static_ip_id=ip_id)
    assert {ip["name"] for ip in sandbox.primary_ips.values()} == {
        f"octoperf-{StaticIP.objects.get(status='allocated').pk}"
    }


# --- a dissociate mid-move leaves no server IPv4 behind ------------------------------------------------


ASSOCIATE_STEPS = ["poweroff", "label_own_ipv4", "unassign_own_ipv4", "delete_own_ipv4", "assign"]


def until_step(settle, association: Association, step: str, seconds: float = 3) -> None:
    for _ in range(60):
        association.refresh_from_db()
        if association.step == step:
            return
        settle(seconds)
    raise AssertionError(f"{association.id} never reached {step}")


@pytest.mark.django_db
@pytest.mark.parametrize("step", ASSOCIATE_STEPS)
def test_associate_then_dissociate_mid_move_then_delete_leaves_no_server_ipv4(octoperf, sandbox, settle, step):
    first, second = running_instance(settle), running_instance(settle)
    static_ip = services.static_ip_allocate(region="fsn1")
    association = services.static_ip_associate(static_ip_id=static_ip.id, instance_id=first.id, region="fsn1")
    until_step(settle, association, step)

    assert octoperf.dissociate(static_ip.id, first.id, association.id).status_code == 200
    for _ in range(20):
        settle(3)
    assert octoperf.state(first.id) == "running"
    assert Association.objects.get().status == "ended"
    # Every IPv4 at Hetzner is a server's or the static one: none is unassigned and billed for nothing.
    assert [ip for ip in sandbox.primary_ips.values() if ip["assignee_id"] is None and ip["auto_delete"]] == []
    octoperf.delete(first.id)
    octoperf.delete(second.id)


@pytest.mark.django_db
@pytest.mark.parametrize("then", ["dissociate", "delete", "delete and dissociate at once", "delete and release"])
def test_an_interrupted_associate_leaves_no_server_ipv4_whatever_octoperf_does_next(octoperf, sandbox, settle, then):
    instance = running_instance(settle)
    ip_id = octoperf.allocate()
    association_id = octoperf.associate(ip_id, instance.id).json()["value"]
    own_ipv4 = sandbox.servers[instance.hetzner_id]["public_net"]["ipv4"]["id"]
    # Hetzner refuses to delete the server's own IPv4 for a while, mid-move.
    sandbox.inject_fault("DELETE", rf"/primary_ips/{own_ipv4}", times=100)
    for _ in range(60):
        if any(r.method == "DELETE" and r.path == f"/primary_ips/{own_ipv4}" for r in sandbox.requests):
            break
        settle(3)

    if then == "dissociate":
        octoperf.dissociate(ip_id, instance.id, association_id)
    else:
        octoperf.delete(instance.id)
        if then == "delete and dissociate at once":
            octoperf.dissociate(ip_id, instance.id, association_id)
        if then == "delete and release":
            octoperf.dissociate(ip_id, instance.id, association_id)
            octoperf.release(ip_id)
    sandbox.calm()
    for _ in range(15):
        settle(10)

    assert own_ipv4 not in sandbox.primary_ips or sandbox.primary_ips[own_ipv4]["assignee_id"] is not None


# --- a dissociate answered 200 always happens ------------------------------------------------------------


@pytest.mark.django_db
def test_a_dissociate_racing_a_step_claimed_by_the_reconciler_still_happens(octoperf, sandbox, settle, associated):
    ip_id, instance_id, association_id = associated
    claimed = []

    def reconciler_claims_a_step_meanwhile(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if not claimed and sql.lstrip().upper().startswith("SELECT") and "staticips_association" in sql:
            claimed.append(True)
            # What another reconciler's compare-and-set does between the dissociate's read and write.
            Association.objects.filter(pk=association_id).update(
                version=Association.objects.get(pk=association_id).version + 1,
                step="poweron",
                step_at=clock.now(),
                step_done=True,
            )
        return result

    with connection.execute_wrapper(reconciler_claims_a_step_meanwhile):
        response = octoperf.dissociate(ip_id, instance_id, association_id)

    assert response.status_code == 200
    assert Association.objects.get(pk=association_id).status == "dissociating"
    for _ in range(15):
        settle(10)
    assert Association.objects.get(pk=association_id).status == "ended"
    assert octoperf.release(ip_id).status_code == 200


# --- two creates never take the same static IP -------------------------------------------------------------


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_never_take_the_same_static_ip(sandbox):
    static_ips = [services.static_ip_allocate(region="fsn1") for _ in range(3)]

    succeeded(
        in_threads(6, lambda i: instance_services.instance_create(region="fsn1", type="SMALL", user_data="#!/bin/sh"))
    )

    given = [r.body.get("public_net", {}).get("ipv4") for r in sandbox.mutation_requests() if r.path == "/servers"]
    assert sorted(filter(None, given)) == sorted(ip.hetzner_id for ip in static_ips)
    holders = list(StaticIP.objects.values_list("holder_id", flat=True))
    assert None not in holders and len(set(holders)) == 3


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_concurrent_associates_swapping_the_same_pair_both_succeed(sandbox):
    static_ips = [services.static_ip_allocate(region="fsn1") for _ in range(2)]
    instances = [
        instance_services.instance_create(region="fsn1", type="SMALL", user_data="#!/bin/sh") for _ in range(2)
    ]
    # Each names the static IP the other's server has.
    pairs = [(ip, next(i for i in instances if i.pk != ip.holder_id)) for ip in StaticIP.objects.all()]
    assert len(pairs) == 2 and static_ips

    results = succeeded(
        in_threads(
            2,
            lambda i: services.static_ip_associate(
                static_ip_id=pairs[i][0].pk, instance_id=pairs[i][1].pk, region="fsn1"
            ),
        )
    )

    assert [association.status for association in results] == ["associated", "associated"]
    for ip in StaticIP.objects.all():
        assert Association.objects.get(static_ip=ip).instance_id == ip.holder_id


# --- OctoPerf's teardown and the holders, against two reconcilers and slow answers (issue 20) ---------------


class Reconcilers:
    """Two reconcile loops in threads, passes back to back, while simulated time moves a second at a time."""

    def __init__(self, sandbox, *, count: int = 2, full: bool = False, tick: float = 0.02):
        self.sandbox, self.count, self.full, self.tick = sandbox, count, full, tick
        self.stop = threading.Event()
        self.errors: list[BaseException] = []

    def _loop(self):
        try:
            while not self.stop.is_set():
                reconcile_pass(full=self.full)
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            connection.close()

    def _time(self):
        while not self.stop.wait(self.tick):
            self.sandbox.clock.advance(1)
            clock.advance(1)

    def __enter__(self):
        self.threads = [threading.Thread(target=self._loop) for _ in range(self.count)]
        self.threads.append(threading.Thread(target=self._time))
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
        assert self.errors == []

    def wait_for(self, condition, seconds: float = 30) -> None:
        for _ in range(int(seconds / 0.05)):
            if condition():
                return
            self.stop.wait(0.05)
        raise AssertionError("not settled in time")


def associated_instances(sandbox, settle, count: int) -> list[Association]:
    """`count` running instances, each holding a static IP that OctoPerf associated with it."""
    instances = [running_instance(settle) for _ in range(count)]
    associations = []
    for instance in instances:
        static_ip = services.static_ip_allocate(region="fsn1")
        associations.append(
            services.static_ip_associate(static_ip_id=static_ip.id, instance_id=instance.id, region="fsn1")
        )
    for _ in range(15):
        settle(5)
    assert set(Association.objects.values_list("status", flat=True)) == {"associated"}
    return associations


@on_postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("order", ["dissociate, release", "dissociate, delete, release", "dissociate, release, delete"])
def test_octoperfs_teardown_order_against_two_reconcilers_answers_200_and_leaves_nothing_billed(sandbox, settle, order):
    associations = associated_instances(sandbox, settle, 3)
    released = {a.static_ip_id: StaticIP.objects.get(pk=a.static_ip_id).hetzner_id for a in associations}
    sandbox.latency = max(sandbox.latency, 0.02)  # every Hetzner answer travels, as Hetzner's do

    def teardown(index: int) -> None:
        association = associations[index]
        services.static_ip_dissociate(
            static_ip_id=association.static_ip_id, instance_id=association.instance_id, association_id=association.id
        )
        if order == "dissociate, delete, release":
            instance_services.instance_delete(instance_id=association.instance_id)
        services.static_ip_release(static_ip_id=association.static_ip_id)
        if order == "dissociate, release, delete":
            instance_services.instance_delete(instance_id=association.instance_id)

    with Reconcilers(sandbox) as reconcilers:
        # Three teardowns at once, each meeting the reconcilers' passes at another moment.
        succeeded(in_threads(len(associations), teardown))
        reconcilers.wait_for(
            lambda: (
                not StaticIP.objects.exclude(status="released").exists()
                and not [ip for ip in released.values() if ip in sandbox.primary_ips]
            )
        )

    assert [ip for ip in released.values() if ip in sandbox.primary_ips] == []
    if "delete" not in order:
        for association in associations:
            server = sandbox.servers[Instance.objects.get(pk=association.instance_id).hetzner_id]
            assert server["public_net"]["ipv4"] is not None, "a server was left without an IPv4"


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_holders_follow_hetzner_while_creates_and_swaps_race_slow_full_passes(sandbox, settle, settings):
    """Full passes whose Primary IP listings answer late never clear the holder of a create that took the IP."""
    static_ips = [services.static_ip_allocate(region="fsn1") for _ in range(4)]
    sandbox.slow_down("GET", r"/primary_ips", seconds=0.15)
    sandbox.latency = max(sandbox.latency, 0.02)

    with Reconcilers(sandbox, full=True):
        created = [
            instance_services.instance_create(region="fsn1", type="SMALL", user_data="#!/bin/sh") for _ in range(4)
        ]
        # OctoPerf associates ipIds with instances holding other ones: swaps, while passes list the IPs.
        for static_ip, instance in zip(static_ips, reversed(created), strict=True):
            services.static_ip_associate(static_ip_id=static_ip.id, instance_id=instance.id, region="fsn1")
    sandbox.calm()
    settle(30, full=True)

    given = [r.body.get("public_net", {}).get("ipv4") for r in sandbox.mutation_requests() if r.path == "/servers"]
    assert sorted(filter(None, given)) == sorted(ip.hetzner_id for ip in StaticIP.objects.all())
    assert not [r for r in sandbox.mutation_requests() if r.status == 412], "Hetzner refused an IP already given"
    by_server = dict(Instance.objects.values_list("hetzner_id", "pk"))
    for row in StaticIP.objects.all():
        assert row.holder_id == by_server.get(sandbox.primary_ips[row.hetzner_id]["assignee_id"])
        assert Association.objects.get(static_ip=row).instance_id == row.holder_id
    assert all(a.status == "associated" for a in Association.objects.all())
