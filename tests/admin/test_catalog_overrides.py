"""Operators remap regions and sizes in the admin, and the next create follows without a restart."""

import pytest

from octoprovider.models import RegionAlias, ServerTypeMapping

pytestmark = pytest.mark.django_db

FORM = {"userData": "x", "region": "fsn1", "type": "SMALL"}


def posted_types(sandbox) -> list[str]:
    return [r.body["server_type"] for r in sandbox.requests if r.method == "POST" and r.path == "/servers"]


def test_a_region_alias_added_in_the_admin_is_used_by_the_next_create(admin_client, octoperf, sandbox):
    assert octoperf.call("POST", "/instances", form={**FORM, "region": "germany"}).status_code == 400

    response = admin_client.post("/admin/octoprovider/regionalias/add/", {"alias": "Germany", "location": "nbg1"})

    assert response.status_code == 302
    assert octoperf.call("POST", "/instances", form={**FORM, "region": "germany"}).status_code == 200
    (server,) = sandbox.servers.values()
    assert server["location"]["name"] == "nbg1"


def test_an_alias_to_an_unknown_location_is_refused_in_the_admin(admin_client):
    response = admin_client.post("/admin/octoprovider/regionalias/add/", {"alias": "moon", "location": "moon1"})

    assert response.status_code == 200
    assert "Not a known location" in response.content.decode()
    assert not RegionAlias.objects.exists()


def test_a_size_remapped_in_the_admin_takes_effect_at_once(admin_client, octoperf, sandbox):
    octoperf.create()

    response = admin_client.post(
        "/admin/octoprovider/servertypemapping/add/",
        {"location": "fsn1", "size": "SMALL", "server_type": "cx33", "fallbacks": ""},
    )

    assert response.status_code == 302
    octoperf.create()
    assert posted_types(sandbox) == ["cx23", "cx33"]


def test_a_mapping_for_every_location_and_its_own_fallbacks(octoperf, sandbox):
    ServerTypeMapping.objects.create(location="*", size="MEDIUM", server_type="cpx32", fallbacks="cpx42, cpx52")
    sandbox.set_availability("cpx32", "hel1", False)

    octoperf.create(region="hel1", type="MEDIUM")

    (server,) = sandbox.servers.values()
    assert server["server_type"]["name"] == "cpx42"


def test_deleting_an_override_restores_the_environments_default(octoperf, sandbox):
    mapping = ServerTypeMapping.objects.create(location="fsn1", size="SMALL", server_type="cx33")
    octoperf.create()
    mapping.delete()

    octoperf.create()

    assert posted_types(sandbox) == ["cx33", "cx23"]
