"""The audit log: who called the contract and what reached Hetzner, never a secret."""

import pytest
from django.db.models import Q

from instances.models import Instance
from octoprovider import hetzner
from octoprovider.models import AuditEvent
from tests.conftest import TOKEN, USER_DATA, OctoPerf

pytestmark = pytest.mark.django_db

AUDIT = "/admin/octoprovider/auditevent/"


def contract_calls():
    return AuditEvent.objects.filter(kind="contract").order_by("id")


def hetzner_mutations():
    return AuditEvent.objects.filter(kind="hetzner").order_by("id")


def test_a_create_is_recorded_with_the_token_name_and_the_hetzner_create_it_made(octoperf, sandbox):
    instance_id = octoperf.create()
    server = next(iter(sandbox.servers.values()))

    (call,) = contract_calls()
    assert (call.actor, call.method, call.route, call.our_ids, call.status, call.outcome) == (
        "env-token-1",
        "POST",
        "instances",
        instance_id,
        200,
        "ok",
    )
    (mutation,) = hetzner_mutations()
    assert (mutation.method, mutation.route, mutation.our_ids, mutation.status, mutation.outcome) == (
        "POST",
        "/servers",
        instance_id,
        201,
        "ok",
    )
    assert mutation.hetzner_action_id in sandbox.actions
    assert mutation.request_id == call.request_id != ""
    assert Instance.objects.get().hetzner_id == server["id"]


def test_a_reboot_names_the_instance_the_server_and_the_action(octoperf, sandbox, running):
    octoperf.reboot(running)

    assert contract_calls().last().our_ids == running
    reboot = hetzner_mutations().last()
    assert reboot.route == "/servers/{id}/actions/reboot"
    assert reboot.our_ids == running
    assert reboot.hetzner_id == Instance.objects.get().hetzner_id
    assert reboot.hetzner_action_id is not None


def test_state_polls_that_succeed_are_not_recorded_but_failures_are(octoperf, running):
    before = contract_calls().count()
    octoperf.state(running)
    octoperf.call("GET", "/instances/i-00000000000000000/state")

    (failure,) = contract_calls()[before:]
    assert (failure.route, failure.status, failure.outcome) == ("instance-state", 404, "not_found")
    assert failure.our_ids == "i-00000000000000000"


def test_a_bad_token_is_recorded_without_it(db):
    OctoPerf(base="/octoperf/not-the-token").call("DELETE", "/instances", query={"instanceId": "i-0"})

    (call,) = contract_calls()
    assert (call.actor, call.status, call.outcome) == ("", 401, "unauthorized")
    assert "not-the-token" not in str(AuditEvent.objects.values().get())


def test_a_hetzner_refusal_is_recorded_with_its_error_code(octoperf, sandbox):
    sandbox.inject_fault("POST", r"/servers", code="resource_limit_exceeded", status=403, times=5)

    octoperf.call("POST", "/instances", form={"userData": USER_DATA, "region": "fsn1", "type": "SMALL"})

    assert hetzner_mutations().last().outcome == "resource_limit_exceeded"
    assert contract_calls().last().status == 503


def test_a_hetzner_mutation_that_timed_out_is_recorded(octoperf, sandbox, settings):
    settings.HCLOUD_RETRIES = 0
    sandbox.inject_fault("POST", r"/servers", timeout=True, times=5)

    octoperf.call("POST", "/instances", form={"userData": USER_DATA, "region": "fsn1", "type": "SMALL"})

    assert hetzner_mutations().last().outcome == "timeout"
    assert hetzner_mutations().last().status is None


def test_the_audit_log_never_holds_user_data_nor_any_token(octoperf, sandbox, settings, settle):
    settings.HCLOUD_TOKEN = "hetzner-project-token-that-must-stay-secret"
    hetzner.use_sandbox(sandbox)  # a new client, with that token
    instance_id = octoperf.create()
    settle(60)
    octoperf.reboot(instance_id)
    ip_id = octoperf.allocate()
    octoperf.associate(ip_id, instance_id)
    for _ in range(10):
        settle(10)
    octoperf.delete(instance_id)
    OctoPerf(base="/octoperf").call(
        "DELETE", "/instances", query={"instanceId": instance_id}, HTTP_AUTHORIZATION=f"Bearer {TOKEN}"
    )

    rows = list(AuditEvent.objects.values())
    everything = " ".join(str(value) for row in rows for value in row.values())
    assert len(rows) > 10
    for secret in ("s3cr3t-agent-token", "docker run", TOKEN, settings.HCLOUD_TOKEN, "root_password"):
        assert secret not in everything


def test_the_audit_log_is_read_only_and_searchable_by_our_ids(admin_client, octoperf, running):
    octoperf.reboot(running)
    event = contract_calls().last()

    page = admin_client.get(AUDIT, {"q": running, "kind__exact": "contract"}).content.decode()

    assert "instance" in page and running in page
    assert admin_client.get(f"{AUDIT}add/").status_code == 403
    assert b'name="_save"' not in admin_client.get(f"{AUDIT}{event.pk}/change/").content
    assert admin_client.post(f"{AUDIT}{event.pk}/delete/", {"post": "yes"}).status_code == 403


def test_admin_actions_are_audited_too(admin_client, sandbox, running, run_action):
    run_action("/admin/instances/instance/", "reboot", [running])

    assert hetzner_mutations().filter(Q(route="/servers/{id}/actions/reboot"), our_ids=running).exists()
