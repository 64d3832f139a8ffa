"""The four instance endpoints, as OctoPerf uses them, against the simulated Hetzner Cloud."""

import logging
import re

import pytest

from instances.models import Instance
from tests.conftest import USER_DATA

pytestmark = pytest.mark.django_db


def only_server(sandbox) -> dict:
    assert len(sandbox.servers) == 1, sandbox.servers
    return next(iter(sandbox.servers.values()))


def requests_to(sandbox, method: str, pattern: str) -> list:
    return [r for r in sandbox.requests if r.method == method and re.fullmatch(pattern, r.path)]


# --- create -------------------------------------------------------------------------------------


def test_create_answers_our_own_instance_id(octoperf):
    instance_id = octoperf.create()

    assert re.fullmatch(r"i-[0-9a-f]{17}", instance_id)
    assert Instance.objects.filter(pk=instance_id).exists()


def test_create_sends_hetzner_the_server_octoperf_asked_for(octoperf, sandbox):
    instance_id = octoperf.create(region="fsn1", type="LARGE")

    server = only_server(sandbox)
    assert server["name"] == f"octoperf-{instance_id}"
    assert server["server_type"]["name"] == "cx43"
    assert server["location"]["name"] == "fsn1"
    assert server["image"]["name"] == "docker-ce"
    assert server["labels"] == {
        "managed-by": "octoprovider",
        "octoprovider-deployment": "default",
        "octoprovider-id": instance_id,
    }
    assert sandbox.user_data(server["id"]) == USER_DATA


def test_create_outside_europe_uses_the_cpx_types(octoperf, sandbox):
    octoperf.create(region="ash", type="XLARGE")

    server = only_server(sandbox)
    assert (server["server_type"]["name"], server["location"]["name"]) == ("cpx52", "ash")


def test_create_accepts_an_operator_alias_for_a_region(octoperf, sandbox, settings):
    settings.REGION_ALIASES = {"eu-central": "nbg1"}

    octoperf.create(region="EU-Central", type="small")

    assert only_server(sandbox)["location"]["name"] == "nbg1"


def test_create_passes_ssh_keys_and_firewalls_by_name(octoperf, sandbox, settings):
    sandbox.add_ssh_key("ops")
    firewall_id = sandbox.add_firewall("agents")
    settings.HCLOUD_SSH_KEYS = ["ops"]
    settings.HCLOUD_FIREWALLS = ["agents"]

    octoperf.create()

    body = requests_to(sandbox, "POST", "/servers")[0].body
    assert body["ssh_keys"] == ["ops"]
    assert body["firewalls"] == [{"firewall": firewall_id}]


def test_create_with_a_firewall_missing_at_hetzner_is_503_naming_it(octoperf, sandbox, settings):
    settings.HCLOUD_FIREWALLS = ["nonexistent"]

    response = octoperf.call("POST", "/instances", form={"userData": "x", "region": "fsn1", "type": "SMALL"})

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "configuration_error"
    assert "nonexistent" in response.json()["error"]["message"]
    assert sandbox.servers == {}


def test_create_accepts_a_json_body(octoperf, sandbox):
    response = octoperf.client.post(
        f"{octoperf.base}/instances",
        {"userData": USER_DATA, "region": "hel1", "type": "MEDIUM"},
        content_type="application/json",
    )

    assert response.status_code == 200
    assert only_server(sandbox)["server_type"]["name"] == "cx33"


def test_create_accepts_a_multipart_body(octoperf, sandbox):
    response = octoperf.client.post(
        f"{octoperf.base}/instances", {"userData": USER_DATA, "region": "hel1", "type": "MEDIUM"}
    )

    assert response.status_code == 200
    assert sandbox.user_data(only_server(sandbox)["id"]) == USER_DATA


def test_create_accepts_parameters_in_the_query_string(octoperf, sandbox):
    response = octoperf.call("POST", "/instances", query={"region": "fsn1", "type": "SMALL"}, form={"userData": "x"})

    assert response.status_code == 200
    assert len(sandbox.servers) == 1


def test_user_data_of_exactly_32_kib_is_accepted(octoperf, sandbox):
    octoperf.create(user_data="a" * 32 * 1024)

    assert len(sandbox.user_data(only_server(sandbox)["id"])) == 32 * 1024


def test_user_data_of_32_kib_in_two_byte_characters_is_accepted(octoperf, sandbox):
    octoperf.create(user_data="é" * 16 * 1024)

    assert sandbox.user_data(only_server(sandbox)["id"]) == "é" * 16 * 1024


def test_user_data_over_32_kib_is_400_naming_the_limit(octoperf, sandbox):
    response = octoperf.call(
        "POST", "/instances", form={"userData": "é" * (16 * 1024 + 1), "region": "fsn1", "type": "SMALL"}
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "user_data_too_large"
    assert "32 KiB" in response.json()["error"]["message"]
    assert sandbox.requests == []


def test_user_data_is_never_stored_logged_or_echoed(octoperf, sandbox, caplog):
    secret = "s3cr3t-agent-token"
    caplog.set_level(logging.DEBUG)

    instance_id = octoperf.create(user_data=USER_DATA)
    octoperf.state(instance_id)
    octoperf.delete(instance_id)

    row = Instance.objects.filter(pk=instance_id).values().get()
    assert not any(secret in str(value) for value in row.values())
    assert secret not in caplog.text


@pytest.mark.parametrize("missing", ["userData", "region", "type"])
def test_create_without_a_parameter_is_400_naming_it(octoperf, sandbox, missing):
    form = {"userData": USER_DATA, "region": "fsn1", "type": "SMALL"}
    del form[missing]

    response = octoperf.call("POST", "/instances", form=form)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"
    assert missing in response.json()["error"]["message"]
    assert sandbox.requests == []


def test_create_with_an_unknown_type_is_400(octoperf, sandbox):
    response = octoperf.call("POST", "/instances", form={"userData": "x", "region": "fsn1", "type": "HUGE"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_type"
    assert "SMALL" in response.json()["error"]["message"]
    assert sandbox.requests == []


def test_create_in_an_unknown_region_is_400(octoperf, sandbox):
    response = octoperf.call("POST", "/instances", form={"userData": "x", "region": "eu-west-1", "type": "SMALL"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_region"
    assert "eu-west-1" in response.json()["error"]["message"]
    assert sandbox.requests == []


def test_create_of_a_type_not_sold_in_the_location_is_400_saying_so(octoperf, sandbox, settings):
    settings.SERVER_TYPES = {**settings.SERVER_TYPES, "ash": {**settings.SERVER_TYPES["ash"], "SMALL": "cx23"}}

    response = octoperf.call("POST", "/instances", form={"userData": "x", "region": "ash", "type": "SMALL"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "type_not_available"
    assert "cx23" in response.json()["error"]["message"]
    assert "not sold in ash" in response.json()["error"]["message"]
    assert sandbox.servers == {}


# --- Hetzner's errors, as OctoPerf sees them ----------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "words"),
    [
        ("rate_limit_exceeded", 429, "rate limit"),
        ("unavailable", 503, "unavailable"),
        ("resource_unavailable", 412, "capacity"),
        ("resource_limit_exceeded", 403, "quota"),
        ("unauthorized", 401, "HCLOUD_TOKEN"),
    ],
)
def test_hetzner_refusing_a_create_is_503_with_retry_after(octoperf, sandbox, code, status, words):
    # More faults than hcloud's retries, so that the error reaches us.
    sandbox.inject_fault("POST", r"/servers", code=code, status=status, times=5)

    response = octoperf.call("POST", "/instances", form={"userData": "x", "region": "fsn1", "type": "SMALL"})

    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert words in response.json()["error"]["message"]
    assert sandbox.servers == {}
    # An outage may come after the effect: until the reconciler has made sure no server exists under
    # the instance's name, the row is shutting down. A plain refusal created nothing.
    assert Instance.objects.get().state == ("shutting-down" if code == "unavailable" else "terminated")


# Hetzner's own failures (its error table): OctoPerf should come back later, not give up on a 502.
HETZNER_FAILURES = [("server_error", 500), ("service_error", 422), ("maintenance", 403), ("timeout", 504)]


@pytest.mark.parametrize(("code", "status"), HETZNER_FAILURES, ids=[code for code, _ in HETZNER_FAILURES])
def test_hetzner_failing_a_create_is_503_with_retry_after_never_502(octoperf, sandbox, code, status):
    sandbox.inject_fault("POST", r"/servers", code=code, status=status, times=5)  # more than hcloud retries

    response = octoperf.call("POST", "/instances", form={"userData": "x", "region": "fsn1", "type": "SMALL"})

    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert response.json()["error"]["code"] == f"hetzner_{code}"


@pytest.mark.parametrize(("code", "status"), HETZNER_FAILURES, ids=[code for code, _ in HETZNER_FAILURES])
def test_hetzner_failing_a_reboot_is_503_with_retry_after_never_502(octoperf, sandbox, settle, code, status):
    instance_id = octoperf.create()
    settle(60)
    sandbox.inject_fault("POST", r"/servers/\d+/actions/reboot", code=code, status=status, times=5)

    response = octoperf.reboot(instance_id)

    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert response.json()["error"]["code"] == f"hetzner_{code}"


def test_hetzner_quota_reached_is_503_naming_the_quota(octoperf, sandbox):
    sandbox.set_quota(servers=1)
    octoperf.create()

    response = octoperf.call("POST", "/instances", form={"userData": "x", "region": "fsn1", "type": "SMALL"})

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "hetzner_resource_limit_exceeded"
    assert "quota" in response.json()["error"]["message"]
    assert len(sandbox.servers) == 1


def test_a_create_retried_after_a_lost_answer_finds_the_server_by_name(octoperf, sandbox):
    # The first POST creates the server but its answer is lost; hcloud retries and hears
    # uniqueness_error: the server under our deterministic name is the one we asked for.
    sandbox.inject_fault("POST", r"/servers", after=True, timeout=True)

    instance_id = octoperf.create()

    server = only_server(sandbox)
    assert len(requests_to(sandbox, "POST", "/servers")) == 2
    assert Instance.objects.get(pk=instance_id).hetzner_id == server["id"]


def test_a_create_whose_answer_never_comes_leaves_no_server_behind(octoperf, sandbox, settle):
    sandbox.inject_fault("POST", r"/servers", after=True, timeout=True)
    sandbox.inject_fault("POST", r"/servers", timeout=True, times=2)

    response = octoperf.call("POST", "/instances", form={"userData": "x", "region": "fsn1", "type": "SMALL"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "hetzner_timeout"
    assert len(sandbox.servers) == 1  # created by the first try, unknown to the caller

    settle(60)  # the reconciler finds the server under the abandoned row's name and deletes it
    settle(60)

    assert sandbox.servers == {}
    assert Instance.objects.get().state == "terminated"


# --- state --------------------------------------------------------------------------------------


def test_state_is_pending_until_hetzner_reports_running(octoperf, settle):
    instance_id = octoperf.create()
    assert octoperf.state(instance_id) == "pending"

    settle(3)
    assert octoperf.state(instance_id) == "pending"

    settle(60)
    assert octoperf.state(instance_id) == "running"


def test_state_of_an_id_never_issued_is_404(octoperf):
    response = octoperf.call("GET", "/instances/i-00000000000000000/state")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_polling_state_100_times_costs_no_hetzner_request(octoperf, sandbox, settle):
    instance_id = octoperf.create()
    settle(60)
    before = sandbox.request_count

    states = {octoperf.state(instance_id) for _ in range(100)}

    assert states == {"running"}
    assert sandbox.request_count == before


def test_state_follows_a_server_stopped_outside_octoprovider(octoperf, sandbox, settle):
    instance_id = octoperf.create()
    settle(60)
    server_id = Instance.objects.get(pk=instance_id).hetzner_id
    sandbox.handle("POST", f"/servers/{server_id}/actions/poweroff", {}, None, {"Authorization": "Bearer t"})

    settle(60, full=True)

    assert octoperf.state(instance_id) == "stopped"


def test_a_server_deleted_outside_octoprovider_becomes_terminated(octoperf, sandbox, settle):
    instance_id = octoperf.create()
    settle(60)
    server_id = Instance.objects.get(pk=instance_id).hetzner_id
    sandbox.handle("DELETE", f"/servers/{server_id}", {}, None, {"Authorization": "Bearer t"})

    settle(60, full=True)

    assert octoperf.state(instance_id) == "terminated"


# --- reboot -------------------------------------------------------------------------------------


def test_reboot_reboots_the_server_at_hetzner(octoperf, sandbox, settle):
    instance_id = octoperf.create()
    settle(60)

    response = octoperf.reboot(instance_id)

    assert response.status_code == 200
    assert response.content == b""
    server_id = Instance.objects.get(pk=instance_id).hetzner_id
    assert len(requests_to(sandbox, "POST", f"/servers/{server_id}/actions/reboot")) == 1


def test_reboot_while_hetzner_is_busy_is_accepted_and_done_once_free(octoperf, sandbox, settle):
    instance_id = octoperf.create()
    settle(0.1)  # the create action still runs: Hetzner answers `locked`
    server_id = Instance.objects.get(pk=instance_id).hetzner_id
    reboots = rf"/servers/{server_id}/actions/reboot"

    response = octoperf.reboot(instance_id)

    assert response.status_code == 200
    assert [r.status for r in requests_to(sandbox, "POST", reboots)] == [423]

    settle(60)

    assert [r.status for r in requests_to(sandbox, "POST", reboots)][-1] == 201
    assert Instance.objects.get(pk=instance_id).reboot_requested_at is None


def test_reboot_of_a_terminated_instance_is_409(octoperf, settle):
    instance_id = octoperf.create()
    settle(60)
    octoperf.delete(instance_id)
    settle(60)

    response = octoperf.reboot(instance_id)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "instance_gone"
    assert "terminated" in response.json()["error"]["message"]


def test_reboot_of_an_instance_being_deleted_is_409(octoperf, settle):
    instance_id = octoperf.create()
    settle(60)
    octoperf.delete(instance_id)

    response = octoperf.reboot(instance_id)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "instance_gone"
    assert "shutting-down" in response.json()["error"]["message"]


def test_reboot_of_an_unknown_id_is_404(octoperf, sandbox):
    response = octoperf.reboot("i-00000000000000000")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert sandbox.requests == []


# --- delete -------------------------------------------------------------------------------------


def test_delete_shuts_down_then_terminates(octoperf, sandbox, settle):
    instance_id = octoperf.create()
    settle(60)

    response = octoperf.delete(instance_id)

    assert response.status_code == 200
    assert response.content == b""
    assert octoperf.state(instance_id) == "shutting-down"
    settle(60)
    assert octoperf.state(instance_id) == "terminated"
    assert sandbox.servers == {}


def test_delete_of_a_terminated_instance_is_ok(octoperf, sandbox, settle):
    instance_id = octoperf.create()
    settle(60)
    octoperf.delete(instance_id)
    settle(60)
    deletes = len(sandbox.mutation_requests())

    response = octoperf.delete(instance_id)

    assert response.status_code == 200
    assert len(sandbox.mutation_requests()) == deletes


def test_delete_of_a_booting_instance_deletes_its_server(octoperf, sandbox, settle):
    instance_id = octoperf.create()

    assert octoperf.delete(instance_id).status_code == 200
    settle(60)  # Hetzner refuses the delete (`locked`) until the boot is over
    settle(5)

    assert sandbox.servers == {}
    assert octoperf.state(instance_id) == "terminated"


def seconds_until_terminated(octoperf, sandbox, settle, settings, instance_id: str, *, lock_ends: float) -> float:
    """Run the reconciler loop (a pass every REFRESH_INTERVAL) until the instance is terminated.

    Return how many simulated seconds after `lock_ends` (Hetzner's clock) the state said so.
    """
    for _ in range(100):
        settle(settings.REFRESH_INTERVAL)
        if octoperf.state(instance_id) == "terminated":
            return sandbox.clock.now() - lock_ends
    raise AssertionError(f"{instance_id} is still {octoperf.state(instance_id)}")


@pytest.mark.parametrize("phase", [0.0, 1.0], ids=["passes-on-even-seconds", "passes-on-odd-seconds"])
def test_a_delete_right_after_a_reboot_terminates_within_5_s_of_the_reboot_ending(
    octoperf, sandbox, settle, settings, phase
):
    instance_id = octoperf.create()
    settle(60)
    octoperf.reboot(instance_id)
    reboot_ends = sandbox.clock.now() + sandbox.timings["reboot"]

    assert octoperf.delete(instance_id).status_code == 200  # Hetzner answers `locked` meanwhile
    assert [r.status for r in requests_to(sandbox, "DELETE", r"/servers/\d+")] == [423]
    assert octoperf.state(instance_id) == "shutting-down"
    settle(phase)

    assert seconds_until_terminated(octoperf, sandbox, settle, settings, instance_id, lock_ends=reboot_ends) <= 5
    assert sandbox.servers == {}


@pytest.mark.parametrize("phase", [0.0, 1.0], ids=["passes-on-even-seconds", "passes-on-odd-seconds"])
def test_a_delete_during_boot_terminates_within_5_s_of_the_boot_ending(octoperf, sandbox, settle, settings, phase):
    instance_id = octoperf.create()
    boot_ends = sandbox.clock.now() + sandbox.timings["create_running"]

    assert octoperf.delete(instance_id).status_code == 200
    assert [r.status for r in requests_to(sandbox, "DELETE", r"/servers/\d+")] == [423]
    settle(phase)

    assert seconds_until_terminated(octoperf, sandbox, settle, settings, instance_id, lock_ends=boot_ends) <= 5
    assert sandbox.servers == {}


def test_delete_when_hetzner_is_down_is_accepted_and_finished_by_the_reconciler(octoperf, sandbox, settle):
    instance_id = octoperf.create()
    settle(60)
    sandbox.inject_fault("DELETE", r"/servers/\d+", code="unavailable", status=503, times=2)

    assert octoperf.delete(instance_id).status_code == 200
    assert octoperf.state(instance_id) == "shutting-down"

    settle(60)  # the reconciler's first retry meets the second fault
    settle(60)  # the second goes through
    settle(60)

    assert sandbox.servers == {}
    assert octoperf.state(instance_id) == "terminated"


def test_delete_without_instance_id_is_400(octoperf):
    response = octoperf.call("DELETE", "/instances")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"
    assert "instanceId" in response.json()["error"]["message"]


def test_delete_of_an_unknown_id_is_404(octoperf, sandbox):
    response = octoperf.delete("i-00000000000000000")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert sandbox.requests == []


def test_delete_reads_instance_id_from_a_form_body_too(octoperf, settle):
    instance_id = octoperf.create()

    response = octoperf.call("DELETE", "/instances", form={"instanceId": instance_id})

    assert response.status_code == 200
    assert octoperf.state(instance_id) == "shutting-down"
