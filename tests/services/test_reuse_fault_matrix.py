"""The fault matrix of server reuse: every Hetzner call of park, take and the deadline delete, under every fault.

As in test_fault_matrix.py, the calls are recorded from a clean run and each is run again with each
fault (Hetzner did nothing, `locked`, `not_found`, a refusal, the answer lost, the process died
between the answer and the database write). After the reconciler has run: Hetzner holds exactly the
live instances' servers and the parked ones, every parked server is off (no agent sends load after
its delete answered), no parking is left half-way, and OctoPerf saw the right thing: a delete that
answered 200 terminated the instance, a create that answered an id got a running instance.
"""

from datetime import timedelta

import pytest

from instances.models import Instance, ParkedServer
from octoprovider.core import clock
from tests.services import test_fault_matrix as matrix

pytestmark = pytest.mark.django_db

# A refused rebuild (invalid_input: an image Hetzner will not rebuild from) joins the usual faults.
FAULTS = [
    *matrix.FAULTS,
    matrix.Fault("rebuild refused", matrix._sandbox_fault(code="invalid_input", status=400)),
]


class World(matrix.World):
    def __init__(self):
        ParkedServer.objects.all().delete()
        super().__init__()

    def later(self, seconds: float) -> None:
        """Let time pass with no reconcile pass."""
        self.cloud.clock.advance(seconds)
        clock.advance(seconds)


def parked(world: World) -> None:
    """An instance deleted 15 minutes into its server's first hour: its server parked, powered off."""
    matrix.running_instance(world)
    world.later(14 * 60)
    world.ids["parked"] = world.ids.pop("instance")
    assert world.octoperf.delete(world.ids["parked"]).status_code == 200
    world.passes(1)
    world.ids["server"] = ParkedServer.objects.get(status="parked").hetzner_id


def op_park(world: World) -> None:
    world.later(14 * 60)
    matrix.op_delete(world)


def op_take(world: World) -> None:
    matrix.op_create(world)


def op_deadline(world: World) -> None:
    deadline = ParkedServer.objects.get(hetzner_id=world.ids["server"]).deadline
    world.later((deadline - clock.now()).total_seconds() - 5)
    world.passes(1)


def hetzner_holds_the_live_and_the_parked(world: World) -> None:
    """Hetzner holds the live instances' servers and the parked ones (off), nothing else; nothing is half-way."""
    servers = {sid: server for sid, server in world.cloud.servers.items() if server["status"] != "deleting"}
    live = set(Instance.objects.exclude(status__in=["terminated", "deleting"]).values_list("hetzner_id", flat=True))
    parked_ids = set(ParkedServer.objects.filter(status="parked").values_list("hetzner_id", flat=True))
    assert set(servers) == live | parked_ids, "servers differ from live instances and parked servers"
    assert not live & parked_ids, "a server both parked and an instance's"
    for server_id in parked_ids:
        assert servers[server_id]["status"] == "off", "a parked server runs: its agent may still send load"
    assert not Instance.objects.filter(status="deleting").exists(), "a delete was never finished"
    half_way = ParkedServer.objects.filter(status__in=["parking", "taking", "deleting"])
    assert not half_way.exists(), f"a parking half-way: {list(half_way.values('status', 'last_error'))}"


def expect_parked_or_deleted(world: World) -> None:
    matrix.expect_terminated(world)
    server_id = Instance.objects.get(pk=world.ids["instance"]).hetzner_id
    assert world.cloud.servers.get(server_id, {"status": "off"})["status"] in ("off", "deleting")


def expect_taken_or_created(world: World) -> None:
    matrix.expect_created(world)


def expect_deleted_in_its_paid_hour(world: World) -> None:
    row = ParkedServer.objects.get(hetzner_id=world.ids["server"])
    assert row.status == "deleted"
    assert world.ids["server"] not in world.cloud.servers
    deletes = [r for r in world.cloud.requests if r.method == "DELETE" and r.path == f"/servers/{world.ids['server']}"]
    boundary = row.billed_since + timedelta(hours=1)
    # The last try (a lost answer's retries hear not_found) went before the next billed hour started.
    assert deletes and deletes[-1].at < boundary.timestamp(), "deleted after its next billed hour started"


OPERATIONS = [
    matrix.Operation("park", matrix.running_instance, op_park, expect_parked_or_deleted),
    matrix.Operation("take", parked, op_take, expect_taken_or_created),
    matrix.Operation("deadline delete", parked, op_deadline, expect_deleted_in_its_paid_hour),
]


@pytest.mark.parametrize("operation", OPERATIONS, ids=[operation.name for operation in OPERATIONS])
def test_no_fault_at_any_call_of_park_take_or_deadline_leaks_runs_an_agent_or_misleads(operation, settings):
    settings.SERVER_REUSE = "billed-hour"
    settings.CREATE_GRACE = 60
    calls = matrix.mutations_of(operation, World)
    expected = {
        "park": {"poweroff", "PUT"},
        "take": {"rebuild", "PUT"},
        "deadline delete": {"DELETE"},
    }[operation.name]
    assert expected <= {path.rsplit("/", 1)[-1] if method == "POST" else method for method, path in calls}, calls

    failures = []
    for method, path in calls:
        for fault in [fault for fault in FAULTS if fault.applies_to(method, path)]:
            scenario = f"{operation.name}: {fault.name} at {method} {path}"
            world = World()
            operation.setup(world)
            fault.inject(world.cloud, method, path)
            operation.run(world)
            if fault.lands_late:
                world.passes(10)
                world.land_late(method, path)
            world.passes(40)
            assert matrix.fault_fired(world, method, path), f"{scenario}: the fault never fired"
            try:
                hetzner_holds_the_live_and_the_parked(world)
                operation.expect(world)
                assert fault.inject is matrix._die_after or 502 not in world.answers, f"OctoPerf got {world.answers}"
            except AssertionError as exc:
                failures.append(f"{scenario}: {exc}")
            matrix.SCENARIOS_RUN.append(scenario)

    assert failures == []
