"""GET /api/allow-list: our static addresses for customers' firewalls, read with a read-only token."""

import ipaddress
import logging

import pytest
from django.test import Client

from octoprovider.contract import tokens
from octoprovider.hetzner.sandbox import cloud as sandbox_cloud
from octoprovider.models import AuditEvent
from staticips.models import StaticIP
from tests.conftest import TOKEN, OctoPerf, address_of

pytestmark = pytest.mark.django_db

URL = "/api/allow-list"


@pytest.fixture
def read_token() -> str:
    _, secret = tokens.api_token_create(name="terraform", scope="read")
    return secret


@pytest.fixture
def script(read_token):
    """A customer's script: curl with the read-only token as a Bearer header."""

    def get(query: dict | None = None, **headers):
        return Client().get(URL, query or {}, HTTP_AUTHORIZATION=f"Bearer {read_token}", **headers)

    return get


def test_the_text_answer_is_every_address_one_a_line_sorted_as_numbers(script, octoperf, monkeypatch):
    # The simulated cloud's addresses cross from two digits to three: sorted as text, .100 comes before .99.
    monkeypatch.setattr(sandbox_cloud, "_FIRST_IPV4", ipaddress.IPv4Address("198.18.0.88"))
    ips = [octoperf.allocate() for _ in range(3)] + [octoperf.allocate(region="nbg1")]

    response = script()

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    lines = response.content.decode().splitlines()
    assert sorted(lines, key=ipaddress.ip_address) == lines != sorted(lines)
    assert set(lines) == {address_of(ip_id) for ip_id in ips}
    assert response.content.endswith(b"\n")


def test_the_json_answer_lists_the_addresses_and_groups_them_by_region(script, octoperf):
    fsn = sorted((address_of(octoperf.allocate()) for _ in range(2)), key=ipaddress.ip_address)
    nbg = [address_of(octoperf.allocate(region="nbg1"))]

    response = script({"format": "json"})

    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response.json() == {
        "addresses": sorted(fsn + nbg, key=ipaddress.ip_address),
        "regions": {"fsn1": fsn, "nbg1": nbg},
    }


@pytest.mark.parametrize("region", ["nbg1", "NBG1"])
def test_a_region_keeps_its_addresses_only(script, octoperf, region):
    octoperf.allocate()
    nbg = address_of(octoperf.allocate(region="nbg1"))

    assert script({"region": region}).content.decode() == f"{nbg}\n"
    assert script({"region": region, "format": "json"}).json() == {"addresses": [nbg], "regions": {"nbg1": [nbg]}}


def test_an_unknown_region_or_format_answers_400_in_the_error_shape(script):
    unknown_region = script({"region": "moon1"})
    unknown_format = script({"format": "xml"})

    assert unknown_region.status_code == 400 and unknown_region.json()["error"]["code"] == "unknown_region"
    assert "fsn1" in unknown_region.json()["error"]["message"]
    assert unknown_format.status_code == 400 and unknown_format.json()["error"]["code"] == "invalid_input"


def test_released_addresses_leave_the_list_and_ones_being_released_stay_until_deleted(script, octoperf, settle):
    kept, gone = octoperf.allocate(), octoperf.allocate()
    octoperf.release(gone)
    # The next create takes the free static IP as its address; a release then waits for the server to
    # get its own IPv4 back: the agent still leaves from the address meanwhile.
    instance_id = octoperf.create()
    settle(60)
    holder = StaticIP.objects.get(holder_id=instance_id)
    assert holder.id == kept
    assert octoperf.release(holder.id).status_code == 200
    assert StaticIP.objects.get(pk=holder.id).status == "releasing"

    assert script().content.decode().splitlines() == [holder.address]
    for _ in range(12):
        settle(10)
    assert StaticIP.objects.get(pk=holder.id).status == "released"
    assert script().content.decode() == ""


def test_a_poll_with_the_etag_answers_304_until_the_list_changes(script, octoperf):
    octoperf.allocate()
    first = script()
    etag = first["ETag"]

    again = script(HTTP_IF_NONE_MATCH=etag)
    assert (again.status_code, again.content, again["ETag"]) == (304, b"", etag)
    assert script()["ETag"] == etag  # the same list, the same tag

    octoperf.allocate()
    changed = script(HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed["ETag"] != etag and len(changed.content.decode().splitlines()) == 2
    assert script({"format": "json"})["ETag"] not in (etag, changed["ETag"])  # another representation


def test_a_read_only_token_cannot_create_anything_on_the_contract(read_token, sandbox, octoperf):
    instance_id = octoperf.create()  # with OctoPerf's token
    in_path = OctoPerf(base=f"/octoperf/{read_token}")
    as_bearer = OctoPerf(base="/octoperf")
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {read_token}"}
    sent = len(sandbox.mutation_requests())

    refused = [
        in_path.call("POST", "/instances", form={"userData": "x", "region": "fsn1", "type": "SMALL"}),
        as_bearer.call("POST", "/static-ips/allocate", form={"region": "fsn1"}, **bearer),
        in_path.call("DELETE", "/instances", query={"instanceId": instance_id}),
        in_path.call("GET", f"/instances/{instance_id}/state"),  # the polls' shortcut too
    ]

    for response in refused:
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
        assert "read-only" in response.json()["error"]["message"]
    assert len(sandbox.mutation_requests()) == sent
    assert octoperf.state(instance_id) == "pending"


def test_octoperfs_token_is_refused_and_no_token_or_a_wrong_one_answers_401(octoperf):
    octoperf.allocate()

    contract = Client().get(URL, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    missing = Client().get(URL)
    wrong = Client().get(URL, HTTP_AUTHORIZATION="Bearer not-a-token")

    assert contract.status_code == 403 and "read-only token" in contract.json()["error"]["message"]
    assert missing.status_code == 401 and missing["WWW-Authenticate"].startswith("Bearer")
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
    assert all(
        address_of(ip.pk) not in r.content.decode() for r in (contract, missing, wrong) for ip in StaticIP.objects.all()
    )


def test_the_token_is_never_logged_nor_audited(script, read_token, caplog, octoperf):
    octoperf.allocate()
    with caplog.at_level(logging.DEBUG):
        script()
        script({"region": "moon1"})
        OctoPerf(base=f"/octoperf/{read_token}").call("POST", "/static-ips/allocate", form={"region": "fsn1"})

    assert caplog.records  # the request log did write its lines
    assert read_token not in caplog.text
    assert not any(read_token in str(row) for row in AuditEvent.objects.values())
