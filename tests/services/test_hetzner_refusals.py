"""Hetzner's refusals of a create, typed by the gateway from its error code, `details.fields` and /server_types.

The production client talks to `responses`, which answers with the bodies Hetzner sends. A refusal is
recognised whatever its English message says: Hetzner may reword it at any time, and a fallback
(another server type, another static IP, none) must not silently turn into an error.
"""

import re

import pytest

from instances import services as instance_services
from instances.models import Instance
from octoprovider import hetzner
from octoprovider.core.exceptions import (
    HetznerNoCapacity,
    HetznerNotFound,
    HetznerPrimaryIPRefused,
    HetznerRejected,
    HetznerTypeNotOrderable,
)
from staticips.models import StaticIP
from tests.conftest import ipv4s, public_ipv4
from tests.services.conftest import API, PAGE

pytestmark = pytest.mark.django_db

CREATE = {
    "name": "octoperf-i-1",
    "server_type": "cx23",
    "image": "docker-ce",
    "location": "fsn1",
    "user_data": "#!/bin/sh",
    "labels": {},
    "ssh_keys": [],
    "firewalls": [],
}


def refusal(code: str, message: str, details: dict | None = None) -> dict:
    """An error body as Hetzner's API sends it."""
    return {"error": {"code": code, "message": message, "details": details if details is not None else {}}}


def server_type(name: str, *locations: str, id: int = 1) -> dict:
    """A /server_types entry, orderable in `locations`."""
    return {
        "id": id,
        "name": name,
        "architecture": "x86",
        "deprecation": None,
        "locations": [
            {"id": index, "name": location, "deprecation": None, "available": True, "recommended": True}
            for index, location in enumerate(locations, start=1)
        ],
    }


def catalogue(api, *types: dict) -> None:
    api.replace("GET", f"{API}/server_types", json={"server_types": list(types), "meta": PAGE})


def create_answers(api, status: int, body: dict) -> None:
    api.post(f"{API}/servers", status=status, json=body)


# --- a server type not sold in the location ----------------------------------------------------------

# As Hetzner answers it (hetznercloud APIs seen in 2025-12: `"details": {}`, no field named), and reworded.
UNSUPPORTED_LOCATION = ["unsupported location for server type", "server type cx23 cannot be ordered in ash"]


@pytest.mark.parametrize("message", UNSUPPORTED_LOCATION)
def test_a_type_hetzner_does_not_sell_in_the_location_is_type_not_orderable_whatever_the_wording(hetzner_api, message):
    catalogue(hetzner_api, server_type("cx23", "fsn1", "nbg1"))
    create_answers(hetzner_api, 422, refusal("invalid_input", message))

    with pytest.raises(HetznerTypeNotOrderable) as refused:
        hetzner.create_server(**{**CREATE, "location": "ash"})

    assert refused.value.hetzner_code == "invalid_input"
    assert hetzner.refused_without_effect(refused.value)


def test_an_invalid_input_for_a_type_sold_in_the_location_stays_a_plain_rejection(hetzner_api):
    catalogue(hetzner_api, server_type("cx23", "fsn1"))
    create_answers(
        hetzner_api,
        422,
        refusal(
            "invalid_input",
            "invalid input in field 'user_data': is too long",
            {"fields": [{"name": "user_data", "messages": ["is too long"]}]},
        ),
    )

    with pytest.raises(HetznerRejected) as refused:
        hetzner.create_server(**CREATE)

    assert type(refused.value) is HetznerRejected
    assert refused.value.fields == ("user_data",)


@pytest.mark.parametrize("message", UNSUPPORTED_LOCATION)
def test_a_create_falls_back_to_the_next_type_when_hetzner_does_not_sell_the_first_whatever_the_wording(
    hetzner_api, settings, message
):
    settings.SERVER_TYPE_CANDIDATES = {**settings.SERVER_TYPE_CANDIDATES, "SMALL": ["cx23", "cpx22"]}
    # The catalogue the create chose by still sells cx23 in fsn1; Hetzner has just stopped.
    hetzner_api.replace(
        "GET",
        f"{API}/server_types",
        json={"server_types": [server_type("cx23", "fsn1"), server_type("cpx22", "fsn1", id=2)], "meta": PAGE},
    )
    hetzner_api.get(
        f"{API}/server_types",
        json={"server_types": [server_type("cx23", "nbg1"), server_type("cpx22", "fsn1", id=2)], "meta": PAGE},
    )
    create_answers(hetzner_api, 422, refusal("invalid_input", message))
    created = {"id": 42, "name": "x", "status": "initializing", "labels": {}, "public_net": None}
    create_answers(
        hetzner_api,
        201,
        {"server": created, "action": {"id": 1, "command": "create_server"}, "next_actions": [], "root_password": None},
    )

    instance = instance_services.instance_create(region="fsn1", type="SMALL", user_data="#!/bin/sh")

    sent = [call.request.body for call in hetzner_api.calls if call.request.method == "POST"]
    assert [re.search(rb'"server_type": "(\w+)"', body)[1] for body in sent] == [b"cx23", b"cpx22"]
    assert (instance.server_type, instance.hetzner_id, instance.state) == ("cpx22", 42, "pending")


# --- the Primary IP given as the server's public IPv4 -----------------------------------------------

PRIMARY_IP_REFUSALS = {
    "assigned": refusal("primary_ip_assigned", "primary IP 7 is already assigned to a server"),
    "other_location": refusal("primary_ip_datacenter_mismatch", "primary IP 7 is in nbg1, not in fsn1"),
    "ipv6": refusal("primary_ip_version_mismatch", "primary IP 7 is an ipv6 Primary IP"),
    "deleted": refusal("not_found", "primary_ip with ID '7' not found"),
    "public_net_field": refusal(
        "invalid_input",
        "invalid input in field 'public_net.ipv4': is invalid",
        {"fields": [{"name": "public_net.ipv4", "messages": ["is invalid"]}]},
    ),
    "public_net_field_reworded": refusal(
        "invalid_input",
        "the address cannot be used for this server",
        {"fields": [{"name": "public_net.ipv4", "messages": ["cannot be used"]}]},
    ),
}


@pytest.mark.parametrize("body", PRIMARY_IP_REFUSALS.values(), ids=PRIMARY_IP_REFUSALS.keys())
def test_a_refusal_of_the_primary_ip_given_is_typed_from_its_code_or_field(hetzner_api, body):
    create_answers(hetzner_api, 422, body)

    with pytest.raises(HetznerPrimaryIPRefused) as refused:
        hetzner.create_server(**CREATE, public_ipv4_id=7)

    assert refused.value.hetzner_code == body["error"]["code"]


def test_an_invalid_input_naming_another_field_is_not_about_the_primary_ip_whatever_its_message_says(hetzner_api):
    catalogue(hetzner_api, server_type("cx23", "fsn1"))
    create_answers(
        hetzner_api,
        422,
        refusal(
            "invalid_input",
            "invalid input in field 'user_data': public_net is not where this goes",
            {"fields": [{"name": "user_data", "messages": ["public_net is not where this goes"]}]},
        ),
    )

    with pytest.raises(HetznerRejected) as refused:
        hetzner.create_server(**CREATE, public_ipv4_id=7)

    assert not isinstance(refused.value, HetznerPrimaryIPRefused)


def test_a_not_found_for_a_create_given_no_primary_ip_is_not_about_an_ip(hetzner_api):
    create_answers(hetzner_api, 404, refusal("not_found", "image not found"))

    with pytest.raises(HetznerNotFound) as refused:
        hetzner.create_server(**CREATE)

    assert not isinstance(refused.value, HetznerPrimaryIPRefused)


def test_a_primary_ip_refused_with_a_reworded_public_net_field_falls_back_to_the_servers_own_ipv4(
    octoperf, sandbox, settle
):
    ip_id = octoperf.allocate()
    sandbox.inject_fault(
        "POST",
        "/servers",
        code="invalid_input",
        status=422,
        message="this address cannot go on that server",
        details={"fields": [{"name": "public_net.ipv4", "messages": ["cannot be used"]}]},
    )

    instance_id = octoperf.create()
    settle(60)

    creates = [r for r in sandbox.mutation_requests() if r.path == "/servers"]
    assert [("ipv4" in (r.body.get("public_net") or {})) for r in creates] == [True, False]
    static_ip = StaticIP.objects.get(pk=ip_id)
    assert public_ipv4(sandbox, instance_id) not in (None, static_ip.address)
    assert static_ip.holder_id is None  # given back: free for the next create
    assert len(ipv4s(sandbox)) == 2


# --- capacity ----------------------------------------------------------------------------------------


def test_a_type_sold_out_in_the_location_is_no_capacity(hetzner_api):
    create_answers(hetzner_api, 412, refusal("resource_unavailable", "server type cx23 is unavailable in fsn1"))

    with pytest.raises(HetznerNoCapacity) as refused:
        hetzner.create_server(**CREATE)

    assert refused.value.code == "hetzner_resource_unavailable"
    assert refused.value.status_code == 503


def test_no_capacity_for_any_candidate_answers_503_naming_the_types(hetzner_api, octoperf, settings):
    settings.SERVER_TYPE_CANDIDATES = {**settings.SERVER_TYPE_CANDIDATES, "SMALL": ["cx23", "cpx22"]}
    catalogue(hetzner_api, server_type("cx23", "fsn1"), server_type("cpx22", "fsn1", id=2))
    create_answers(hetzner_api, 412, refusal("resource_unavailable", "sold out"))

    response = octoperf.call("POST", "/instances", form={"userData": "x", "region": "fsn1", "type": "SMALL"})

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "hetzner_resource_unavailable"
    assert "cx23, cpx22" in response.json()["error"]["message"]
    assert list(Instance.objects.values_list("status", flat=True)) == ["terminated"]
