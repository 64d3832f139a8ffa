"""The catalogue follows Hetzner: the first candidate type sold in the location, and opt-in location fallbacks."""

import pytest
from django.core.cache import cache

from instances.models import Instance
from octoprovider.hetzner import catalog
from octoprovider.hetzner import servers as hetzner_servers
from octoprovider.hetzner.servers import ServerTypeOffer

pytestmark = pytest.mark.django_db

FORM = {"userData": "x", "region": "fsn1", "type": "SMALL"}


def types_posted(sandbox) -> list[str]:
    return [r.body["server_type"] for r in sandbox.requests if r.method == "POST" and r.path == "/servers"]


def test_sizes_get_the_first_candidate_hetzner_sells(octoperf, sandbox):
    octoperf.create(type="SMALL")
    octoperf.create(type="XLARGE")

    assert types_posted(sandbox) == ["cx23", "cx53"]


def test_a_deprecated_first_candidate_is_passed_over_for_the_next(octoperf, sandbox, settings):
    settings.SERVER_TYPE_CANDIDATES = {**settings.SERVER_TYPE_CANDIDATES, "SMALL": ["cx22", "cx23", "cpx22"]}

    instance_id = octoperf.create()

    assert types_posted(sandbox) == ["cx23"]  # cx22 is deprecated: not even tried
    assert Instance.objects.get(pk=instance_id).server_type == "cx23"


def test_an_unavailable_first_candidate_is_passed_over_for_the_next(octoperf, sandbox):
    sandbox.set_availability("cx23", "fsn1", False)

    octoperf.create()

    assert types_posted(sandbox) == ["cpx22"]


def test_outside_the_eu_the_cx_candidates_are_not_sold_so_cpx_is_used(octoperf, sandbox):
    octoperf.create(region="ash", type="MEDIUM")

    assert types_posted(sandbox) == ["cpx32"]


def test_the_catalogue_is_read_once_for_many_creates(octoperf, sandbox):
    for _ in range(3):
        octoperf.create()

    assert len([r for r in sandbox.requests if r.path == "/server_types"]) == 1


def test_arm_types_are_left_out_unless_allowed(settings):
    # The simulated cloud sells x86 only: add an arm type to Hetzner's catalogue as the gateway keeps it.
    offers = dict(hetzner_servers.server_type_offers())
    offers["cax11"] = ServerTypeOffer(
        name="cax11", architecture="arm", orderable_in=frozenset({"fsn1"}), sold_in=frozenset({"fsn1"})
    )
    cache.set(hetzner_servers._CATALOGUE_KEY, offers, 60)
    settings.SERVER_TYPE_CANDIDATES = {**settings.SERVER_TYPE_CANDIDATES, "SMALL": ["cax11", "cx23"]}

    assert catalog.server_type_candidates("fsn1", "SMALL") == ["cx23"]
    settings.SERVER_ARCHITECTURES = ["x86", "arm"]
    assert catalog.server_type_candidates("fsn1", "SMALL") == ["cax11", "cx23"]


def test_server_types_still_pins_a_type(octoperf, sandbox, settings):
    settings.SERVER_TYPES = {**settings.SERVER_TYPES, "fsn1": {"SMALL": "cpx22"}}

    octoperf.create()

    assert types_posted(sandbox) == ["cpx22"]


# --- location fallbacks ----------------------------------------------------------------------------


def sell_out_small(sandbox, location: str) -> None:
    for server_type in ("cx23", "cpx22"):
        sandbox.set_availability(server_type, location, False)


def test_sold_out_in_every_candidate_the_next_location_is_tried(octoperf, sandbox, settings, admin_client):
    settings.LOCATION_FALLBACKS = {"fsn1": ["nbg1", "hel1"]}
    sell_out_small(sandbox, "fsn1")

    instance_id = octoperf.create()

    (server,) = sandbox.servers.values()
    assert server["location"]["name"] == "nbg1"
    instance = Instance.objects.get(pk=instance_id)
    assert (instance.region, instance.location) == ("fsn1", "nbg1")
    page = admin_client.get("/admin/instances/instance/").content.decode()
    assert '<td class="field-location">nbg1</td>' in page


def test_without_location_fallbacks_sold_out_is_503(octoperf, sandbox):
    sell_out_small(sandbox, "fsn1")

    response = octoperf.call("POST", "/instances", form=FORM)

    assert response.status_code == 503
    assert sandbox.servers == {}


def test_a_location_holding_static_ips_does_not_fall_back(octoperf, sandbox, settings):
    settings.LOCATION_FALLBACKS = {"fsn1": ["nbg1"]}
    octoperf.allocate(region="fsn1")
    sell_out_small(sandbox, "fsn1")

    response = octoperf.call("POST", "/instances", form=FORM)

    assert response.status_code == 503
    assert sandbox.servers == {}


def test_sold_out_everywhere_answers_503_after_trying_each_location(octoperf, sandbox, settings):
    settings.LOCATION_FALLBACKS = {"fsn1": ["nbg1"]}
    sell_out_small(sandbox, "fsn1")
    sell_out_small(sandbox, "nbg1")

    response = octoperf.call("POST", "/instances", form=FORM)

    assert response.status_code == 503
    assert "nbg1" in response.json()["error"]["message"]
    assert Instance.objects.get().state == "terminated"
