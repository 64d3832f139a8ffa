"""The OpenAPI check (tests/hetzner_spec.py) catches what Hetzner would refuse, and only that."""

from __future__ import annotations

from pathlib import Path

import pytest

from octoprovider.hetzner.sandbox import Exchange

from .hetzner_spec import SPEC_CHANGES, HetznerSpec, Recorder, spec_path

SPEC = spec_path(Path(__file__).resolve().parent)
pytestmark = pytest.mark.skipif(not SPEC.exists(), reason=f"Hetzner's OpenAPI description is absent: {SPEC}")
GATEWAY = {"User-Agent": "octoprovider/0.1.0 hcloud-python/2.27.0"}
CREATE = {"name": "octoperf-i-1", "server_type": "cx23", "image": "docker-ce", "location": "fsn1"}


@pytest.fixture(scope="module")
def spec() -> HetznerSpec:
    return HetznerSpec.load(SPEC)


def exchange(method: str, path: str, *, query=None, body=None, status=200, payload=None, headers=GATEWAY) -> Exchange:
    return Exchange(method, path, query or {}, body, headers, status, {}, payload)


def rules(spec: HetznerSpec, *exchanges: Exchange) -> list[tuple[str, str]]:
    recorder = Recorder(spec)
    for item in exchanges:
        recorder(item)
    return sorted({(v.operation, v.rule) for v in recorder.violations})


ERROR = {"error": {"code": "locked", "message": "locked", "details": {}}}


def test_a_documented_exchange_passes(spec: HetznerSpec) -> None:
    assert rules(spec, exchange("DELETE", "/servers/42", status=423, payload=ERROR)) == []


def test_an_unknown_request_field_from_the_gateway_is_a_violation(spec: HetznerSpec) -> None:
    found = rules(spec, exchange("POST", "/servers", body={**CREATE, "colour": "blue"}, status=None))

    assert found == [("create_server", "request body")]


def test_requests_from_tests_probing_the_sandbox_are_not_held_to_the_description(spec: HetznerSpec) -> None:
    probe = exchange(
        "POST",
        "/servers",
        body={**CREATE, "colour": "blue"},
        status=422,
        payload=ERROR,
        headers={"User-Agent": "hcloud-python/2.27.0"},
    )

    assert rules(spec, probe) == []


def test_unknown_query_parameters_and_operations_are_violations(spec: HetznerSpec) -> None:
    found = rules(
        spec,
        exchange("GET", "/servers", query={"colour": ["blue"]}, status=None),
        exchange("GET", "/volcanoes", status=None),
    )

    assert found == [("GET /volcanoes", "unknown operation"), ("list_servers", "unknown query parameter")]


def test_an_answer_off_its_schema_or_status_is_a_violation(spec: HetznerSpec) -> None:
    found = rules(
        spec,
        exchange("GET", "/pricing", payload={"pricing": {"currency": "EUR"}}),
        exchange("DELETE", "/primary_ips/1", status=200, payload={}),
        exchange("GET", "/servers/1", status=404, payload={"error": {"code": "not_found"}}),
    )

    assert found == [
        ("delete_primary_ip", "response status"),
        ("get_server", "response body 4xx"),
        ("list_prices", "response body 200"),
    ]


def test_the_announced_changes_are_the_only_exceptions(spec: HetznerSpec) -> None:
    unassigned = spec.raw["components"]["schemas"]["get_primary_ip_response"]["properties"]["primary_ip"]

    assert "unassigned" in unassigned["properties"]["assignee_type"]["enum"]
    assert "datacenter" not in unassigned["required"]
    assert len(SPEC_CHANGES) == 5
