"""The static-IP endpoints and the reconciler that carries them out, on the sandbox's power-off rule."""

import pytest

from instances.models import Instance
from staticips.models import Association, StaticIP
from tests.conftest import address_of, ipv4s, public_ipv4, server_of

# Hetzner's answers take a little time, and every test ends with nothing left billed at Hetzner.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("with_latency", "no_leftovers")]


def mutations(sandbox) -> list[str]:
    """What octoprovider asked Hetzner to change: every POST, PUT and DELETE the sandbox received."""
    return [f"{r.method} {r.path}" for r in sandbox.mutation_requests()]


def error_code(response) -> str:
    return response.json()["error"]["code"]


def run_until_settled(settle, passes: int = 12, seconds: float = 10) -> list[str]:
    """Run reconcile passes with simulated time between them; return the states OctoPerf would see."""
    states = []
    for _ in range(passes):
        settle(seconds)
        states.append(list(Instance.objects.values_list("status", flat=True)))
    return states


# --- allocate -----------------------------------------------------------------------------------------


def test_allocate_creates_a_primary_ipv4_that_outlives_servers(octoperf, sandbox):
    ip_id = octoperf.allocate(region="nbg1")

    assert ip_id.startswith("ip-")
    (primary_ip,) = sandbox.primary_ips.values()
    assert primary_ip["name"] == f"octoperf-{ip_id}"
    assert primary_ip["location"]["name"] == "nbg1"
    assert primary_ip["auto_delete"] is False
    assert primary_ip["assignee_id"] is None
    assert primary_ip["labels"]["managed-by"] == "octoprovider"
    assert primary_ip["labels"]["octoprovider-id"] == ip_id
    assert address_of(ip_id) == primary_ip["ip"]


def test_allocate_beyond_max_static_ips_is_429_before_any_hetzner_call(octoperf, sandbox, settings):
    settings.MAX_STATIC_IPS = 1
    octoperf.allocate()
    before = sandbox.request_count

    response = octoperf.call("POST", "/static-ips/allocate", form={"region": "fsn1", "zone": "a"})

    assert response.status_code == 429
    assert error_code(response) == "limit_reached"
    assert "MAX_STATIC_IPS" in response.json()["error"]["message"]
    assert sandbox.request_count == before


def test_allocate_without_region_is_400(octoperf):
    response = octoperf.call("POST", "/static-ips/allocate", form={"zone": "a"})

    assert response.status_code == 400
    assert error_code(response) == "invalid_input"
    assert "region" in response.json()["error"]["message"]


def test_allocate_in_an_unknown_region_is_400(octoperf, sandbox):
    response = octoperf.call("POST", "/static-ips/allocate", form={"region": "mars1"})

    assert response.status_code == 400
    assert error_code(response) == "unknown_region"
    assert sandbox.primary_ips == {}


# --- OctoPerf's whole flow ------------------------------------------------------------------------------


def test_associate_answers_at_once_and_the_reconciler_moves_the_ip(octoperf, sandbox, settle, running):
    ip_id = octoperf.allocate()
    own_ip_id = server_of(sandbox, running)["public_net"]["ipv4"]["id"]
    calls_before = sandbox.request_count

    response = octoperf.associate(ip_id, running)

    assert response.status_code == 200
    assert response.json()["value"].startswith("assoc-")
    assert sandbox.request_count == calls_before  # the Hetzner work happens after the answer

    states = {state for (state,) in run_until_settled(settle)}
    assert {"stopping", "stopped", "running"} <= states | {octoperf.state(running)}
    assert octoperf.state(running) == "running"
    assert public_ipv4(sandbox, running) == address_of(ip_id)
    # The server's own IPv4 was deleted: an unassigned IP is still billed.
    assert own_ip_id not in sandbox.primary_ips
    assert len(ipv4s(sandbox)) == 1
    assert Association.objects.get().status == "associated"


def test_the_state_tells_the_truth_during_the_power_cycle(octoperf, settle, running):
    ip_id = octoperf.allocate()
    octoperf.associate(ip_id, running)

    seen = []
    for _ in range(15):
        settle(2)
        state = octoperf.state(running)
        if not seen or seen[-1] != state:
            seen.append(state)

    assert seen[0] in ("running", "stopping")
    assert "stopped" in seen
    assert seen[-1] == "running"
    assert seen.index("stopped") < len(seen) - 1


def test_octoperfs_usual_order_delete_then_dissociate_then_release(octoperf, sandbox, settle, associated):
    ip_id, instance_id, association_id = associated

    assert octoperf.delete(instance_id).status_code == 200
    mutations = len(sandbox.mutation_requests())
    assert octoperf.dissociate(ip_id, instance_id, association_id).status_code == 200
    assert len(sandbox.mutation_requests()) == mutations  # bookkeeping only: no power cycle

    run_until_settled(settle, passes=3)
    assert octoperf.release(ip_id).status_code == 200
    run_until_settled(settle, passes=3)

    assert sandbox.servers == {}
    assert sandbox.primary_ips == {}
    assert octoperf.state(instance_id) == "terminated"
    assert StaticIP.objects.get(pk=ip_id).status == "released"


def test_release_right_after_delete_waits_out_the_ip_still_reported_assigned(octoperf, sandbox, settle, associated):
    ip_id, instance_id, association_id = associated
    octoperf.delete(instance_id)
    octoperf.dissociate(ip_id, instance_id, association_id)

    assert octoperf.release(ip_id).status_code == 200
    run_until_settled(settle, passes=4)

    assert sandbox.primary_ips == {}
    assert sandbox.servers == {}


def test_dissociate_before_delete_gives_the_server_a_fresh_ipv4(octoperf, sandbox, settle, associated):
    ip_id, instance_id, association_id = associated
    static_address = address_of(ip_id)

    assert octoperf.dissociate(ip_id, instance_id, association_id).status_code == 200
    run_until_settled(settle)

    assert octoperf.state(instance_id) == "running"
    assert public_ipv4(sandbox, instance_id) not in (None, static_address)
    static = next(ip for ip in sandbox.primary_ips.values() if ip["ip"] == static_address)
    assert static["assignee_id"] is None
    assert Association.objects.get().status == "ended"

    octoperf.delete(instance_id)
    octoperf.release(ip_id)
    run_until_settled(settle, passes=4)
    assert sandbox.servers == {}
    assert sandbox.primary_ips == {}  # the fresh IPv4 was auto-deleting


def test_associating_the_same_pair_again_answers_the_same_association_without_a_power_cycle(
    octoperf, sandbox, associated
):
    ip_id, instance_id, association_id = associated
    mutations = len(sandbox.mutation_requests())

    response = octoperf.associate(ip_id, instance_id)

    assert response.json()["value"] == association_id
    assert len(sandbox.mutation_requests()) == mutations


def test_dissociating_an_ended_association_is_ok(octoperf, sandbox, settle, associated):
    ip_id, instance_id, association_id = associated
    octoperf.dissociate(ip_id, instance_id, association_id)
    run_until_settled(settle)
    ended = Association.objects.get()
    assert ended.status == "ended"
    own_address, before = public_ipv4(sandbox, instance_id), mutations(sandbox)

    assert octoperf.dissociate(ip_id, instance_id, association_id).status_code == 200

    # Nothing left to do: no power cycle is announced, and no pass sends Hetzner anything.
    assert octoperf.state(instance_id) == "running"
    states = run_until_settled(settle, passes=4)
    assert all(state == ["running"] for state in states)
    assert mutations(sandbox) == before
    assert public_ipv4(sandbox, instance_id) == own_address
    assert Association.objects.values_list("status", "ended_at").get() == ("ended", ended.ended_at)


def test_releasing_a_released_ip_is_ok(octoperf, sandbox, settle):
    ip_id = octoperf.allocate()
    octoperf.release(ip_id)
    released_at = StaticIP.objects.get(pk=ip_id).released_at
    before = mutations(sandbox)

    assert octoperf.release(ip_id).status_code == 200

    run_until_settled(settle, passes=3)
    assert mutations(sandbox) == before  # no second delete of the Primary IP
    assert StaticIP.objects.values_list("status", "released_at").get() == ("released", released_at)


def test_deleting_the_instance_ends_its_association_and_frees_the_ip(octoperf, sandbox, settle, associated):
    ip_id, instance_id, _ = associated

    octoperf.delete(instance_id)
    run_until_settled(settle, passes=3)

    assert Association.objects.get().status == "ended"
    other = octoperf.create()
    settle(60)
    assert octoperf.associate(ip_id, other).status_code == 200
    run_until_settled(settle)
    assert public_ipv4(sandbox, other) == address_of(ip_id)


# --- conflicts and bad input ----------------------------------------------------------------------


def test_an_ip_associated_elsewhere_is_409(octoperf, settle, associated):
    ip_id, _, _ = associated
    other = octoperf.create()
    settle(60)

    response = octoperf.associate(ip_id, other)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "static_ip_in_use"


def test_an_instance_holding_another_static_ip_is_409(octoperf, associated):
    _, instance_id, _ = associated
    second = octoperf.allocate()

    response = octoperf.associate(second, instance_id)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "instance_has_static_ip"


def test_an_ip_and_an_instance_in_different_locations_is_409(octoperf, settle):
    ip_id = octoperf.allocate(region="nbg1")
    instance_id = octoperf.create(region="fsn1")
    settle(60)

    response = octoperf.associate(ip_id, instance_id, region="nbg1")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "region_mismatch"


def test_a_region_that_is_not_the_ips_is_409(octoperf, running):
    ip_id = octoperf.allocate(region="fsn1")

    response = octoperf.associate(ip_id, running, region="hel1")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "region_mismatch"


def test_associating_a_terminated_instance_is_409(octoperf, settle, running):
    ip_id = octoperf.allocate()
    octoperf.delete(running)

    response = octoperf.associate(ip_id, running)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "instance_gone"


def test_associating_a_released_ip_is_409(octoperf, sandbox, settle, running):
    ip_id = octoperf.allocate()
    octoperf.release(ip_id)
    own_address, before = public_ipv4(sandbox, running), mutations(sandbox)

    response = octoperf.associate(ip_id, running)

    assert response.status_code == 409
    assert error_code(response) == "static_ip_released"
    # Nothing changed: no association, no power cycle announced or sent.
    assert octoperf.state(running) == "running"
    assert not Association.objects.exists()
    assert StaticIP.objects.get(pk=ip_id).status == "released"
    run_until_settled(settle, passes=4)
    assert mutations(sandbox) == before
    assert public_ipv4(sandbox, running) == own_address


@pytest.mark.parametrize("unknown", ["ip", "instance"])
def test_associating_unknown_ids_is_404(octoperf, running, unknown):
    ip_id = octoperf.allocate()
    unknown_id = "ip-00000000000000000" if unknown == "ip" else "i-00000000000000000"
    args = (unknown_id, running) if unknown == "ip" else (ip_id, unknown_id)

    response = octoperf.associate(*args)

    assert response.status_code == 404
    assert error_code(response) == "not_found"
    assert unknown_id in response.json()["error"]["message"]


@pytest.mark.parametrize("missing", ["region", "instanceId", "id"])
def test_associate_without_a_parameter_is_400(octoperf, running, missing):
    form = {"region": "fsn1", "zone": "a", "instanceId": running, "id": "ip-00000000000000000"}
    del form[missing]

    response = octoperf.call("PUT", "/static-ips/associate", form=form)

    assert response.status_code == 400
    assert error_code(response) == "invalid_input"
    assert missing in response.json()["error"]["message"]


def test_dissociate_with_an_association_of_another_pair_is_409(octoperf, sandbox, settle, associated):
    ip_id, instance_id, association_id = associated
    other = octoperf.create()
    settle(60)
    version, before = Association.objects.get().version, mutations(sandbox)

    response = octoperf.dissociate(ip_id, other, association_id)

    assert response.status_code == 409
    assert error_code(response) == "association_mismatch"
    # Nothing changed: the association holds, and neither instance is power-cycled.
    assert Association.objects.values_list("status", "version").get() == ("associated", version)
    assert octoperf.state(instance_id) == "running" and octoperf.state(other) == "running"
    run_until_settled(settle, passes=4)
    assert mutations(sandbox) == before
    assert public_ipv4(sandbox, instance_id) == address_of(ip_id)


def test_dissociate_of_an_unknown_association_is_404(octoperf, associated):
    ip_id, instance_id, _ = associated

    response = octoperf.dissociate(ip_id, instance_id, "assoc-00000000000000000")

    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_dissociate_and_release_accept_a_region_no_longer_known(octoperf, sandbox, settle, associated):
    # The association and the IP know their location: an alias the operator removed since must not
    # strand them.
    ip_id, instance_id, association_id = associated
    static_address = address_of(ip_id)
    other_ip_id = octoperf.allocate()
    other_address = address_of(other_ip_id)

    assert octoperf.dissociate(ip_id, instance_id, association_id, region="old-alias").status_code == 200
    assert octoperf.release(other_ip_id, region="old-alias").status_code == 200

    # The work happened: the released IP is deleted at Hetzner, and the server leaves the static IP
    # for an IPv4 of its own.
    assert other_address not in [ip["ip"] for ip in sandbox.primary_ips.values()]
    assert StaticIP.objects.get(pk=other_ip_id).status == "released"
    run_until_settled(settle)
    assert Association.objects.get().status == "ended"
    assert octoperf.state(instance_id) == "running"
    assert public_ipv4(sandbox, instance_id) not in (None, static_address)


def test_release_of_an_ip_on_a_live_instance_is_409_saying_to_dissociate(octoperf, sandbox, associated):
    ip_id, _, _ = associated

    response = octoperf.release(ip_id)

    assert response.status_code == 409
    assert error_code(response) == "static_ip_in_use"
    assert "dissociate" in response.json()["error"]["message"]
    assert len(ipv4s(sandbox)) == 1


def test_release_of_an_unknown_ip_is_404(octoperf):
    response = octoperf.release("ip-00000000000000000")

    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_release_without_id_is_400(octoperf):
    response = octoperf.call("DELETE", "/static-ips/release", query={"region": "fsn1"})

    assert response.status_code == 400
    assert error_code(response) == "invalid_input"
    assert "id" in response.json()["error"]["message"]


# --- Hetzner being busy ----------------------------------------------------------------------------


def test_associating_a_booting_instance_waits_out_locked(octoperf, sandbox, settle):
    instance_id = octoperf.create()
    ip_id = octoperf.allocate()
    octoperf.associate(ip_id, instance_id)

    run_until_settled(settle, passes=20, seconds=3)

    assert any(r.status == 423 for r in sandbox.mutation_requests())
    assert octoperf.state(instance_id) == "running"
    assert public_ipv4(sandbox, instance_id) == address_of(ip_id)


def test_server_not_stopped_is_waited_out(octoperf, sandbox, settle, running):
    ip_id = octoperf.allocate()
    sandbox.inject_fault("POST", r"/primary_ips/\d+/actions/assign", code="server_not_stopped", status=412)
    octoperf.associate(ip_id, running)

    run_until_settled(settle)

    assert any(r.status == 412 for r in sandbox.mutation_requests())
    assert public_ipv4(sandbox, running) == address_of(ip_id)
    assert Association.objects.get().status == "associated"
