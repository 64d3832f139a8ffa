"""Server reuse: a deleted instance's server is parked for the rest of its billed hour, and the next create takes it."""

from datetime import timedelta

import pytest

from instances.models import Instance, ParkedServer
from instances.reuse import LABEL_PARKED_UNTIL
from octoprovider.core import clock
from octoprovider.operations.cleanup import cleanup_findings
from tests.conftest import USER_DATA

pytestmark = pytest.mark.django_db

NEXT_USER_DATA = "#!/bin/sh\necho the next run's agent, token s3cr3t-next\n"


@pytest.fixture(autouse=True)
def reuse_on(settings):
    settings.SERVER_REUSE = "billed-hour"


def later(sandbox, seconds: float) -> None:
    """Let time pass without a reconcile pass (a stopped reconciler)."""
    sandbox.clock.advance(seconds)
    clock.advance(seconds)


def server_posts(sandbox) -> int:
    return sum(1 for r in sandbox.mutation_requests() if r.method == "POST" and r.path == "/servers")


def parked_server(octoperf, settle, sandbox) -> tuple[str, int]:
    """A running instance deleted 15 minutes into its first hour: (its id, its server's id)."""
    instance_id = octoperf.create()
    settle(60)
    settle(14 * 60)
    server_id = Instance.objects.get(pk=instance_id).hetzner_id
    assert octoperf.delete(instance_id).status_code == 200
    return instance_id, server_id


def test_a_delete_with_time_left_in_the_billed_hour_powers_the_server_off_at_once_and_parks_it(
    octoperf, settle, sandbox
):
    instance_id, server_id = parked_server(octoperf, settle, sandbox)

    # The power-off left with the delete's answer: no agent sends load after its test ended.
    power_offs = [r for r in sandbox.mutation_requests() if r.path == f"/servers/{server_id}/actions/poweroff"]
    assert len(power_offs) == 1
    assert octoperf.state(instance_id) == "terminated"
    settle(5)
    server = sandbox.servers[server_id]
    assert server["status"] == "off"
    row = ParkedServer.objects.get(hetzner_id=server_id)
    assert row.status == "parked"
    created = Instance.objects.get(pk=instance_id).created_at
    assert row.deadline == created + timedelta(minutes=56)  # the next billed hour, less REUSE_MARGIN
    assert server["labels"][LABEL_PARKED_UNTIL] == str(int(row.deadline.timestamp()))


def test_a_delete_late_in_the_billed_hour_deletes_the_server(octoperf, settle, sandbox):
    instance_id = octoperf.create()
    settle(60)
    settle(50 * 60)  # 9 minutes left: less than REUSE_MIN_LEFT
    server_id = Instance.objects.get(pk=instance_id).hetzner_id

    octoperf.delete(instance_id)

    assert sandbox.servers[server_id]["status"] == "deleting"
    assert not ParkedServer.objects.exists()


def test_with_reuse_off_a_delete_deletes(octoperf, settle, sandbox, settings):
    settings.SERVER_REUSE = "off"
    instance_id = octoperf.create()
    settle(60)
    server_id = Instance.objects.get(pk=instance_id).hetzner_id

    octoperf.delete(instance_id)

    assert sandbox.servers[server_id]["status"] == "deleting"


def test_a_create_of_the_same_location_and_type_takes_the_parked_server_rebuilt_with_its_user_data(
    octoperf, settle, sandbox
):
    _, server_id = parked_server(octoperf, settle, sandbox)
    settle(5)
    posts = server_posts(sandbox)

    new_id = octoperf.create(user_data=NEXT_USER_DATA)

    assert server_posts(sandbox) == posts  # no new server
    assert Instance.objects.get(pk=new_id).hetzner_id == server_id
    assert sandbox.user_data(server_id) == NEXT_USER_DATA
    server = sandbox.servers[server_id]
    assert server["name"] == f"octoperf-{new_id}"
    assert server["labels"]["octoprovider-id"] == new_id
    assert LABEL_PARKED_UNTIL not in server["labels"]
    assert octoperf.state(new_id) == "pending"
    settle(15)
    assert octoperf.state(new_id) == "running"
    assert ParkedServer.objects.get(hetzner_id=server_id).status == "taken"


def test_a_create_of_another_type_creates_a_server(octoperf, settle, sandbox):
    _, server_id = parked_server(octoperf, settle, sandbox)
    settle(5)

    new_id = octoperf.create(type="MEDIUM")

    assert Instance.objects.get(pk=new_id).hetzner_id != server_id
    assert ParkedServer.objects.get(hetzner_id=server_id).status == "parked"


def test_a_taken_server_parks_again_and_is_deleted_before_its_next_billed_hour(octoperf, settle, sandbox):
    first_id, server_id = parked_server(octoperf, settle, sandbox)
    created = Instance.objects.get(pk=first_id).created_at
    settle(5)
    second_id = octoperf.create(user_data=NEXT_USER_DATA)
    settle(60)
    settle(60 * 50)  # 66 minutes into the server's life: its second hour is billed
    octoperf.delete(second_id)
    row = ParkedServer.objects.get(hetzner_id=server_id, status="parked")

    assert row.deadline == created + timedelta(hours=2, minutes=-4)  # the server's hours, not the instance's


def test_the_reconciler_deletes_a_parked_server_at_its_deadline(octoperf, settle, sandbox):
    instance_id, server_id = parked_server(octoperf, settle, sandbox)
    deadline = ParkedServer.objects.get(hetzner_id=server_id).deadline

    while clock.now() + timedelta(seconds=30) < deadline:
        settle(30)
    assert sandbox.servers[server_id]["status"] == "off"
    settle(30)

    assert sandbox.servers.get(server_id, {"status": "gone"})["status"] in ("deleting", "gone")
    assert ParkedServer.objects.get(hetzner_id=server_id).status == "deleted"
    settle(30)
    assert server_id not in sandbox.servers
    # Gone before the next billed hour started: one hour billed.
    assert clock.now() < Instance.objects.get(pk=instance_id).created_at + timedelta(hours=1)


def test_cleanup_deletes_a_parked_server_past_its_deadline_when_no_reconciler_runs(octoperf, settle, sandbox):
    _, server_id = parked_server(octoperf, settle, sandbox)
    later(sandbox, 40 * 60)

    findings = cleanup_findings(grace=timedelta(minutes=15))
    assert [f.why for f in findings if f.what.startswith("parked server")] == []  # before the deadline: nothing
    later(sandbox, 120)
    findings = [f for f in cleanup_findings(grace=timedelta(minutes=15)) if str(server_id) in f.what]

    assert len(findings) == 1 and "deadline" in findings[0].why
    findings[0].act()
    assert sandbox.servers[server_id]["status"] == "deleting"


def test_a_parked_server_is_no_orphan_to_the_drift_sweep_nor_to_cleanup(octoperf, settle, sandbox):
    _, server_id = parked_server(octoperf, settle, sandbox)
    for _ in range(4):
        settle(60, full=True)

    assert sandbox.servers[server_id]["status"] == "off"
    assert [str(f) for f in cleanup_findings(grace=timedelta(minutes=1))] == []


def test_a_parked_server_counts_against_max_instances_and_a_create_deletes_it_to_make_room(
    octoperf, settle, sandbox, settings
):
    settings.MAX_INSTANCES = 1
    _, server_id = parked_server(octoperf, settle, sandbox)
    settle(5)

    new_id = octoperf.create(type="MEDIUM")  # cannot take it: the parked one makes room

    assert Instance.objects.get(pk=new_id).status != "terminated"
    assert sandbox.servers[server_id]["status"] == "deleting"
    assert ParkedServer.objects.get(hetzner_id=server_id).status == "deleted"


def test_a_parked_server_counts_against_the_regions_cap(octoperf, settle, sandbox, settings):
    settings.MAX_INSTANCES_PER_REGION = 2
    parked_server(octoperf, settle, sandbox)
    octoperf.create(type="MEDIUM")

    response = octoperf.call("POST", "/instances", form={"userData": "x", "region": "nbg1", "type": "MEDIUM"})
    assert response.status_code == 200  # another region: untouched
    ParkedServer.objects.update(status="parking")  # its power-off in flight: not deletable to make room
    response = octoperf.call("POST", "/instances", form={"userData": "x", "region": "fsn1", "type": "LARGE"})
    assert response.status_code == 429


@pytest.mark.parametrize(
    ("code", "status"), [("invalid_input", 400), ("locked", 423), ("not_found", 404), ("server_error", 500)]
)
def test_a_rebuild_hetzner_refuses_deletes_that_server_and_the_create_gets_a_new_one(
    octoperf, settle, sandbox, code, status
):
    _, server_id = parked_server(octoperf, settle, sandbox)
    settle(5)
    sandbox.inject_fault("POST", rf"/servers/{server_id}/actions/rebuild", code=code, status=status, times=5)

    new_id = octoperf.create(user_data=NEXT_USER_DATA)

    new_server = Instance.objects.get(pk=new_id).hetzner_id
    assert new_server not in (None, server_id)
    assert sandbox.user_data(new_server) == NEXT_USER_DATA
    for _ in range(3):
        settle(30)
    assert octoperf.state(new_id) == "running"
    assert server_id not in sandbox.servers
    assert ParkedServer.objects.get(hetzner_id=server_id).status == "deleted"


def test_a_rebuild_that_leaves_the_server_off_is_followed_by_a_power_on(octoperf, settle, sandbox):
    parked_server(octoperf, settle, sandbox)
    settle(5)
    sandbox.rebuild_leaves_off = True

    new_id = octoperf.create(user_data=NEXT_USER_DATA)
    for _ in range(6):
        settle(5)

    assert octoperf.state(new_id) == "running"


def test_a_take_is_no_slower_to_running_than_a_create(octoperf, settle, sandbox):
    parked_server(octoperf, settle, sandbox)
    settle(5)
    taken = octoperf.create(user_data=NEXT_USER_DATA)
    created = octoperf.create(type="MEDIUM")

    seconds = 0
    while octoperf.state(created) != "running":
        assert octoperf.state(taken) == "running" or seconds < 10
        settle(1)
        seconds += 1
    assert octoperf.state(taken) == "running"


def test_user_data_of_a_take_is_never_stored(octoperf, settle, sandbox):
    parked_server(octoperf, settle, sandbox)
    octoperf.create(user_data=NEXT_USER_DATA)

    for row in ParkedServer.objects.values():
        assert "s3cr3t-next" not in str(row)
    for row in Instance.objects.values():
        assert "s3cr3t" not in str(row)
    assert USER_DATA != NEXT_USER_DATA


def test_a_create_over_hetzners_server_quota_deletes_a_parked_server_and_is_created(octoperf, settle, sandbox):
    _, server_id = parked_server(octoperf, settle, sandbox)
    settle(5)
    sandbox.set_quota(servers=1)

    new_id = octoperf.create(type="MEDIUM")  # cannot take it: Hetzner's quota has no room

    assert Instance.objects.get(pk=new_id).hetzner_id not in (None, server_id)
    assert server_id not in sandbox.servers
    assert ParkedServer.objects.get(hetzner_id=server_id).end_reason == "room"
