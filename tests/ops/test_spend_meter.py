"""Every figure of what the fleet costs agrees with what Hetzner bills.

Servers created with, or moved onto, static IPs have no IPv4 of their own.
"""

import html
import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command

from instances.models import Instance
from octoprovider import hetzner
from octoprovider.core import clock
from octoprovider.operations import costing
from tests.conftest import address_of, ipv4s, public_ipv4

pytestmark = pytest.mark.django_db


def billed_by_hetzner(sandbox) -> Decimal:
    """What Hetzner bills per hour for what exists in the project: its servers and its Primary IPv4s."""
    prices = hetzner.hourly_prices()
    servers = sum(prices.server(s["server_type"]["name"], s["location"]["name"]) for s in sandbox.servers.values())
    return servers + sum(prices.ipv4(ip["location"]["name"]) for ip in ipv4s(sandbox))


def text_of(page: str, module_id: str) -> str:
    match = re.search(rf'<div class="module[^"]*" id="{module_id}">(.*?)</table>', page, re.S)
    assert match, f"no module {module_id}"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())


@pytest.fixture
def on_static_ips(octoperf, sandbox, settle, settings):
    """Three static IPs, then three SMALL servers in fsn1: each is created with one as its address."""
    settings.MAX_HOURLY_SPEND_EUR = Decimal("1.00")
    ip_ids = [octoperf.allocate() for _ in range(3)]
    instance_ids = [octoperf.create() for _ in range(3)]
    settle(60)
    assert all(
        server["public_net"]["ipv4"]["id"] in {ip["id"] for ip in ipv4s(sandbox)} for server in sandbox.servers.values()
    )
    assert len(ipv4s(sandbox)) == 3  # the three static IPs, and no IPv4 of the servers' own
    return ip_ids, instance_ids


def hourly_figures(admin_client) -> dict[str, Decimal]:
    """The burn per hour as each page shows it (the instance list: each row's EUR/h, and the static IPs)."""
    page = admin_client.get("/admin/").content.decode()
    dashboard = re.search(r"now ([\d.]+) EUR/h", text_of(page, "spend")).group(1)
    budget = re.search(r"MAX_HOURLY_SPEND_EUR 1\.00 ([\d.]+) \(", text_of(page, "budgets")).group(1)
    listed = admin_client.get("/admin/instances/instance/").content.decode()  # live ones by default
    per_instance = re.findall(r'<td class="field-price_per_hour">([\d.]+)</td>', listed)
    assert len(per_instance) == 3
    prices = hetzner.hourly_prices()
    static_ips = 3 * prices.ipv4("fsn1")  # the static IPs are billed whatever holds them
    return {
        "dashboard": Decimal(dashboard),
        "budgets": Decimal(budget),
        # Each row is rounded to 4 places: its server alone (no IPv4 of its own), 3 of them.
        "instance list": (3 * Decimal(per_instance[0]) + static_ips).quantize(Decimal("0.001")),
    }


def as_shown(real: Decimal) -> dict[str, Decimal]:
    return {
        "dashboard": real.quantize(Decimal("0.0001")),
        "budgets": real.quantize(Decimal("0.0001")),
        "instance list": real.quantize(Decimal("0.001")),
    }


def test_every_page_bills_servers_created_on_static_ips_what_hetzner_bills(on_static_ips, sandbox, admin_client):
    real = billed_by_hetzner(sandbox)

    figures = hourly_figures(admin_client)

    assert figures == as_shown(real)


def test_every_page_agrees_once_octoperf_has_associated_the_static_ips(
    on_static_ips, octoperf, sandbox, settle, admin_client
):
    ip_ids, instance_ids = on_static_ips
    for ip_id, instance_id in zip(ip_ids, instance_ids, strict=True):
        assert octoperf.associate(ip_id, instance_id).status_code == 200
    settle(60)
    real = billed_by_hetzner(sandbox)

    figures = hourly_figures(admin_client)

    assert figures == as_shown(real)


def test_the_runs_page_and_costs_bill_the_first_hour_of_servers_on_static_ips_as_hetzner_does(
    on_static_ips, octoperf, sandbox, settle, admin_client
):
    ip_ids, instance_ids = on_static_ips
    for ip_id, instance_id in zip(ip_ids, instance_ids, strict=True):
        octoperf.associate(ip_id, instance_id)
    settle(20 * 60)  # well inside the first started hour of everything
    real = billed_by_hetzner(sandbox)  # per hour: one hour billed so far

    out = []
    call_command(
        "costs",
        "--since",
        (clock.now() - timedelta(days=1)).date().isoformat(),
        "--json",
        stdout=type("Out", (), {"write": lambda self, text: out.append(text), "flush": lambda self: None})(),
    )
    (run,) = json.loads("".join(out))["runs"]
    page = admin_client.get("/admin/runs/").content.decode()

    assert run["ipv4s_eur"] == "0"  # none of the servers had an IPv4 of its own
    assert Decimal(run["total_eur"]) == real
    assert f"<strong>{real:.4f}</strong>" in page
    assert all(not row.own_ipv4 for row in Instance.objects.all())


def test_the_meter_follows_a_servers_own_ipv4_through_an_associate_and_a_dissociate(
    associated, octoperf, sandbox, settle
):
    ip_id, instance_id, association_id = associated  # the move took the server's own IPv4 away

    def meter() -> Decimal:
        return costing.spend(hetzner.hourly_prices()).per_hour

    assert meter() == billed_by_hetzner(sandbox)
    assert octoperf.dissociate(ip_id, instance_id, association_id).status_code == 200
    for _ in range(12):
        settle(10)

    assert public_ipv4(sandbox, instance_id) != address_of(ip_id)  # a fresh IPv4 of its own, billed
    assert meter() == billed_by_hetzner(sandbox)
