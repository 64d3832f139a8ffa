"""The fault matrix: every Hetzner call of every operation, under every kind of fault, leaks nothing.

The calls are not listed by hand: a clean run of each operation records the Hetzner mutations it
makes, and every one of them is then run again with each fault injected. A new call in any
operation joins the matrix by itself. After the reconciler has run, Hetzner must hold exactly what
the database says is live, and OctoPerf must have seen the right thing.
"""

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.core.cache import cache

from instances.models import Instance
from octoprovider import hetzner
from octoprovider.core import clock
from octoprovider.hetzner.sandbox import FakeClock, SandboxCloud
from octoprovider.operations.reconciler import reconcile_pass
from staticips.models import Association, StaticIP
from tests.conftest import OctoPerf, reboots_at_hetzner
from tests.faults import ProcessDied

pytestmark = pytest.mark.django_db

SCENARIOS_RUN: list[str] = []


@dataclass(frozen=True)
class Fault:
    name: str
    inject: Callable[[SandboxCloud, str, str], None]
    # Only creates: the first try reaches Hetzner after the row has given up on it.
    lands_late: bool = False

    def applies_to(self, method: str, path: str) -> bool:
        return not self.lands_late or (method == "POST" and path in ("/servers", "/primary_ips"))


def _sandbox_fault(**kwargs) -> Callable[[SandboxCloud, str, str], None]:
    # More faults than hcloud's retries, so that the error reaches our code.
    times = kwargs.pop("times", 3)
    return lambda cloud, method, path: cloud.inject_fault(method, rf"{path}", times=times, **kwargs)


def _die_after(cloud: SandboxCloud, method: str, path: str) -> None:
    def hook(response, *args, **kwargs):
        if response.request.method == method and response.request.path_url == "/v1" + path and response.ok:
            hetzner.remove_hook(hook)
            cloud.died_at = path
            raise ProcessDied(path)

    hetzner.add_response_hook(hook)


def _lost_then_rate_limited(cloud: SandboxCloud, method: str, path: str) -> None:
    """The first try is carried out but its answer is lost (504); hcloud's retries hear 429."""
    cloud.inject_fault(method, path, code="timeout", status=504, after=True, times=1)
    cloud.inject_fault(method, path, code="rate_limit_exceeded", status=429, times=3)


FAULTS = [
    # (a) Hetzner did nothing.
    Fault("unavailable before", _sandbox_fault(code="unavailable", status=503)),
    Fault("timeout before", _sandbox_fault(timeout=True)),
    Fault("locked", _sandbox_fault(code="locked", status=423)),
    Fault("rate limited", _sandbox_fault(code="rate_limit_exceeded", status=429)),
    Fault("maintenance", _sandbox_fault(code="maintenance", status=403)),
    Fault("service_error", _sandbox_fault(code="service_error", status=422)),
    Fault("504 timeout", _sandbox_fault(code="timeout", status=504)),
    # Hetzner says a resource that exists is not there: one answer proves nothing.
    Fault("not found", _sandbox_fault(code="not_found", status=404, times=1)),
    # (b) Hetzner did it, the answer was lost.
    Fault("timeout after", _sandbox_fault(timeout=True, after=True, times=1)),
    Fault("5xx after", _sandbox_fault(code="unavailable", status=503, after=True, times=1)),
    Fault("server_error after", _sandbox_fault(code="server_error", status=500, after=True, times=1)),
    # ... and hcloud's retries then heard a refusal, which says nothing of the first try.
    Fault("lost then rate limited", _lost_then_rate_limited),
    # Every try timed out on its way; the first reaches Hetzner long after (see World.land_late).
    Fault("answered late", _sandbox_fault(timeout=True), lands_late=True),
    # (c) the process died between Hetzner's answer and the database write.
    Fault("died after", _die_after),
]


class World:
    """A fresh database and simulated cloud, and OctoPerf calling the contract."""

    def __init__(self):
        Association.objects.all().delete()
        StaticIP.objects.all().delete()
        Instance.objects.all().delete()
        clock.reset()
        cache.clear()
        self.cloud = SandboxCloud(clock=FakeClock(start=time.time()))
        hetzner.use_sandbox(self.cloud)
        self.octoperf = OctoPerf()
        self.ids: dict[str, str] = {}
        self.answers: list[int] = []

    def passes(self, count: int, seconds: float = 10) -> None:
        for number in range(count):
            self.cloud.clock.advance(seconds)
            clock.advance(seconds)
            with contextlib.suppress(ProcessDied):  # systemd restarts the loop: the next pass is a new process
                reconcile_pass(full=number % 5 == 4)

    def call(self, method: str, path: str, *, retry: bool = False, **kwargs):
        """Call the contract; a request whose process died answers OctoPerf with a broken connection."""
        for _ in range(2 if retry else 1):
            try:
                response = self.octoperf.call(method, path, **kwargs)
            except ProcessDied:
                status, response = 502, None
            else:
                status = response.status_code
            self.answers.append(status)
            if status == 200 or not retry:
                return response
            self.passes(3)  # OctoPerf tries idempotent calls again a little later
        return response

    def land_late(self, method: str, path: str) -> None:
        """Let the first try of a request that timed out on its way reach Hetzner now."""
        (late, *_) = [r for r in self.cloud.requests if r.method == method and r.path == path and r.timeout]
        self.cloud.handle(method, path, late.query, late.body, {"Authorization": "Bearer late"})

    def value(self, response) -> str | None:
        return response.json()["value"] if response is not None and response.status_code == 200 else None


# --- the operations, each from its starting point ----------------------------------------------------


def running_instance(world: World) -> None:
    world.ids["instance"] = world.octoperf.create()
    world.passes(6)


def allocated_ip(world: World) -> None:
    world.ids["ip"] = world.octoperf.allocate()


def associated(world: World) -> None:
    running_instance(world)
    allocated_ip(world)
    world.ids["association"] = world.value(world.octoperf.associate(world.ids["ip"], world.ids["instance"]))
    world.passes(15)


def op_create(world: World) -> None:
    form = {"userData": "#!/bin/sh", "region": "fsn1", "type": "SMALL"}
    world.ids["instance"] = world.value(world.call("POST", "/instances", form=form))


def op_reboot(world: World) -> None:
    world.call("PUT", f"/instances/{world.ids['instance']}")


def op_delete(world: World) -> None:
    world.call("DELETE", "/instances", query={"instanceId": world.ids["instance"]}, retry=True)


def op_allocate(world: World) -> None:
    world.ids["ip"] = world.value(world.call("POST", "/static-ips/allocate", form={"region": "fsn1", "zone": "a"}))


def op_associate(world: World) -> None:
    form = {"region": "fsn1", "zone": "a", "instanceId": world.ids["instance"], "id": world.ids["ip"]}
    world.ids["association"] = world.value(world.call("PUT", "/static-ips/associate", form=form))


def op_dissociate(world: World) -> None:
    form = {
        "region": "fsn1",
        "zone": "a",
        "instanceId": world.ids["instance"],
        "id": world.ids["ip"],
        "associationId": world.ids["association"],
    }
    world.call("PUT", "/static-ips/dissociate", form=form, retry=True)


def op_release(world: World) -> None:
    world.call(
        "DELETE", "/static-ips/release", query={"region": "fsn1", "zone": "a", "id": world.ids["ip"]}, retry=True
    )


@dataclass(frozen=True)
class Operation:
    name: str
    setup: Callable[[World], None]
    run: Callable[[World], None]
    expect: Callable[[World], None]


def instance_state(world: World) -> str:
    return world.octoperf.state(world.ids["instance"])


def expect_created(world: World) -> None:
    if world.ids.get("instance"):
        assert instance_state(world) == "running"
    else:
        assert not Instance.objects.exclude(status="terminated").exists()


def expect_rebooted(world: World) -> None:
    """Running again; and a reboot OctoPerf was answered 200 for reached Hetzner (a reboot_server action)."""
    assert instance_state(world) == "running"
    if 200 in world.answers:
        assert reboots_at_hetzner(world.cloud, world.ids["instance"]) >= 1, "200 to OctoPerf, no reboot at Hetzner"


def expect_terminated(world: World) -> None:
    assert instance_state(world) == "terminated"


def expect_allocated(world: World) -> None:
    if world.ids.get("ip"):
        assert StaticIP.objects.get(pk=world.ids["ip"]).status == "allocated"
    else:
        assert not StaticIP.objects.exclude(status="released").exists()


def expect_associated(world: World) -> None:
    if world.ids.get("association"):
        assert Association.objects.get(pk=world.ids["association"]).status == "associated"
        server = world.cloud.servers[Instance.objects.get(pk=world.ids["instance"]).hetzner_id]
        assert server["public_net"]["ipv4"]["ip"] == StaticIP.objects.get(pk=world.ids["ip"]).address
    assert instance_state(world) == "running"


def expect_dissociated(world: World) -> None:
    assert Association.objects.get(pk=world.ids["association"]).status == "ended"
    server = world.cloud.servers[Instance.objects.get(pk=world.ids["instance"]).hetzner_id]
    assert server["public_net"]["ipv4"]["ip"] != StaticIP.objects.get(pk=world.ids["ip"]).address
    assert instance_state(world) == "running"


def expect_released(world: World) -> None:
    assert StaticIP.objects.get(pk=world.ids["ip"]).status == "released"


OPERATIONS = [
    Operation("create", lambda world: None, op_create, expect_created),
    Operation("reboot", running_instance, op_reboot, expect_rebooted),
    Operation("delete", running_instance, op_delete, expect_terminated),
    Operation("allocate", lambda world: None, op_allocate, expect_allocated),
    Operation(
        "associate", lambda world: (running_instance(world), allocated_ip(world)), op_associate, expect_associated
    ),
    Operation("dissociate", associated, op_dissociate, expect_dissociated),
    Operation("release", allocated_ip, op_release, expect_released),
]


def fault_fired(world: World, method: str, path: str) -> bool:
    if getattr(world.cloud, "died_at", None) == path:
        return True
    return any(
        r.method == method and r.path == path and (r.timeout or (r.status or 0) >= 400) for r in world.cloud.requests
    )


def hetzner_matches_the_database(world: World) -> None:
    """Hetzner holds exactly what the database says is live, and nothing without a row."""
    cloud = world.cloud
    servers = {sid for sid, server in cloud.servers.items() if server["status"] != "deleting"}
    live = Instance.objects.exclude(status__in=["terminated", "deleting"])
    assert servers == set(live.values_list("hetzner_id", flat=True)), "servers differ from live instance rows"
    assert not Instance.objects.filter(status="deleting").exists(), "a delete was never finished"

    statics = {ip_id for ip_id, ip in cloud.primary_ips.items() if ip["labels"].get("octoprovider-role") == "static-ip"}
    allocated = StaticIP.objects.filter(status="allocated")
    assert statics == set(allocated.values_list("hetzner_id", flat=True)), "static IPs differ from allocated rows"
    assert not StaticIP.objects.filter(status__in=["allocating", "releasing"]).exists(), "a static IP is in limbo"
    for ip_id, ip in cloud.primary_ips.items():
        if ip_id not in statics:
            # Every other IP is a live server's own, and dies with it.
            assert ip["assignee_id"] in servers and ip["auto_delete"], f"a billed IP without a purpose: {ip}"
    assert not Association.objects.filter(status__in=["associating", "dissociating"]).exists()


def mutations_of(operation: Operation, world_type: type[World] = World) -> list[tuple[str, str]]:
    """Run the operation cleanly and return the Hetzner mutations it made, in order."""
    world = world_type()
    operation.setup(world)
    before = len(world.cloud.requests)
    operation.run(world)
    world.passes(25)
    operation.expect(world)
    return list(dict.fromkeys((r.method, r.path) for r in world.cloud.requests[before:] if r.method != "GET"))


@pytest.mark.parametrize("operation", OPERATIONS, ids=[operation.name for operation in OPERATIONS])
def test_no_fault_at_any_hetzner_call_leaks_or_misleads(operation, settings):
    settings.CREATE_GRACE = 60  # abandoned creates are given up within the passes below
    calls = mutations_of(operation)
    assert calls, f"{operation.name} made no Hetzner mutation"

    failures = []
    for method, path in calls:
        for fault in [fault for fault in FAULTS if fault.applies_to(method, path)]:
            scenario = f"{operation.name}: {fault.name} at {method} {path}"
            world = World()
            operation.setup(world)
            fault.inject(world.cloud, method, path)
            operation.run(world)
            if fault.lands_late:
                world.passes(10)  # past CREATE_GRACE: the row has given up on its create
                world.land_late(method, path)
            world.passes(40)
            assert fault_fired(world, method, path), f"{scenario}: the fault never fired"
            try:
                hetzner_matches_the_database(world)
                operation.expect(world)
                # Hetzner's failures are 503s with Retry-After to OctoPerf; only a process that died
                # leaves it a broken connection (502 from the proxy in front).
                assert fault.inject is _die_after or 502 not in world.answers, f"OctoPerf got {world.answers}"
            except AssertionError as exc:
                failures.append(f"{scenario}: {exc}")
            SCENARIOS_RUN.append(scenario)

    assert failures == []


# --- issue 20: OctoPerf's teardown order, and a move off another agent, with latency -----------------------


def with_latency(setup: Callable[[World], None]) -> Callable[[World], None]:
    """Let every Hetzner answer of the scenario travel a little (wall clock), as Hetzner's do."""

    def run(world: World) -> None:
        world.cloud.latency = max(world.cloud.latency, 0.001)
        setup(world)

    return run


def op_dissociate_then_release(world: World) -> None:
    """OctoPerf's teardown order: the release follows the dissociate at once, mid power cycle."""
    op_dissociate(world)
    op_release(world)


def expect_torn_down(world: World) -> None:
    assert 409 not in world.answers, f"OctoPerf got {world.answers}"
    expect_released(world)
    assert Association.objects.get(pk=world.ids["association"]).status == "ended"
    server = world.cloud.servers[Instance.objects.get(pk=world.ids["instance"]).hetzner_id]
    assert server["public_net"]["ipv4"] is not None, "the server was left without an IPv4"
    assert instance_state(world) == "running"


def ip_on_another_agent(world: World) -> None:
    """An instance with an IPv4 of its own, and the only static IP on another agent's server (given at create)."""
    running_instance(world)
    allocated_ip(world)
    world.ids["holder"] = world.octoperf.create()
    world.passes(6)


def expect_moved_off_the_agent(world: World) -> None:
    expect_associated(world)
    holder = Instance.objects.get(pk=world.ids["holder"])
    assert world.octoperf.state(holder.id) == "running"
    assert world.cloud.servers[holder.hetzner_id]["public_net"]["ipv4"] is not None
    # Every static IP's holder is the instance whose server Hetzner shows it on.
    by_server = dict(Instance.objects.exclude(hetzner_id=None).values_list("hetzner_id", "pk"))
    for row in StaticIP.objects.filter(status="allocated"):
        assert row.holder_id == by_server.get(world.cloud.primary_ips[row.hetzner_id]["assignee_id"])


ISSUE_20_OPERATIONS = [
    Operation(
        "dissociate then release at once", with_latency(associated), op_dissociate_then_release, expect_torn_down
    ),
    Operation(
        "associate an IP another agent has", with_latency(ip_on_another_agent), op_associate, expect_moved_off_the_agent
    ),
]


# One fault of each kind (Hetzner did nothing, said not found, did it and the answer was lost, the process
# died): these operations make many calls, and the whole matrix of each would double the suite's time.
ISSUE_20_FAULTS = [
    fault
    for fault in FAULTS
    if fault.name in ("unavailable before", "locked", "not found", "lost then rate limited", "died after")
]


@pytest.mark.parametrize("operation", ISSUE_20_OPERATIONS, ids=[operation.name for operation in ISSUE_20_OPERATIONS])
def test_no_fault_in_octoperfs_teardown_or_a_move_off_another_agent_leaks_or_misleads(operation, settings, monkeypatch):
    monkeypatch.setattr(f"{__name__}.FAULTS", ISSUE_20_FAULTS)
    test_no_fault_at_any_hetzner_call_leaks_or_misleads(operation, settings)


# --- cleanup's listings travel while OctoPerf calls ---------------------------------------------------


def _operation_while_cleanup_lists(world: World, operation: Operation, listing: str) -> list[str]:
    """Run cleanup (every finding acted on) with the operation carried out while its `listing` travels.

    The listing holds what Hetzner had when it was asked for; what the operation records meanwhile is
    missing from it without being gone. Return what cleanup did.
    """
    from datetime import timedelta

    from octoprovider.core.reports import Kind
    from octoprovider.operations.cleanup import cleanup_findings

    ran = []

    def operation_meanwhile(response, *args, **kwargs):
        request = response.request
        if request.method == "GET" and request.path_url.startswith(f"/v1{listing}?") and not ran:
            ran.append(True)
            operation.run(world)

    hetzner.add_response_hook(operation_meanwhile)
    try:
        findings = cleanup_findings(grace=timedelta(minutes=15))
    finally:
        hetzner.remove_hook(operation_meanwhile)
    assert ran, f"cleanup never listed {listing}"
    done = []
    for finding in findings:
        if finding.act().kind is not Kind.LEFT_ALONE:
            done.append(str(finding))
    return done


@pytest.mark.parametrize("listing", ["/servers", "/primary_ips"])
@pytest.mark.parametrize("operation", OPERATIONS, ids=[operation.name for operation in OPERATIONS])
def test_no_operation_carried_out_while_cleanup_lists_is_undone(operation, listing, settings):
    settings.CREATE_GRACE = 60
    world = World()
    operation.setup(world)
    world.passes(1)

    done = _operation_while_cleanup_lists(world, operation, listing)
    world.passes(40)

    SCENARIOS_RUN.append(f"{operation.name}: while cleanup lists {listing}")
    assert [line for line in done if line.startswith("end ")] == []
    hetzner_matches_the_database(world)
    operation.expect(world)
