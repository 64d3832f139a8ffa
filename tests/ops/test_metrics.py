"""/metrics: Prometheus text for whoever holds METRICS_TOKEN, about the contract, Hetzner and the fleet."""

import re

import pytest
from django.test import Client
from prometheus_client import REGISTRY

from tests.conftest import TOKEN
from tests.ops.conftest import METRICS_TOKEN


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_do_not_exist_without_METRICS_TOKEN(db, settings):
    settings.METRICS_TOKEN = ""

    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {METRICS_TOKEN}", f"Bearer {TOKEN}"])
def test_metrics_want_the_metrics_token_as_bearer(db, settings, header):
    settings.METRICS_TOKEN = METRICS_TOKEN
    extra = {"HTTP_AUTHORIZATION": header} if header else {}

    response = Client().get("/metrics", **extra)

    assert response.status_code == 401
    assert b"octoprovider_" not in response.content


def test_contract_requests_are_counted_by_route_name_never_by_path(octoperf, scrape):
    before = sample("octoprovider_contract_requests_total", endpoint="instances", method="POST", status="200")

    instance_id = octoperf.create()
    octoperf.state(instance_id)
    octoperf.call("GET", "/instances/i-never-issued/state")
    text = scrape()

    assert (
        sample("octoprovider_contract_requests_total", endpoint="instances", method="POST", status="200") == before + 1
    )
    assert 'octoprovider_contract_requests_total{endpoint="instance-state",method="GET",status="404"}' in text
    assert instance_id not in text
    assert "i-never-issued" not in text
    assert TOKEN not in text


def test_hetzner_calls_are_counted_by_templated_path_and_error_code(octoperf, sandbox, scrape):
    instance_id = octoperf.create()
    sandbox.inject_fault("POST", r"/servers/\d+/actions/reboot", code="locked", status=423)

    octoperf.reboot(instance_id)
    text = scrape()

    assert 'octoprovider_hetzner_requests_total{code="ok",endpoint="/servers",method="POST"}' in text
    assert (
        'octoprovider_hetzner_requests_total{code="locked",endpoint="/servers/{id}/actions/reboot",method="POST"}'
        in text
    )
    assert not re.search(r'endpoint="[^"]*\d', text)


def test_hetzner_timeouts_are_counted_though_no_answer_came(octoperf, sandbox):
    before = sample("octoprovider_hetzner_requests_total", method="POST", endpoint="/servers", code="timeout")
    sandbox.inject_fault("POST", "/servers", timeout=True, times=10)

    octoperf.call("POST", "/instances", form={"userData": "x", "region": "fsn1", "type": "SMALL"})

    assert sample("octoprovider_hetzner_requests_total", method="POST", endpoint="/servers", code="timeout") > before


def test_the_rate_budget_gauge_shows_the_last_hetzner_answer(octoperf, sandbox, scrape):
    octoperf.create()

    remaining = sample("octoprovider_hetzner_ratelimit_remaining")

    assert 0 < remaining < 3600
    assert sample("octoprovider_hetzner_ratelimit_limit") == 3600
    assert f"octoprovider_hetzner_ratelimit_remaining {remaining}" in scrape()


def test_instances_are_counted_by_state_and_region_at_scrape_time(octoperf, scrape):
    octoperf.create(region="fsn1")
    octoperf.create(region="fsn1")
    octoperf.delete(octoperf.create(region="ash"))

    text = scrape()

    assert 'octoprovider_instances{region="fsn1",state="pending"} 2.0' in text
    assert re.search(r'octoprovider_instances\{region="ash",state="(deleting|terminated)"\} 1\.0', text)


def test_the_fleet_is_counted_with_one_query(octoperf, scrape, django_assert_max_num_queries):
    for region in ("fsn1", "nbg1", "ash"):
        octoperf.create(region=region)

    with django_assert_max_num_queries(1):
        scrape()


def test_reconcile_passes_are_timed_and_their_drift_counted(octoperf, settle):
    passes = sample("octoprovider_reconcile_pass_duration_seconds_count", kind="quick")
    changed = sample("octoprovider_reconcile_drift_total", kind="changed")
    octoperf.create()

    report = settle(60)

    assert report.changed >= 1
    assert sample("octoprovider_reconcile_pass_duration_seconds_count", kind="quick") == passes + 1
    assert sample("octoprovider_reconcile_drift_total", kind="changed") == changed + report.changed
    assert sample("octoprovider_reconcile_last_pass_timestamp_seconds") > 0


def test_made_up_methods_share_one_label_so_callers_cannot_grow_the_metrics(octoperf, scrape):
    for method in ("BREW", "WHEN", "XYZZY"):
        octoperf.client.generic(method, f"{octoperf.base}/instances")

    text = scrape()

    assert 'method="other",status="405"' in text
    assert "BREW" not in text and "XYZZY" not in text
