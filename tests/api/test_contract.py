"""The contract's shared rules: JSON always, one error shape, no redirects, tokens in path or header."""

import logging

import pytest
from django.test import Client

from instances.models import Instance
from octoprovider.core.logmask import MaskTokensFilter, mask_path
from staticips.models import Association, StaticIP
from tests.conftest import JAVA_ACCEPT, TOKEN, OctoPerf, reboots_at_hetzner
from tests.settings import TEST_TOKENS

pytestmark = pytest.mark.django_db

JSON_UTF8 = "application/json; charset=utf-8"


@pytest.fixture
def instance_id(octoperf):
    return octoperf.create()


def test_java_default_accept_header_gets_json(instance_id):
    response = Client().get(f"/octoperf/{TOKEN}/instances/{instance_id}/state", HTTP_ACCEPT=JAVA_ACCEPT)

    assert response.status_code == 200
    assert response["Content-Type"] == JSON_UTF8
    assert response.json() == {"value": "pending"}


@pytest.mark.parametrize("accept", ["text/html", "application/xml", "*/*", ""])
def test_any_accept_header_gets_json(instance_id, accept):
    response = Client().get(f"/octoperf/{TOKEN}/instances/{instance_id}/state", HTTP_ACCEPT=accept)

    assert response.status_code == 200
    assert response["Content-Type"] == JSON_UTF8


@pytest.mark.parametrize("slash", ["", "/"])
def test_every_endpoint_answers_with_or_without_a_trailing_slash(octoperf, sandbox, settle, slash):
    where = {"region": "fsn1", "zone": "default"}
    created = octoperf.call("POST", "/instances" + slash, form={"userData": "x", "region": "fsn1", "type": "SMALL"})
    assert created.status_code == 200
    instance_id = created.json()["value"]
    settle(60)

    assert octoperf.call("GET", f"/instances/{instance_id}/state{slash}").json() == {"value": "running"}
    assert octoperf.call("PUT", f"/instances/{instance_id}{slash}").status_code == 200
    assert reboots_at_hetzner(sandbox, instance_id) == 1

    allocated = octoperf.call("POST", f"/static-ips/allocate{slash}", form=where)
    assert allocated.status_code == 200
    ip = {**where, "id": allocated.json()["value"], "instanceId": instance_id}
    associated = octoperf.call("PUT", f"/static-ips/associate{slash}", form=ip)
    assert associated.status_code == 200
    association_id = associated.json()["value"]
    assert Association.objects.get(pk=association_id).static_ip_id == ip["id"]
    for _ in range(12):
        settle(10)
    dissociated = octoperf.call("PUT", f"/static-ips/dissociate{slash}", form={**ip, "associationId": association_id})
    assert dissociated.status_code == 200
    assert Association.objects.get(pk=association_id).status in ("dissociating", "ended")
    released = octoperf.call("DELETE", f"/static-ips/release{slash}", query={**where, "id": ip["id"]})
    assert released.status_code == 200
    assert octoperf.call("DELETE", f"/instances{slash}", query={"instanceId": instance_id}).status_code == 200
    for _ in range(8):
        settle(40, full=True)
    assert StaticIP.objects.get(pk=ip["id"]).status == "released"
    assert Instance.objects.get(pk=instance_id).state == "terminated"
    assert (sandbox.servers, sandbox.primary_ips) == ({}, {})


def test_errors_are_json_in_the_contract_shape(octoperf):
    response = octoperf.call("GET", "/instances/i-00000000000000000/state")

    assert response.status_code == 404
    assert set(response.json()) == {"error"}
    assert set(response.json()["error"]) == {"code", "message"}


def test_a_wrong_method_is_405_json(octoperf):
    response = octoperf.call("PATCH", "/instances")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_an_unknown_path_under_octoperf_is_404_json(octoperf):
    response = octoperf.call("GET", "/volumes")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_body_that_is_not_json_is_400(octoperf):
    response = octoperf.client.post(f"{octoperf.base}/instances", "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response["Content-Type"] == JSON_UTF8


def test_put_with_an_empty_form_body_reboots(octoperf, sandbox, instance_id, settle):
    settle(60)

    response = octoperf.call("PUT", f"/instances/{instance_id}", form={})

    assert response.status_code == 200
    assert reboots_at_hetzner(sandbox, instance_id) == 1


def test_nothing_ever_redirects(octoperf, instance_id):
    for method, path in [("GET", f"/instances/{instance_id}/state/"), ("POST", "/instances/"), ("GET", "/nowhere")]:
        status = octoperf.call(method, path).status_code
        assert not 300 <= status < 400, (method, path, status)


# --- authentication -----------------------------------------------------------------------------


def test_bearer_token_works_without_a_token_in_the_path(instance_id):
    bearer = OctoPerf(base="/octoperf")

    response = bearer.call("GET", f"/instances/{instance_id}/state", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 200


def test_every_configured_token_is_accepted(instance_id):
    second = OctoPerf(base=f"/octoperf/{TEST_TOKENS[1]}")

    assert second.call("GET", f"/instances/{instance_id}/state").status_code == 200


def test_a_missing_token_is_401_json(instance_id):
    response = OctoPerf(base="/octoperf").call("GET", f"/instances/{instance_id}/state")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "unauthorized"
    assert "token" in response.json()["error"]["message"]


@pytest.mark.parametrize("base", ["/octoperf/wrong-token", f"/octoperf/{TOKEN}x"])
def test_a_wrong_token_in_the_path_is_401(instance_id, base, sandbox):
    before = sandbox.request_count

    response = OctoPerf(base=base).call("POST", "/instances", form={"userData": "x", "region": "fsn1", "type": "SMALL"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert sandbox.request_count == before


def test_a_wrong_bearer_token_is_401(instance_id):
    response = OctoPerf(base="/octoperf").call(
        "GET", f"/instances/{instance_id}/state", HTTP_AUTHORIZATION="Bearer nope"
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_tokens_are_masked_in_logged_request_lines():
    line = f'"GET /octoperf/{TOKEN}/instances/i-0123/state?region=fsn1 HTTP/1.1" 200 19'

    assert TOKEN not in mask_path(line)
    assert "/octoperf/***/instances/i-0123/state" in mask_path(line)
    assert mask_path("/octoperf/instances/i-1/state") == "/octoperf/instances/i-1/state"
    assert mask_path(f"/octoperf/{TOKEN}/static-ips/allocate") == "/octoperf/***/static-ips/allocate"


def test_the_logging_filter_masks_tokens_in_formatted_messages():
    record = logging.LogRecord(
        "django.server", logging.INFO, "", 0, '"%s" %s', (f"PUT /octoperf/{TOKEN}/instances/i-1 HTTP/1.1", 200), None
    )

    MaskTokensFilter().filter(record)

    assert TOKEN not in record.getMessage()


def test_django_request_log_never_sees_the_path_token(caplog):
    caplog.set_level(logging.WARNING, logger="django.request")

    Client().get(f"/octoperf/{TOKEN}/instances/i-00000000000000000/state")

    assert "Not Found" in caplog.text
    assert TOKEN not in caplog.text


# --- ownership ----------------------------------------------------------------------------------


def test_a_hetzner_id_never_reaches_hetzner_through_the_contract(octoperf, sandbox, settle):
    instance_id = octoperf.create()
    ip_id = octoperf.allocate()
    settle(60)
    server_id = str(Instance.objects.get(pk=instance_id).hetzner_id)
    primary_ip_id = str(StaticIP.objects.get(pk=ip_id).hetzner_id)
    mutations = len(sandbox.mutation_requests())

    answers = [
        octoperf.call("GET", f"/instances/{server_id}/state"),
        octoperf.reboot(server_id),
        octoperf.delete(server_id),
        octoperf.release(primary_ip_id),
        octoperf.associate(primary_ip_id, instance_id),
        octoperf.associate(ip_id, server_id),
    ]

    assert [(answer.status_code, answer.json()["error"]["code"]) for answer in answers] == [(404, "not_found")] * 6
    assert len(sandbox.mutation_requests()) == mutations


def test_an_id_with_a_nul_character_is_404_not_a_crash(octoperf):
    state = octoperf.call("GET", "/instances/i-%00/state")
    delete = octoperf.call("DELETE", "/instances", query={"instanceId": "i-\x00"})

    assert (state.status_code, state.json()["error"]["code"]) == (404, "not_found")
    assert (delete.status_code, delete.json()["error"]["code"]) == (400, "invalid_input")


def test_an_unknown_contract_path_is_json_even_with_debug_on(octoperf, settings):
    settings.DEBUG = True

    response = octoperf.call("GET", "/instances//state")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_an_unexpected_error_is_a_logged_json_500(octoperf, settings, monkeypatch, caplog):
    settings.DEBUG = True

    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("octoprovider.hetzner.create_server", broken)

    response = octoperf.call("POST", "/instances", form={"userData": "x", "region": "fsn1", "type": "SMALL"})

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "a bug" in caplog.text
