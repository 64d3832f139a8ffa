"""What the console and the commands answer to a bad date or location: a clear refusal, never a 500 nor a
traceback; and which euros each operator may see."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError

from staticips.models import StaticIP
from tests.ops.test_costs import day  # noqa: F401  (the scripted day of runs, one with a static IP)

pytestmark = pytest.mark.django_db

ALLOW_LIST = "/admin/staticips/staticip/allow-list/"


@pytest.mark.parametrize("since", ["2026-02-30", "2026-13-01", "2026-00-10", "yesterday"])
def test_the_runs_page_refuses_a_date_that_is_no_day_with_a_message(admin_client, since):
    response = admin_client.get("/admin/runs/", {"since": since})

    assert response.status_code == 400
    assert "is not a date like 2026-05-01" in response.content.decode()
    assert "No run since" in response.content.decode()  # and shows the last week instead


@pytest.mark.parametrize("since", ["2026-02-30", "2026-13-01"])
def test_the_costs_command_refuses_a_date_that_is_no_day_with_a_command_error(since):
    with pytest.raises(CommandError, match="--since must be a date like 2026-05-01"):
        call_command("costs", "--since", since)


def test_the_runs_page_shows_static_ip_euros_only_to_who_may_view_static_ips(
    day,
    client,
    admin_client,
    django_user_model,
):
    staff = django_user_model.objects.create_user("staff", password="x", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_instance"))
    client.force_login(staff)
    since = {"since": (day - timedelta(days=1)).date().isoformat()}

    staff_page = client.get("/admin/runs/", since).content.decode()
    admin_page = admin_client.get("/admin/runs/", since).content.decode()

    assert "static IPs €" in admin_page and "total €" in admin_page
    assert "servers €" in staff_page
    assert "static IPs €" not in staff_page and "total €" not in staff_page
    assert "shown to users who may view static IPs" in staff_page


@pytest.mark.parametrize("location", ["FSN1", " fsn1 ", "Fsn1"])
def test_the_allow_list_resolves_a_location_in_any_case_as_the_command_does(admin_client, octoperf, location):
    fsn, _ = octoperf.allocate(), octoperf.allocate(region="nbg1")

    as_json = admin_client.get(ALLOW_LIST, {"location": location, "format": "json"}).json()
    page = admin_client.get(ALLOW_LIST, {"location": location}).content.decode()

    assert as_json == {"fsn1": [StaticIP.objects.get(pk=fsn).address]}
    assert StaticIP.objects.get(pk=fsn).address in page


def test_the_allow_list_resolves_an_operators_alias(admin_client, octoperf, settings):
    settings.REGION_ALIASES = {"europe": "nbg1"}
    nbg = octoperf.allocate(region="nbg1")

    as_json = admin_client.get(ALLOW_LIST, {"location": "Europe", "format": "json"}).json()

    assert as_json == {"nbg1": [StaticIP.objects.get(pk=nbg).address]}


@pytest.mark.parametrize("location", ["\x00", "mars1", "fsn1\x00"])
def test_the_allow_list_refuses_an_unknown_location_with_a_400_naming_the_known_ones(admin_client, octoperf, location):
    octoperf.allocate()

    as_json = admin_client.get(ALLOW_LIST, {"location": location, "format": "json"})
    page = admin_client.get(ALLOW_LIST, {"location": location})

    assert as_json.status_code == 400
    assert as_json.json()["error"]["code"] == "unknown_region"
    assert "fsn1" in as_json.json()["error"]["message"]
    assert page.status_code == 400
    assert "Unknown region" in page.content.decode()
