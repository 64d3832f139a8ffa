"""Spending limits answer 429 before any Hetzner call, and hold under parallel creates."""

import pytest
from django.conf import settings as django_settings

from instances.models import Instance
from tests.conftest import create_in_parallel

on_postgresql = pytest.mark.skipif(
    "postgresql" not in django_settings.DATABASES["default"]["ENGINE"],
    reason="parallel connections: PostgreSQL only (CI runs it)",
)
FORM = {"userData": "x", "region": "fsn1", "type": "SMALL"}


def servers_posted(sandbox) -> list:
    return [r for r in sandbox.requests if r.method == "POST" and r.path == "/servers"]


@pytest.mark.django_db
def test_max_instances_answers_429_naming_the_limit_without_calling_hetzner(octoperf, sandbox, settings):
    settings.MAX_INSTANCES = 2
    octoperf.create()
    octoperf.create(region="nbg1")
    before = sandbox.request_count

    response = octoperf.call("POST", "/instances", form=FORM)

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "limit_reached"
    assert "MAX_INSTANCES (2)" in response.json()["error"]["message"]
    assert sandbox.request_count == before


@pytest.mark.django_db
def test_max_instances_per_region_leaves_other_regions_open(octoperf, sandbox, settings):
    settings.MAX_INSTANCES_PER_REGION = 1
    octoperf.create(region="fsn1")

    refused = octoperf.call("POST", "/instances", form=FORM)
    accepted = octoperf.call("POST", "/instances", form={**FORM, "region": "hel1"})

    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "limit_reached"
    assert "MAX_INSTANCES_PER_REGION" in refused.json()["error"]["message"]
    assert accepted.status_code == 200


@pytest.mark.django_db
def test_terminated_instances_do_not_count_against_the_limit(octoperf, settle, settings):
    settings.MAX_INSTANCES = 1
    first = octoperf.create()
    octoperf.delete(first)
    assert octoperf.call("POST", "/instances", form=FORM).status_code == 429  # its server still bills
    settle(60)
    settle(60)  # Hetzner may have answered `locked` (the server was booting): the reconciler retries

    assert octoperf.state(first) == "terminated"
    assert octoperf.call("POST", "/instances", form=FORM).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("setting", "value", "form", "code"),
    [
        ("ALLOWED_REGIONS", ["nbg1"], FORM, "region_not_allowed"),
        ("ALLOWED_TYPES", ["MEDIUM"], FORM, "type_not_allowed"),
    ],
)
def test_a_region_or_type_not_allowed_answers_429_naming_the_setting(
    octoperf, sandbox, settings, setting, value, form, code
):
    setattr(settings, setting, value)

    response = octoperf.call("POST", "/instances", form=form)

    assert response.status_code == 429
    assert response.json()["error"]["code"] == code
    assert setting in response.json()["error"]["message"]
    assert sandbox.requests == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("allowed", "region"),
    [(["fsn1"], "eu-central"), (["fsn1"], "fsn1"), (["eu-central"], "eu-central")],
)
def test_allowed_regions_accepts_an_alias_or_its_location(octoperf, sandbox, settings, allowed, region):
    settings.ALLOWED_REGIONS = [name.lower() for name in allowed]  # as settings reads them
    settings.REGION_ALIASES = {"eu-central": "fsn1"}

    created = octoperf.call("POST", "/instances", form={**FORM, "region": region})
    refused = octoperf.call("POST", "/instances", form={**FORM, "region": "nbg1"})

    assert created.status_code == 200
    assert [server["location"]["name"] for server in sandbox.servers.values()] == ["fsn1"]
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "region_not_allowed"


@pytest.mark.django_db
def test_static_ips_outside_allowed_regions_are_refused(octoperf, sandbox, settings):
    settings.ALLOWED_REGIONS = ["nbg1"]

    response = octoperf.call("POST", "/static-ips/allocate", form={"region": "fsn1"})

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "region_not_allowed"
    assert sandbox.primary_ips == {}


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_20_parallel_creates_against_a_limit_of_5_create_exactly_5(sandbox, settings):
    settings.MAX_INSTANCES = 5
    outcomes = create_in_parallel(20)

    assert outcomes == ["created"] * 5 + ["refused"] * 15
    assert Instance.objects.exclude(status="terminated").count() == 5
    assert len(sandbox.servers) == 5


# --- capacity fallbacks ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_no_capacity_for_the_type_falls_back_to_the_next_configured_one(octoperf, sandbox):
    sandbox.set_availability("cx23", "fsn1", False)

    instance_id = octoperf.create(type="SMALL")

    (server,) = sandbox.servers.values()
    assert server["server_type"]["name"] == "cpx22"
    assert Instance.objects.get(pk=instance_id).server_type == "cpx22"


@pytest.mark.django_db
def test_a_type_failing_at_create_falls_back_too(octoperf, sandbox):
    # The catalogue says cx23 is fine, but the create itself finds no capacity.
    sandbox.inject_fault("POST", r"/servers", code="resource_unavailable", status=412)

    octoperf.create(type="SMALL")

    assert [r.body["server_type"] for r in servers_posted(sandbox)] == ["cx23", "cpx22"]
    assert [r.status for r in servers_posted(sandbox)] == [412, 201]


@pytest.mark.django_db
def test_a_deprecated_type_is_skipped_without_trying_it(octoperf, sandbox, settings):
    settings.SERVER_TYPES = {**settings.SERVER_TYPES, "fsn1": {**settings.SERVER_TYPES["fsn1"], "SMALL": "cx22"}}
    settings.SERVER_TYPE_FALLBACKS = {**settings.SERVER_TYPE_FALLBACKS, "fsn1": {"SMALL": ["cx23"]}}

    octoperf.create(type="SMALL")

    assert [r.body["server_type"] for r in servers_posted(sandbox)] == ["cx23"]


@pytest.mark.django_db
def test_no_capacity_anywhere_is_503_with_retry_after_and_no_server(octoperf, sandbox):
    sandbox.set_availability("cx23", "fsn1", False)
    sandbox.set_availability("cpx22", "fsn1", False)

    response = octoperf.call("POST", "/instances", form=FORM)

    assert response.status_code == 503
    assert int(response["Retry-After"]) >= 60
    assert response.json()["error"]["code"] == "hetzner_resource_unavailable"
    assert "capacity" in response.json()["error"]["message"]
    assert sandbox.servers == {}
    assert Instance.objects.get().state == "terminated"
