"""Budgets hold at the server type and location a create actually sends, fallbacks included."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings as django_settings

from instances import services
from instances.models import Instance
from octoprovider import hetzner
from octoprovider.core import clock
from octoprovider.operations import costing
from tests.conftest import create_in_parallel

pytestmark = pytest.mark.django_db

FORM = {"userData": "x", "region": "fsn1", "type": "SMALL"}


@pytest.fixture(autouse=True)
def half_past(sandbox):
    """Move both clocks to the next half hour (UTC), away from the hour boundaries budgets count in."""
    now = clock.now()
    target = now.replace(minute=30, second=0, microsecond=0)
    if target <= now:
        target += timedelta(hours=1)
    sandbox.clock.advance((target - now).total_seconds())
    clock.advance((target - now).total_seconds())


def posted(sandbox) -> list[tuple[str, str]]:
    return [
        (r.body["server_type"], r.body["location"])
        for r in sandbox.requests
        if r.method == "POST" and r.path == "/servers"
    ]


def per_hour() -> Decimal:
    return costing.spend(hetzner.hourly_prices()).per_hour


def with_ipv4(server_type: str, location: str) -> Decimal:
    prices = hetzner.hourly_prices()
    return prices.server(server_type, location) + prices.ipv4(location)


def test_a_type_fallback_that_would_cross_the_hourly_budget_is_refused_and_nothing_is_created(
    octoperf, sandbox, settings
):
    octoperf.create()  # a cx23 in fsn1; the catalogue, read now, still sells cx23 when it sells out
    settings.MAX_HOURLY_SPEND_EUR = per_hour() + with_ipv4("cx23", "fsn1")  # one more cx23 fits, a cpx22 not
    sandbox.set_availability("cx23", "fsn1", False)

    response = octoperf.call("POST", "/instances", form=FORM)

    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "budget_reached"
    assert "MAX_HOURLY_SPEND_EUR" in error["message"] and "cpx22 in fsn1" in error["message"]
    assert posted(sandbox) == [("cx23", "fsn1"), ("cx23", "fsn1")]  # the cpx22 was never sent
    assert len(sandbox.servers) == 1
    assert Instance.objects.order_by("created_at").last().state == "terminated"
    assert per_hour() <= settings.MAX_HOURLY_SPEND_EUR


def test_a_type_fallback_within_the_budget_is_created(octoperf, sandbox, settings):
    octoperf.create()
    settings.MAX_HOURLY_SPEND_EUR = per_hour() + with_ipv4("cpx22", "fsn1")
    sandbox.set_availability("cx23", "fsn1", False)

    instance_id = octoperf.create()

    assert posted(sandbox)[-1] == ("cpx22", "fsn1")
    assert Instance.objects.get(pk=instance_id).server_type == "cpx22"
    assert per_hour() <= settings.MAX_HOURLY_SPEND_EUR


def test_a_location_fallback_is_priced_at_the_type_and_location_it_sends(octoperf, sandbox, settings):
    settings.LOCATION_FALLBACKS = {"fsn1": ["ash"]}
    octoperf.create()
    # Either type fits in fsn1; a cpx22 in ash costs more (Hetzner prices ash 20 % dearer).
    settings.MAX_HOURLY_SPEND_EUR = per_hour() + with_ipv4("cpx22", "fsn1")
    for server_type in ("cx23", "cpx22"):
        sandbox.set_availability(server_type, "fsn1", False)

    response = octoperf.call("POST", "/instances", form=FORM)

    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "budget_reached"
    assert "cpx22 in ash" in error["message"]
    assert ("cpx22", "ash") not in posted(sandbox)
    assert len(sandbox.servers) == 1
    refused = Instance.objects.order_by("created_at").last()
    assert refused.state == "terminated" and refused.hetzner_id is None
    assert per_hour() <= settings.MAX_HOURLY_SPEND_EUR


def test_a_location_fallback_within_the_budget_is_created_in_the_fallback(octoperf, sandbox, settings):
    settings.LOCATION_FALLBACKS = {"fsn1": ["ash"]}
    octoperf.create()
    settings.MAX_HOURLY_SPEND_EUR = per_hour() + with_ipv4("cpx22", "ash")
    for server_type in ("cx23", "cpx22"):
        sandbox.set_availability(server_type, "fsn1", False)

    instance_id = octoperf.create()

    instance = Instance.objects.get(pk=instance_id)
    assert (instance.server_type, instance.location) == ("cpx22", "ash")
    assert per_hour() <= settings.MAX_HOURLY_SPEND_EUR


on_postgresql = pytest.mark.skipif(
    "postgresql" not in django_settings.DATABASES["default"]["ENGINE"],
    reason="parallel connections: PostgreSQL only (CI runs it)",
)


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_parallel_creates_falling_back_cannot_cross_the_hourly_budget_together(sandbox, settings):
    services.instance_create(region="fsn1", type="SMALL", user_data="x")  # the catalogue still sells cx23
    settings.MAX_HOURLY_SPEND_EUR = per_hour() + 2 * with_ipv4("cpx22", "fsn1")  # room for two cpx22
    sandbox.set_availability("cx23", "fsn1", False)

    outcomes = create_in_parallel(4)

    # Each create in flight counts at the price it was last checked at (it may still get a cx23), so a
    # fallback checked meanwhile may be refused although the others fall back too: never more than fits.
    created = outcomes.count("created")
    assert 1 <= created <= 2
    assert per_hour() <= settings.MAX_HOURLY_SPEND_EUR
    assert sorted(s["server_type"]["name"] for s in sandbox.servers.values()) == ["cpx22"] * created + ["cx23"]
