"""The budgets' spend, measured mostly before the lock.

Creates stop waiting for a month of rows, and still never cross.
"""

import itertools
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection

from instances.models import Instance
from octoprovider import hetzner
from octoprovider.core import clock, guardrails
from octoprovider.operations import costing
from tests.conftest import create_in_parallel
from tests.services.test_budgets import half_past, on_postgresql  # noqa: F401 (a fixture)

_hetzner_ids = itertools.count(90_000_001)
FORM = {"userData": "x", "region": "fsn1", "type": "SMALL"}


def rows(count: int, *, minutes_ago: float, status: str = Instance.Status.RUNNING, **fields) -> list[Instance]:
    """Store `count` instances created that long ago, as a month of tests would have left them."""
    created = clock.now() - timedelta(minutes=minutes_ago)
    return Instance.objects.bulk_create(
        Instance(
            region="fsn1",
            location="fsn1",
            type="SMALL",
            server_type="cx23",
            image="docker-ce",
            status=status,
            hetzner_id=next(_hetzner_ids),
            created_at=created,
            **fields,
        )
        for _ in range(count)
    )


@pytest.fixture(autouse=True)
def room_for_a_month(settings):
    settings.MAX_INSTANCES = settings.MAX_INSTANCES_PER_REGION = 10_000


@pytest.fixture
def priced(monkeypatch):
    """Record, for every instance the spend meter prices, whether it did so inside a transaction (the lock's)."""
    calls: list[bool] = []
    price_one = costing._server_and_ipv4

    def recording(instance, prices):
        calls.append(connection.in_atomic_block)
        return price_one(instance, prices)

    monkeypatch.setattr(costing, "_server_and_ipv4", recording)
    return calls


@pytest.mark.django_db(transaction=True)
def test_a_create_prices_only_the_instances_created_lately_under_the_lock(octoperf, settings, half_past, priced):
    settings.MONTHLY_BUDGET_EUR = Decimal(1_000_000)
    rows(300, minutes_ago=20)
    rows(2, minutes_ago=1)

    octoperf.create()

    under_the_lock = [call for call in priced if call]
    assert len(under_the_lock) == 2  # the two recent rows: the month's 300 were summed before the lock
    assert len(priced) == 302


@pytest.mark.django_db
def test_the_spend_under_the_lock_adds_up_to_the_whole_months(octoperf, settings, half_past):
    settings.MONTHLY_BUDGET_EUR = Decimal(1_000_000)
    rows(5, minutes_ago=25)
    ended = clock.now() - timedelta(minutes=15)
    rows(3, minutes_ago=40, status=Instance.Status.TERMINATED, delete_requested_at=ended, terminated_at=ended)
    prices = hetzner.hourly_prices()
    guardrails.measure_spend_ahead(prices)
    octoperf.create()  # after the sum was measured
    octoperf.allocate()

    assert costing.spend_for_budgets(prices) == costing.spend(prices)
    # Six servers with their IPv4 and a static IP burn now; the terminated three only billed.
    assert costing.spend(prices).per_hour == 6 * (prices.server("cx23", "fsn1") + prices.ipv4("fsn1")) + prices.ipv4(
        "fsn1"
    )


@pytest.mark.django_db
def test_a_server_given_its_own_ipv4_back_after_the_sum_is_billed_for_it(settings, half_past):
    """A dissociate gives a server on a static IP an IPv4 of its own again: its bill rises after the sum."""
    settings.MONTHLY_BUDGET_EUR = Decimal(1_000_000)
    on_static_ips = rows(3, minutes_ago=30, own_ipv4=False)
    rows(2, minutes_ago=30)
    prices = hetzner.hourly_prices()
    guardrails.measure_spend_ahead(prices)

    Instance.objects.filter(pk__in=[row.pk for row in on_static_ips]).update(own_ipv4=True)

    assert costing.spend_for_budgets(prices) == costing.spend(prices)
    assert costing.spend_for_budgets(prices).per_hour == 5 * (prices.server("cx23", "fsn1") + prices.ipv4("fsn1"))


@pytest.mark.django_db
def test_what_ended_after_the_sum_was_measured_counts_until_it_is_measured_again(
    octoperf, settings, half_past, monkeypatch
):
    settings.MONTHLY_BUDGET_EUR = Decimal(1_000_000)
    old = rows(4, minutes_ago=30)
    prices = hetzner.hourly_prices()
    guardrails.measure_spend_ahead(prices)
    now = clock.now()
    Instance.objects.filter(pk=old[0].pk).update(
        status=Instance.Status.TERMINATED, delete_requested_at=now, terminated_at=now
    )

    assert costing.spend_for_budgets(prices).per_hour > costing.spend(prices).per_hour  # too much, never too little

    monkeypatch.setattr(costing, "AHEAD_SECONDS", 0.0)
    guardrails.measure_spend_ahead(prices)
    assert costing.spend_for_budgets(prices) == costing.spend(prices)


@pytest.mark.django_db
def test_a_create_that_an_old_sum_would_refuse_is_checked_again_on_a_fresh_one(
    octoperf, settings, half_past, monkeypatch
):
    old = rows(2, minutes_ago=30)
    prices = hetzner.hourly_prices()
    settings.MAX_HOURLY_SPEND_EUR = 2 * (prices.server("cx23", "fsn1") + prices.ipv4("fsn1"))  # full
    guardrails.measure_spend_ahead(prices)
    now = clock.now()
    Instance.objects.filter(pk=old[0].pk).update(
        status=Instance.Status.TERMINATED, delete_requested_at=now, terminated_at=now
    )  # room for one again
    monkeypatch.setattr(guardrails, "FRESH_SECONDS", 0.0)  # the sum measured ahead is old already

    assert octoperf.call("POST", "/instances", form=FORM).status_code == 200
    assert octoperf.call("POST", "/instances", form=FORM).status_code == 429


@pytest.mark.django_db
def test_a_new_day_is_measured_afresh(octoperf, settings, half_past, sandbox):
    settings.DAILY_BUDGET_EUR = Decimal(1_000_000)
    rows(3, minutes_ago=30)
    prices = hetzner.hourly_prices()
    guardrails.measure_spend_ahead(prices)
    sandbox.clock.advance(24 * 3600)
    clock.advance(24 * 3600)

    assert costing.spend_for_budgets(prices) == costing.spend(prices)


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_parallel_creates_with_a_month_of_rows_never_cross_the_monthly_budget(sandbox, settings, half_past):
    prices = hetzner.hourly_prices()  # warm the caches: the threads share this process's
    hetzner.server_type_orderable("cx23", "fsn1")
    settings.MONTHLY_BUDGET_EUR = Decimal(1_000_000)
    rows(2000, minutes_ago=30)
    rows(
        1000,
        minutes_ago=60,
        status=Instance.Status.TERMINATED,
        terminated_at=clock.now() - timedelta(minutes=50),
        delete_requested_at=clock.now() - timedelta(minutes=50),
    )
    before = costing.spend(prices).month
    assert create_in_parallel(1) == ["created"]
    one = costing.spend(prices).month - before
    settings.MONTHLY_BUDGET_EUR = before + 4 * one  # room for three more

    outcomes = create_in_parallel(12)

    assert outcomes == ["created"] * 3 + ["refused"] * 9
    assert len(sandbox.servers) == 4
    assert costing.spend(prices).month <= settings.MONTHLY_BUDGET_EUR
