"""Static IPs given at create, associated by bookkeeping, released without cutting a server off.

Every test ends as OctoPerf ends a run (delete, dissociate, release) and checks that nothing is left
billed at Hetzner (`no_leftovers`); answers take a little time to travel (`with_latency`).
"""

import json

import pytest
from django.core.management import call_command

from instances.models import Instance
from octoprovider.operations.models import AuditEvent
from staticips.models import AddressChange, Association, StaticIP
from tests.conftest import address_of, ipv4s, public_ipv4

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("with_latency", "no_leftovers")]


def power_offs(sandbox) -> int:
    return sum(1 for r in sandbox.mutation_requests() if r.path.endswith("/actions/poweroff"))


def run_passes(settle, passes: int = 12, seconds: float = 10) -> set[str]:
    """Run reconcile passes; return every instance state OctoPerf could have seen meanwhile."""
    seen = set()
    for _ in range(passes):
        settle(seconds)
        seen |= set(Instance.objects.values_list("status", flat=True))
    return seen


# --- pre-attach at create ------------------------------------------------------------------------------


def test_a_create_with_a_free_static_ip_gets_that_address_and_no_ipv4_of_its_own(octoperf, sandbox, settle):
    ip_id = octoperf.allocate()

    instance_id = octoperf.create()
    settle(60)

    assert public_ipv4(sandbox, instance_id) == address_of(ip_id)
    (create,) = [r for r in sandbox.mutation_requests() if r.path == "/servers"]
    assert create.body["public_net"]["ipv4"] == StaticIP.objects.get(pk=ip_id).hetzner_id
    assert len(ipv4s(sandbox)) == 1  # no auto-created IPv4 to delete later
    assert StaticIP.objects.get(pk=ip_id).holder_id == instance_id


def test_a_static_ip_of_another_location_is_not_given(octoperf, sandbox, settle):
    octoperf.allocate(region="nbg1")

    instance_id = octoperf.create(region="fsn1")
    settle(60)

    assert "ipv4" not in (
        (create := next(r for r in sandbox.mutation_requests() if r.path == "/servers")).body.get("public_net") or {}
    )
    assert public_ipv4(sandbox, instance_id) not in (None, StaticIP.objects.get().address), create


def test_creates_take_each_free_static_ip_once_and_the_others_get_their_own(octoperf, sandbox, settle):
    ip_ids = [octoperf.allocate() for _ in range(2)]

    instance_ids = [octoperf.create() for _ in range(3)]
    settle(60)

    addresses = [public_ipv4(sandbox, instance_id) for instance_id in instance_ids]
    assert sorted(addresses[:2]) == sorted(address_of(ip_id) for ip_id in ip_ids)
    assert addresses[2] not in addresses[:2]


def test_a_primary_ip_hetzner_refuses_at_create_is_skipped(octoperf, sandbox, settle):
    octoperf.allocate()
    sandbox.inject_fault("POST", "/servers", code="primary_ip_assigned", status=412)

    instance_id = octoperf.create()
    settle(60)

    assert octoperf.state(instance_id) == "running"
    assert StaticIP.objects.get().holder_id is None


# --- associate is bookkeeping ----------------------------------------------------------------------------


def test_associating_the_ip_the_server_already_has_answers_with_no_hetzner_call(octoperf, sandbox, settle):
    ip_id = octoperf.allocate()
    instance_id = octoperf.create()
    settle(60)
    requests_before = sandbox.request_count

    response = octoperf.associate(ip_id, instance_id)

    assert response.status_code == 200
    assert sandbox.request_count == requests_before
    assert Association.objects.get().status == "associated"
    assert run_passes(settle) == {"running"}
    assert power_offs(sandbox) == 0


def test_associating_another_free_ip_swaps_what_the_two_ipids_stand_for(octoperf, sandbox, settle):
    first_ip, second_ip = octoperf.allocate(), octoperf.allocate()
    first, second = octoperf.create(), octoperf.create()
    settle(60)
    first_address, second_address = public_ipv4(sandbox, first), public_ipv4(sandbox, second)
    requests_before = sandbox.request_count

    # OctoPerf picks any free ipId: here the one whose address the other server has.
    holder_of_second_ip = StaticIP.objects.get(pk=second_ip).holder_id
    other = first if holder_of_second_ip == second else second
    response = octoperf.associate(second_ip, other)

    assert response.status_code == 200
    assert sandbox.request_count == requests_before
    assert address_of(second_ip) == public_ipv4(sandbox, other)
    assert {address_of(first_ip), address_of(second_ip)} == {first_address, second_address}
    assert run_passes(settle, passes=3) == {"running"}
    assert power_offs(sandbox) == 0
    # Audited, and the history shows which address each ipId stood for.
    (swap,) = AuditEvent.objects.filter(kind="swap")
    assert set(swap.our_ids.split()) >= {first_ip, second_ip, other}
    assert [change.reason.split()[0] for change in AddressChange.objects.filter(static_ip_id=second_ip)] == [
        "associate",
        "allocated",
    ]
    # A full pass after the swap keeps both rows on their new Primary IPs.
    settle(30, full=True)
    assert {address_of(first_ip), address_of(second_ip)} == {first_address, second_address}
    assert StaticIP.objects.filter(status="allocated").count() == 2


def test_a_server_without_a_static_ip_gets_one_with_todays_move(octoperf, sandbox, settle):
    instance_id = octoperf.create()
    settle(60)
    ip_id = octoperf.allocate()

    octoperf.associate(ip_id, instance_id)
    seen = run_passes(settle)

    assert "stopped" in seen
    assert octoperf.state(instance_id) == "running"
    assert public_ipv4(sandbox, instance_id) == address_of(ip_id)
    assert StaticIP.objects.get().holder_id == instance_id


def test_an_ip_on_another_running_server_is_swapped_with_one_on_no_server(octoperf, sandbox, settle):
    held_ip = octoperf.allocate()
    holder = octoperf.create()
    bare = octoperf.create()  # no free IP left for it
    settle(60)
    spare_ip = octoperf.allocate()
    holder_address = public_ipv4(sandbox, holder)

    octoperf.associate(held_ip, bare)
    run_passes(settle)

    assert public_ipv4(sandbox, holder) == holder_address  # never cut off
    assert public_ipv4(sandbox, bare) == address_of(held_ip)
    assert address_of(spare_ip) == holder_address
    assert [server["id"] for server in sandbox.servers.values() if server["status"] == "running"] == [
        server["id"] for server in sandbox.servers.values()
    ]


def test_with_more_instances_than_ips_the_holder_is_moved_off_safely_first(octoperf, sandbox, settle):
    ip_id = octoperf.allocate()
    holder = octoperf.create()
    bare = octoperf.create()
    settle(60)

    octoperf.associate(ip_id, bare)
    run_passes(settle, passes=25)

    assert octoperf.state(holder) == "running"
    assert octoperf.state(bare) == "running"
    assert public_ipv4(sandbox, bare) == address_of(ip_id)
    assert public_ipv4(sandbox, holder) not in (None, address_of(ip_id))
    assert Association.objects.get(internal=False).status == "associated"


# --- release never cuts a server off --------------------------------------------------------------------


def test_releasing_an_ip_a_running_server_has_swaps_it_with_one_on_no_server(octoperf, sandbox, settle):
    ip_id = octoperf.allocate()
    instance_id = octoperf.create()
    settle(60)
    spare_ip = octoperf.allocate()
    address = public_ipv4(sandbox, instance_id)

    assert octoperf.release(ip_id).status_code == 200
    run_passes(settle, passes=3)

    assert public_ipv4(sandbox, instance_id) == address
    assert address_of(spare_ip) == address
    assert StaticIP.objects.get(pk=ip_id).status == "released"
    assert len(ipv4s(sandbox)) == 1
    assert power_offs(sandbox) == 0


def test_the_orphan_sweep_keeps_an_address_a_swap_gave_to_another_ipid(octoperf, sandbox, settle):
    # The Primary IP keeps the label of the ipId it was allocated for; after a release by swap that
    # ipId is released while another one owns the address, which must survive every full pass.
    ip_id = octoperf.allocate()
    instance_id = octoperf.create()
    settle(60)
    spare_ip = octoperf.allocate()
    address = public_ipv4(sandbox, instance_id)
    assert octoperf.release(ip_id).status_code == 200

    live_ip_id = StaticIP.objects.get(pk=spare_ip).hetzner_id
    for _ in range(3):
        settle(30, full=True)

    assert public_ipv4(sandbox, instance_id) == address
    assert address_of(spare_ip) == address
    assert [ip["ip"] for ip in ipv4s(sandbox)] == [address]
    assert not [
        r for r in sandbox.mutation_requests() if r.method == "DELETE" and r.path == f"/primary_ips/{live_ip_id}"
    ]
    # Once its server is gone the address is unassigned, and still the spare ipId's.
    octoperf.delete(instance_id)
    for _ in range(3):
        settle(30, full=True)
    assert [ip["ip"] for ip in ipv4s(sandbox)] == [address]
    assert StaticIP.objects.get(pk=spare_ip).status == "allocated"


def test_releasing_the_only_ip_a_running_server_has_gives_it_its_own_first(octoperf, sandbox, settle):
    ip_id = octoperf.allocate()
    instance_id = octoperf.create()
    settle(60)

    assert octoperf.release(ip_id).status_code == 200
    run_passes(settle, passes=15)

    assert octoperf.state(instance_id) == "running"
    assert public_ipv4(sandbox, instance_id) not in (None, address_of(ip_id))
    assert StaticIP.objects.get(pk=ip_id).status == "released"
    assert [ip["auto_delete"] for ip in ipv4s(sandbox)] == [True]


# --- strict mode ----------------------------------------------------------------------------------------


def test_strict_mode_refuses_a_create_that_would_leave_from_an_address_outside_the_allow_list(
    octoperf, sandbox, settle, settings
):
    settings.STATIC_IP_STRICT = True
    octoperf.allocate()
    octoperf.create()
    servers_before = len(sandbox.servers)

    response = octoperf.call("POST", "/instances", form={"userData": "x", "region": "fsn1", "type": "SMALL"})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "no_free_static_ip"
    assert "None of the 1 static IPs in fsn1 is spare" in response.json()["error"]["message"]
    assert len(sandbox.servers) == servers_before
    # A location where the deployment has no static IP is not concerned.
    assert octoperf.create(region="nbg1").startswith("i-")


def test_in_strict_mode_an_associate_that_would_power_cycle_another_agent_off_the_allow_list_is_409(
    octoperf, sandbox, settle, settings
):
    settings.STATIC_IP_STRICT = True
    bare = octoperf.create()  # before any static IP in fsn1: an IPv4 of its own
    settle(60)
    ip_id = octoperf.allocate()
    agent = octoperf.create()  # gets the only static IP at create; no spare is left
    settle(60)
    address = address_of(ip_id)

    response = octoperf.associate(ip_id, bare)
    run_passes(settle, passes=10)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "static_ip_on_another_instance"
    assert agent in response.json()["error"]["message"] and "STATIC_IP_STRICT" in response.json()["error"]["message"]
    assert power_offs(sandbox) == 0
    assert octoperf.state(agent) == "running" and public_ipv4(sandbox, agent) == address
    assert not Association.objects.exists()
    # Once a static IP is on no server, the same associate goes through, disturbing only `bare`.
    octoperf.allocate()
    assert octoperf.associate(ip_id, bare).status_code == 200
    run_passes(settle, passes=15)
    assert public_ipv4(sandbox, agent) == address
    assert public_ipv4(sandbox, bare) == address_of(ip_id)
    assert {r.path for r in sandbox.mutation_requests() if r.path.endswith("/actions/poweroff")} == {
        f"/servers/{Instance.objects.get(pk=bare).hetzner_id}/actions/poweroff"
    }


def test_in_strict_mode_a_release_that_would_power_cycle_an_agent_off_the_allow_list_is_409(
    octoperf, sandbox, settle, settings
):
    settings.STATIC_IP_STRICT = True
    ip_id = octoperf.allocate()
    agent = octoperf.create()
    settle(60)

    response = octoperf.release(ip_id)
    run_passes(settle, passes=10)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "static_ip_on_another_instance"
    assert power_offs(sandbox) == 0
    assert public_ipv4(sandbox, agent) == address_of(ip_id)
    assert StaticIP.objects.get().status == "allocated"
    # Once the agent is deleted, the release goes through.
    octoperf.delete(agent)
    run_passes(settle, passes=3)
    assert octoperf.release(ip_id).status_code == 200


# --- the allow-list ------------------------------------------------------------------------------------


def test_the_allow_list_command_lists_every_allocated_address_by_location(octoperf, settle):
    fsn = [octoperf.allocate() for _ in range(2)]
    nbg = octoperf.allocate(region="nbg1")
    released = octoperf.allocate()
    octoperf.release(released)
    from io import StringIO

    out = StringIO()
    call_command("static-ips", "--json", stdout=out)
    text = StringIO()
    call_command("static-ips", stdout=text)

    assert json.loads(out.getvalue()) == {"fsn1": sorted(address_of(ip_id) for ip_id in fsn), "nbg1": [address_of(nbg)]}
    assert address_of(released) not in text.getvalue()
    assert "fsn1 (2)" in text.getvalue() and address_of(nbg) in text.getvalue()


def test_in_strict_mode_a_create_whose_static_ip_hetzner_refuses_answers_409_and_leaves_nothing(
    octoperf, sandbox, settle, settings
):
    settings.STATIC_IP_STRICT = True
    octoperf.allocate()
    sandbox.inject_fault("POST", "/servers", code="primary_ip_assigned", status=412)

    response = octoperf.call("POST", "/instances", form={"userData": "x", "region": "fsn1", "type": "SMALL"})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "no_free_static_ip"
    assert sandbox.servers == {}
    assert Instance.objects.get().status == "terminated"
