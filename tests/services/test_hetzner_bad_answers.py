"""An answer from Hetzner that cannot be read is Hetzner's fault: OctoPerf gets a 503, the reconciler goes on.

The production client talks to `responses`, which answers what Hetzner's API never should: a 200
without `servers`, a 201 without `server`, a success whose body is not JSON.
"""

import re

import pytest
from prometheus_client import REGISTRY

from instances.models import Instance
from octoprovider import hetzner
from octoprovider.core.exceptions import HetznerBadAnswer
from octoprovider.operations.reconciler import reconcile_pass
from staticips.models import StaticIP
from tests.services.conftest import API, PAGE

pytestmark = pytest.mark.django_db


def assert_hetzners_fault(response, api, method: str, path: str) -> None:
    """OctoPerf got Hetzner's fault (503, Retry-After), from the call named, which did reach Hetzner."""
    assert (method, f"{API}{path}") in [(call.request.method, call.request.url) for call in api.calls]
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "hetzner_bad_answer"
    assert int(response["Retry-After"]) > 0


def test_a_listing_answered_without_servers_raises_our_error(hetzner_api):
    hetzner_api.get(f"{API}/servers", json={"meta": PAGE})

    with pytest.raises(HetznerBadAnswer):
        hetzner.list_servers(label_selector=hetzner.managed_selector())


def test_a_listing_answered_with_a_body_that_is_not_json_raises_our_error(hetzner_api):
    hetzner_api.get(f"{API}/servers", body="<html>maintenance</html>", content_type="text/html")

    with pytest.raises(HetznerBadAnswer):
        hetzner.list_servers(label_selector=hetzner.managed_selector())


def test_a_create_answered_without_its_server_answers_503_and_deletes_whatever_was_made(hetzner_api, octoperf):
    hetzner_api.post(f"{API}/servers", status=201, json={"action": {"id": 1, "status": "running"}})

    response = octoperf.call("POST", "/instances", form={"userData": "#!/bin/sh", "region": "fsn1", "type": "SMALL"})

    assert_hetzners_fault(response, hetzner_api, "POST", "/servers")
    # Whether Hetzner made the server is unknown: the reconciler deletes whatever appears under its name.
    assert list(Instance.objects.values_list("status", flat=True)) == ["deleting"]


def test_an_allocate_answered_without_its_primary_ip_answers_503(hetzner_api, octoperf):
    hetzner_api.post(f"{API}/primary_ips", status=201, json={"action": None})

    response = octoperf.call("POST", "/static-ips/allocate", form={"region": "fsn1", "zone": "a"})

    assert_hetzners_fault(response, hetzner_api, "POST", "/primary_ips")
    assert list(StaticIP.objects.values_list("status", flat=True)) == ["releasing"]


def test_a_reboot_answered_without_its_action_answers_503(hetzner_api, octoperf):
    instance = Instance.objects.create(
        region="fsn1",
        location="fsn1",
        type="SMALL",
        server_type="cx23",
        image="docker-ce",
        status="running",
        hetzner_id=42,
    )
    hetzner_api.post(f"{API}/servers/42/actions/reboot", status=201, json={})

    assert_hetzners_fault(octoperf.reboot(instance.pk), hetzner_api, "POST", "/servers/42/actions/reboot")


def test_a_pass_whose_listing_cannot_be_read_reports_it_and_is_counted(hetzner_api):
    Instance.objects.create(
        region="fsn1",
        location="fsn1",
        type="SMALL",
        server_type="cx23",
        image="docker-ce",
        status="running",
        hetzner_id=42,
    )
    hetzner_api.get(re.compile(rf"{API}/servers\b.*"), json={"meta": PAGE})
    errors_before = REGISTRY.get_sample_value("octoprovider_reconcile_errors_total") or 0

    report = reconcile_pass(full=True)

    assert report.errors and "could not be read" in report.errors[0]
    assert REGISTRY.get_sample_value("octoprovider_reconcile_errors_total") > errors_before
    assert Instance.objects.get().status == "running"  # nothing concluded from an unreadable answer
