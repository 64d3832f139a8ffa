"""Budgets in euros answer 429 before any Hetzner create, at their edge, and hold under parallel creates."""

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.db import connection

from instances import services
from instances.models import Instance
from octoprovider import hetzner
from octoprovider.core import clock
from octoprovider.core.exceptions import LimitReached
from octoprovider.operations import costing
from tests.conftest import create_in_parallel

on_postgresql = pytest.mark.skipif(
    "postgresql" not in django_settings.DATABASES["default"]["ENGINE"],
    reason="parallel connections: PostgreSQL only (CI runs it)",
)
FORM = {"userData": "x", "region": "fsn1", "type": "SMALL"}
BUDGETS = ["MAX_HOURLY_SPEND_EUR", "DAILY_BUDGET_EUR", "MONTHLY_BUDGET_EUR"]


def servers_posted(sandbox) -> list:
    return [r for r in sandbox.requests if r.method == "POST" and r.path == "/servers"]


@pytest.fixture
def half_past(sandbox):
    """Move both clocks to the next half hour (UTC), away from the hour boundaries budgets count in."""
    now = clock.now()
    target = now.replace(minute=30, second=0, microsecond=0)
    if target <= now:
        target += timedelta(hours=1)
    seconds = (target - now).total_seconds()
    sandbox.clock.advance(seconds)
    clock.advance(seconds)


def spent(budget: str) -> Decimal:
    measured = costing.spend(hetzner.hourly_prices())
    return {
        "MAX_HOURLY_SPEND_EUR": measured.per_hour,
        "DAILY_BUDGET_EUR": measured.day,
        "MONTHLY_BUDGET_EUR": measured.month,
    }[budget]


@pytest.mark.django_db
@pytest.mark.parametrize("budget", BUDGETS)
def test_the_create_that_would_cross_a_budget_is_refused_and_the_one_before_passes(
    octoperf, sandbox, settings, half_past, budget
):
    octoperf.create()
    one = spent(budget)  # a cx23 and its IPv4: to the hour's, day's or month's end
    setattr(settings, budget, one * 2)

    second = octoperf.call("POST", "/instances", form=FORM)
    third = octoperf.call("POST", "/instances", form=FORM)

    assert second.status_code == 200
    assert third.status_code == 429
    error = third.json()["error"]
    assert error["code"] == "budget_reached"
    assert budget in error["message"]
    assert f"{one * 2:.2f} EUR" in error["message"]  # the budget
    assert f"{one * 2:.4f} EUR" in error["message"]  # what is spent already
    assert f"adds {one:.4f}" in error["message"]
    assert len(servers_posted(sandbox)) == 2
    assert Instance.objects.count() == 2


@pytest.mark.django_db
def test_a_static_ip_that_would_cross_the_hourly_budget_is_not_allocated(octoperf, sandbox, settings):
    octoperf.create()
    settings.MAX_HOURLY_SPEND_EUR = spent("MAX_HOURLY_SPEND_EUR")  # exactly what runs: nothing more fits

    response = octoperf.call("POST", "/static-ips/allocate", form={"region": "fsn1", "zone": "default"})

    assert response.status_code == 429
    assert "MAX_HOURLY_SPEND_EUR" in response.json()["error"]["message"]
    assert "static IPv4 in fsn1" in response.json()["error"]["message"]
    assert not [r for r in sandbox.requests if r.method == "POST" and r.path == "/primary_ips"]


@pytest.mark.django_db
def test_what_was_billed_today_counts_against_the_daily_budget_after_it_is_gone(
    octoperf, sandbox, settings, settle, half_past
):
    prices = hetzner.hourly_prices()
    hourly = prices.server("cx23", "fsn1") + prices.ipv4("fsn1")
    first = octoperf.create()
    settle(10 * 60)
    octoperf.delete(first)
    settle(60)
    hours_to_midnight = costing.started_hours(clock.now(), costing.periods(clock.now())[1])
    # The deleted server's hour is billed; room for exactly one more to midnight, but not for two.
    settings.DAILY_BUDGET_EUR = hourly * (1 + hours_to_midnight)

    assert octoperf.call("POST", "/instances", form=FORM).status_code == 200
    assert octoperf.call("POST", "/instances", form=FORM).status_code == 429


@pytest.mark.django_db
def test_without_budgets_a_create_reads_no_prices(octoperf, sandbox):
    octoperf.create()

    assert not [r for r in sandbox.requests if r.path == "/pricing"]


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_parallel_creates_cannot_both_cross_the_hourly_budget(sandbox, settings):
    prices = hetzner.hourly_prices()  # warm the caches: the threads share this process's
    hetzner.server_type_orderable("cx23", "fsn1")
    settings.MAX_HOURLY_SPEND_EUR = 3 * (prices.server("cx23", "fsn1") + prices.ipv4("fsn1"))
    outcomes = create_in_parallel(10)

    assert outcomes == ["created"] * 3 + ["refused"] * 7
    assert len(sandbox.servers) == 3


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_create_and_an_allocate_in_parallel_cannot_both_cross_the_budget(sandbox, settings):
    prices = hetzner.hourly_prices()
    hetzner.server_type_orderable("cx23", "fsn1")
    # Room for the server and its IPv4, or for the static IP, not for both.
    settings.MAX_HOURLY_SPEND_EUR = prices.server("cx23", "fsn1") + prices.ipv4("fsn1")
    from staticips import services as static_ip_services

    barrier = threading.Barrier(2)
    outcomes = []

    def run(call):
        try:
            barrier.wait()
            call()
            outcomes.append("done")
        except LimitReached:
            outcomes.append("refused")
        finally:
            connection.close()

    calls = [
        lambda: services.instance_create(region="fsn1", type="SMALL", user_data="x"),
        lambda: static_ip_services.static_ip_allocate(region="fsn1"),
    ]
    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # Whichever went first, the other would cross: a static IP alone leaves room for no server.
    assert outcomes.count("done") == 1


def test_started_hours_count_every_begun_hour():
    start = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)

    assert costing.started_hours(start, start + timedelta(minutes=1)) == 1
    assert costing.started_hours(start, start + timedelta(minutes=60)) == 1
    assert costing.started_hours(start, start + timedelta(minutes=61)) == 2
