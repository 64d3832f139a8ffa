"""The console's pictures: euros per day, instances alive per hour, Hetzner requests per hour, runs' costs.

Each is checked against known data: a bar's height is its euros (or count) over the axis' top, its
tooltip names the day and the figures, and the text alternatives are there.
"""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from octoprovider import hetzner
from octoprovider.core import clock
from octoprovider.operations import charts

pytestmark = pytest.mark.django_db

HOUR = 3600
PLOT_HEIGHT = 220 - 14 - 30  # charts._HEIGHT - _TOP - _BOTTOM


def rects(svg: str, css: str) -> list[tuple[float, Decimal, str]]:
    """Return each bar segment of a series: its height, its value and its tooltip."""
    found = re.findall(
        rf'<rect class="{css}" x="[^"]+" y="[^"]+" width="[^"]+" height="([^"]+)" data-value="([^"]+)">'
        r"<title>([^<]*)</title>",
        svg,
    )
    return [(float(height), Decimal(value), title) for height, value, title in found]


def chart_of(page: str, chart_id: str) -> str:
    match = re.search(rf'<div class="module chart-panel" id="{chart_id}">.*?(<svg class="chart".*?</svg>)', page, re.S)
    assert match, f"no chart {chart_id}"
    return match.group(1)


def to_midnight(settle) -> datetime:
    """Let the clock run to the next midnight (UTC); return that day's start."""
    now = clock.now().astimezone(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    settle((midnight - now).total_seconds())
    return midnight


def test_the_spend_chart_stacks_each_days_euros_with_bars_as_tall_as_them(admin_client, octoperf, settle):
    # Day 1: one SMALL for 2.5 hours (3 billed hours). Day 2: two SMALL for 30 minutes, and a static IP
    # allocated at the start of the day, still allocated (an hour billed so far).
    day1 = to_midnight(settle)
    day2 = day1 + timedelta(days=1)
    first = octoperf.create()
    settle(150 * 60)
    octoperf.delete(first)
    settle(22 * HOUR)  # to day 2, 00:30
    second, third = octoperf.create(), octoperf.create()
    ip_id = octoperf.allocate()  # after the creates: a create takes a free static IP as its server's address
    settle(30 * 60)
    octoperf.delete(second), octoperf.delete(third)
    settle(60)
    prices = hetzner.hourly_prices()
    server, ipv4 = prices.server("cx23", "fsn1"), prices.ipv4("fsn1")

    page = admin_client.get("/admin/").content.decode()
    svg = chart_of(page, "chart-spend")

    servers = rects(svg, "s-servers")
    assert len(servers) == 30
    assert [value for _, value, _ in servers[-2:]] == [3 * server, 2 * server]
    assert [value for _, value, _ in rects(svg, "s-ipv4s")[-2:]] == [3 * ipv4, 2 * ipv4]
    assert [value for _, value, _ in rects(svg, "s-static")[-2:]] == [0, ipv4]
    assert all(value == 0 for _, value, _ in servers[:-2])
    # Heights in proportion to euros: each the same number of units per euro, the tallest bar under the top.
    axis_top = 4 * charts.nice_ceiling(3 * (server + ipv4) / 4)
    for height, value, _ in servers[-2:]:
        assert height == pytest.approx(PLOT_HEIGHT * float(value / axis_top), abs=0.06)
    assert servers[-1][2] == f"{day2:%Y-%m-%d} (so far): servers {2 * server:.4f} EUR"
    assert f"<title>{day1:%Y-%m-%d}: servers {3 * server:.4f}, IPv4s {3 * ipv4:.4f}, static IPs 0.0000;" in svg
    # Axis labels (every fifth day, today's included), title and text alternative.
    assert f">{day2:%m-%d}</text>" in svg and f">{day2 - timedelta(days=5):%m-%d}</text>" in svg
    assert f">{day1:%m-%d}</text>" not in svg
    assert 'role="img" aria-labelledby="chart-spend-title chart-spend-desc"' in svg
    assert '<title id="chart-spend-title">EUR per day, last 30 days (UTC)</title>' in svg
    assert f"at most {3 * (server + ipv4):.4f} ({day1:%Y-%m-%d})" in svg
    assert "servers</li>" in page and "static IPs</li>" in page  # the legend
    assert ip_id


def test_the_instances_chart_counts_the_instances_alive_in_each_hour(admin_client, octoperf, settle):
    # At 20:00, three instances; one deleted at 22:30; a fourth created at 00:10.
    day = to_midnight(settle)
    settle(20 * HOUR)
    ids = [octoperf.create() for _ in range(3)]
    settle(150 * 60)
    octoperf.delete(ids[0])
    settle(100 * 60)
    octoperf.create()
    settle(60)

    svg = chart_of(admin_client.get("/admin/").content.decode(), "chart-instances")

    counts = [int(value) for _, value, _ in rects(svg, "s-instances")]
    assert len(counts) == 24
    # Hours 20h, 21h, 22h (deleted in it: alive for part of it, counted) and 23h, 00h (the 4th is created).
    assert counts[-5:] == [3, 3, 3, 2, 3]
    assert counts[:-5] == [0] * 19
    heights = [height for height, _, _ in rects(svg, "s-instances")[-5:]]
    assert heights[3] / heights[0] == pytest.approx(2 / 3, abs=0.01)
    assert f"<title>{day:%Y-%m-%d} 22:00–23:00: 3 instances</title>" in svg
    assert ">00h</text>" in svg
    assert f"at most 3 ({day:%Y-%m-%d} 20:00–21:00)" in svg and "in all" not in svg


def test_the_requests_chart_counts_hetzners_answers_per_hour_against_the_budget(
    admin_client, sandbox, octoperf, settle
):
    before = len(sandbox.requests)
    octoperf.create()
    settle(60)
    first_hour = len(sandbox.requests) - before
    settle(HOUR)
    octoperf.create()

    svg = chart_of(admin_client.get("/admin/").content.decode(), "chart-requests")
    second_hour = len(sandbox.requests) - before - first_hour  # the page's /pricing included

    counts = [int(value) for _, value, _ in rects(svg, "s-requests")]
    assert counts[-2:] == [first_hour, second_hour] and first_hour > 0
    assert sum(counts) == first_hour + second_hour
    # The budget as a line at 3,600 of an axis up to 4,000 (four steps of 1,000).
    assert "Hetzner&#x27;s budget per hour 3,600</text>" in svg
    (y,) = re.findall(r'<line class="limit" x1="[^"]+" x2="[^"]+" y1="([^"]+)"', svg)
    assert float(y) == pytest.approx(14 + PLOT_HEIGHT * (1 - 3600 / 4000), abs=0.1)
    assert ">4,000</text>" in svg and ">1,000</text>" in svg


def run_bar_widths(page: str) -> list[list[tuple[str, float]]]:
    """Return, for each row of the runs table, the (series, width) of its bar's segments."""
    rows = re.findall(r'<td class="cost-bar">(.*?)</td>', page, re.S)
    return [
        [
            (css, float(width))
            for css, width in re.findall(r'<rect class="([^"]+)" x="[^"]+" y="0" width="([^"]+)"', row)
        ]
        for row in rows
    ]


def test_the_runs_page_draws_each_runs_cost_as_a_bar_the_dearest_one_full_width(admin_client, octoperf, settle):
    start = clock.now()
    cheap = octoperf.create()
    settle(30 * 60)
    octoperf.delete(cheap)  # 1 billed hour
    settle(2 * HOUR)
    dear = [octoperf.create(), octoperf.create()]
    settle(90 * 60)
    for instance_id in dear:  # 2 billed hours each
        octoperf.delete(instance_id)
    settle(60)

    page = admin_client.get("/admin/runs/", {"since": f"{start:%Y-%m-%d}"}).content.decode()

    newest, oldest = run_bar_widths(page)
    assert [css for css, _ in newest] == ["s-servers", "s-ipv4s", "s-static"]
    assert sum(width for _, width in newest) == pytest.approx(200, abs=0.1)
    assert sum(width for _, width in oldest) == pytest.approx(50, abs=0.1)  # a quarter of the euros
    prices = hetzner.hourly_prices()
    total = 4 * (prices.server("cx23", "fsn1") + prices.ipv4("fsn1"))
    assert f'aria-label="{total:.4f} EUR: servers' in page
    assert "<th>cost</th>" in page


def test_without_the_static_ip_permission_the_run_bars_leave_static_ips_out(
    client, django_user_model, octoperf, settle
):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_instance"))
    client.force_login(user)
    octoperf.create()
    settle(60)

    page = client.get("/admin/runs/").content.decode()

    (bar,) = run_bar_widths(page)
    assert [css for css, _ in bar] == ["s-servers", "s-ipv4s"]
    assert "static IPs" not in page.split('id="runs"')[1]
