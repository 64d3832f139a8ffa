"""What server reuse saves, in euros: a server-hour is billed to the first instance that used it."""

from decimal import Decimal

import pytest

from instances.models import Instance
from octoprovider import hetzner
from octoprovider.core import clock
from octoprovider.operations import costing
from tests.ops.test_costs import MINUTE, costs_json

pytestmark = pytest.mark.django_db


def two_runs(octoperf, settle) -> tuple[list[str], object]:
    """Run A: one SMALL for 15 minutes; run B, 20 minutes after A began: one SMALL for 30 minutes; then an hour."""
    start = clock.now()

    def at(minutes: float):  # a reconcile pass every minute, as the loop's would
        while (left := minutes * MINUTE - (clock.now() - start).total_seconds()) > 0:
            settle(min(MINUTE, left))

    first = octoperf.create()
    at(15)
    octoperf.delete(first)
    at(20)
    second = octoperf.create()
    at(50)
    octoperf.delete(second)
    at(130)
    return [first, second], start


def hour_of_a_small() -> Decimal:
    price = hetzner.hourly_prices().instance("cx23", "fsn1", own_ipv4=True)
    return price.hourly


@pytest.mark.parametrize("reuse", ["billed-hour", "off"])
def test_a_run_that_took_a_parked_server_pays_nothing_of_the_hour_the_first_run_paid(octoperf, settle, settings, reuse):
    settings.SERVER_REUSE = reuse
    (first, second), start = two_runs(octoperf, settle)
    hour = hour_of_a_small()

    report = costs_json(start)
    by_start = sorted(report["runs"], key=lambda run: run["start"])

    assert [run["instance_hours"] for run in by_start] == ([1, 0] if reuse == "billed-hour" else [1, 1])
    saved = Decimal(by_start[1]["saved_by_reuse_eur"])
    assert saved == (hour if reuse == "billed-hour" else 0)
    assert sum(Decimal(eur) for eur in report["saved_by_reuse_per_day"].values()) == saved
    # The budgets see what Hetzner bills: one server-hour with reuse, two without (in the calendar month:
    # the day's figure would lose run B's hour when the runs straddle midnight).
    spend = costing.spend(hetzner.hourly_prices(), now=start)
    if clock.now() < costing.periods(start)[3]:
        assert spend.month == hour * (1 if reuse == "billed-hour" else 2)
    assert Instance.objects.get(pk=second).hetzner_id == (
        Instance.objects.get(pk=first).hetzner_id
        if reuse == "billed-hour"
        else Instance.objects.get(pk=second).hetzner_id
    )


def test_a_parked_server_whose_delete_hetzner_refuses_past_its_hour_is_billed_by_the_budgets(
    octoperf, settle, settings, sandbox
):
    settings.SERVER_REUSE = "billed-hour"
    instance_id = octoperf.create()
    settle(15 * MINUTE)
    server_id = Instance.objects.get(pk=instance_id).hetzner_id
    octoperf.delete(instance_id)
    sandbox.inject_fault("DELETE", rf"/servers/{server_id}", code="service_error", status=422, times=10_000)
    for _ in range(8):
        settle(10 * MINUTE)  # 95 minutes: the server lives into its second hour

    assert sandbox.servers[server_id]["status"] == "off"
    spend = costing.spend(hetzner.hourly_prices())
    assert spend.day >= 2 * hour_of_a_small()
    assert spend.per_hour >= hour_of_a_small()
