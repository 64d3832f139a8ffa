"""Test runs and what each cost, for a scripted day: in the admin and from `manage.py costs`."""

import json
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.management import call_command

from octoprovider import hetzner
from octoprovider.core import clock

pytestmark = pytest.mark.django_db

MINUTE = 60


@pytest.fixture
def day(octoperf, sandbox, settle):
    """Script a day of tests: two runs in fsn1 two hours apart, one in nbg1, one static IP in use.

    Run A (fsn1): 3 SMALL created a minute apart, all deleted 50 minutes after the first: 1 hour each.
    Run B (fsn1, 2 h later): 2 SMALL living 90 minutes (2 hours each); the first takes a static IP.
    Run C (nbg1, at the same time as B): 1 MEDIUM living 10 minutes.
    """
    start = clock.now()

    def at(seconds: float):
        elapsed = (clock.now() - start).total_seconds()
        settle(seconds - elapsed)

    a = [octoperf.create()]
    at(1 * MINUTE)
    a.append(octoperf.create())
    at(2 * MINUTE)
    a.append(octoperf.create())
    at(50 * MINUTE)
    for instance_id in a:
        octoperf.delete(instance_id)

    ip_id = octoperf.allocate()
    at(120 * MINUTE)
    b = [octoperf.create(), octoperf.create()]
    c = octoperf.create(region="nbg1", type="MEDIUM")
    at(122 * MINUTE)
    association_id = octoperf.associate(ip_id, b[0]).json()["value"]
    at(130 * MINUTE)
    octoperf.delete(c)
    at(210 * MINUTE)
    for instance_id in b:
        octoperf.delete(instance_id)
    octoperf.dissociate(ip_id, b[0], association_id)
    at(215 * MINUTE)
    return start


def price(server_type=None, location="fsn1"):
    prices = hetzner.hourly_prices()
    return prices.server(server_type, location) if server_type else prices.ipv4(location)


def costs_json(since) -> dict:
    out = []

    class Out:
        def write(self, text):
            out.append(text)

        def flush(self):
            pass

    call_command("costs", "--since", since.date().isoformat(), "--json", stdout=Out())
    return json.loads("".join(out))


def test_runs_group_creates_per_region_and_cost_each_per_started_hour(day):
    report = costs_json(day - timedelta(days=1))
    by_start = sorted(report["runs"], key=lambda run: (run["start"], run["region"]))
    a, b, c = by_start[0], *sorted(by_start[1:], key=lambda run: run["region"])

    assert [run["region"] for run in (a, b, c)] == ["fsn1", "fsn1", "nbg1"]
    assert (a["instances"], a["instance_hours"]) == (3, 3)
    assert a["servers_eur"] == str(3 * price("cx23"))
    assert a["ipv4s_eur"] == str(3 * price())
    assert a["static_ips_eur"] == "0"
    assert a["unused_minutes"] == (60 - 50) + (60 - 49) + (60 - 48)
    assert a["end"] is not None

    assert (b["instances"], b["instance_hours"]) == (2, 4)
    assert b["servers_eur"] == str(4 * price("cx23"))
    # The first server was created with the free static IP as its address: it never had one of its own.
    assert b["ipv4s_eur"] == str(2 * price())
    assert b["static_ips_eur"] == str(2 * price())  # associated for 88 minutes
    assert b["unused_minutes"] == 2 * (120 - 90)

    assert (c["instances"], c["instance_hours"], c["unused_minutes"]) == (1, 1, 50)
    assert c["servers_eur"] == str(price("cx33", "nbg1"))
    # 7 cx23-hours, 7 IPv4-hours in fsn1 (5 own, 2 static), a cx33-hour and its IPv4 in nbg1.
    expected = price("cx23") * 7 + price() * 7 + price("cx33", "nbg1") + price(location="nbg1")
    assert report["total_eur"] == str(expected)


def test_a_longer_run_gap_makes_one_run_of_the_fsn1_tests(day, settings):
    settings.RUN_GAP = 3 * 3600

    report = costs_json(day - timedelta(days=1))

    assert sorted((run["region"], run["instances"]) for run in report["runs"]) == [("fsn1", 5), ("nbg1", 1)]


def test_a_run_with_a_live_instance_has_no_end_yet(octoperf, settle):
    octoperf.create()
    settle(30 * MINUTE)

    (run,) = costs_json(clock.now())["runs"]

    assert run["end"] is None
    assert run["instance_hours"] == 1


def test_the_costs_command_prints_a_line_per_run_and_the_total(day, capsys):
    call_command("costs", "--since", (day - timedelta(days=1)).date().isoformat())

    out = capsys.readouterr().out
    assert out.count("\nfsn1 ") == 2
    assert "3 runs since" in out


def test_the_costs_command_refuses_a_bad_date():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--since must be a date"):
        call_command("costs", "--since", "yesterday")


def test_the_admin_lists_the_runs_with_their_cost(day, admin_client):
    cache.clear()
    response = admin_client.get("/admin/runs/", {"since": (day - timedelta(days=1)).date().isoformat()})

    assert response.status_code == 200
    page = response.content.decode()
    assert page.count("<tr><td>fsn1") == 2
    assert "nbg1" in page
    assert f"{3 * price('cx23'):.4f}" in page


def test_userdata_is_stored_nowhere_runs_are_computed_from(day, octoperf):
    from tests.conftest import USER_DATA

    report = json.dumps(costs_json(day - timedelta(days=1)))

    assert USER_DATA not in report and "s3cr3t" not in report
