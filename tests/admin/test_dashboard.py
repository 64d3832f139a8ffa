"""The admin's index page is the operators' dashboard: the fleet, its cost, Hetzner's budget, the reconciler."""

import html
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from instances.models import Instance
from octoprovider import hetzner
from octoprovider.hetzner import budget as rate_budget
from staticips.models import StaticIP

pytestmark = pytest.mark.django_db


def dashboard(admin_client) -> str:
    response = admin_client.get("/admin/")
    assert response.status_code == 200
    return response.content.decode()


def module(page: str, module_id: str) -> str:
    """Return the text of one dashboard module, tags stripped and blanks collapsed."""
    match = re.search(rf'<div class="module[^"]*" id="{module_id}">(.*?)</table>', page, re.S)
    assert match, f"no module {module_id}"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())


def gross_hourly(sandbox, *, server_type: str | None = None, ipv4: bool = False, location: str = "fsn1") -> Decimal:
    pricing = hetzner.client().request(method="GET", url="/pricing")["pricing"]
    if ipv4:
        (entry,) = [e for e in pricing["primary_ips"] if e["type"] == "ipv4"]
    else:
        (entry,) = [e for e in pricing["server_types"] if e["name"] == server_type]
    (price,) = [p for p in entry["prices"] if p["location"] == location]
    return Decimal(price["price_hourly"]["gross"])


def test_the_dashboard_counts_instances_by_state_and_by_location(admin_client, octoperf, settle):
    octoperf.create(), octoperf.create(), octoperf.create(region="nbg1")
    settle(60)
    octoperf.delete(octoperf.create(region="hel1"))
    settle(60)  # Hetzner takes the delete once the boot is over
    settle(5)

    page = dashboard(admin_client)

    assert module(page, "instances-by-status") == "Instances by state running 3 terminated 1"
    assert module(page, "instances-by-location") == "Live instances by location fsn1 2 nbg1 1"


def test_the_dashboard_tells_free_static_ips_from_associated_ones(admin_client, octoperf, associated):
    octoperf.allocate(), octoperf.allocate()

    text = module(dashboard(admin_client), "static-ips")

    assert "free (on no server) 2" in text
    assert "associated 1" in text


def test_the_hourly_spend_prices_servers_and_ipv4s_at_hetzners_prices(admin_client, octoperf, sandbox, settle):
    octoperf.create(type="MEDIUM")
    settle(60)
    octoperf.allocate()
    # One cx33 in fsn1, its own IPv4, and a free static IPv4.
    expected = gross_hourly(sandbox, server_type="cx33") + 2 * gross_hourly(sandbox, ipv4=True)

    text = module(dashboard(admin_client), "spend")

    assert f"now {expected:.4f} EUR/h" in text
    assert f"a day at this rate {expected * 24:.2f} EUR" in text


def test_prices_are_read_from_hetzner_once_an_hour_not_on_every_page_view(admin_client, sandbox, running):
    def pricing_calls() -> int:
        return sum(1 for r in sandbox.requests if r.path == "/pricing")

    dashboard(admin_client)
    dashboard(admin_client)

    assert pricing_calls() == 1


def test_the_dashboard_still_shows_when_hetzner_cannot_tell_prices(admin_client, sandbox, running):
    sandbox.inject_fault("GET", r"/pricing", code="unavailable", status=503, times=5)

    text = module(dashboard(admin_client), "spend")

    assert text.startswith("Hourly spend (Hetzner list prices, VAT incl.) Unknown: Hetzner's API is unavailable")


def test_the_dashboard_shows_the_rate_budget_of_hetzners_last_answer(admin_client, octoperf, sandbox):
    octoperf.create()

    text = module(dashboard(admin_client), "rate-budget")

    budget = rate_budget.snapshot()
    assert budget["limit"] == 3600
    assert f"remaining {budget['remaining']} / 3600" in text


def test_the_dashboard_shows_when_the_reconciler_last_ran_and_what_it_changed(admin_client, octoperf, settle):
    text = module(dashboard(admin_client), "reconciler")
    assert "Never ran" in text

    instance_id = octoperf.create()
    settle(60)
    settle(5)

    text = module(dashboard(admin_client), "reconciler")
    assert "Last quick pass" in text
    assert "1 observed, 1 changed" not in text  # the latest pass had nothing left to do...
    assert "Last change" in text and "1 changed" in text  # ...but the one before saw the server boot
    assert Instance.objects.get(pk=instance_id).status == "running"


def test_the_reconciler_records_the_rate_budget_it_saw_for_the_web_processes(admin_client, octoperf, settle):
    octoperf.create()
    dashboard(admin_client)  # prices cached: the next view makes no Hetzner call
    settle(60, full=True)
    # As another web process sees it: the reconciler's record, shared through the database.

    text = module(dashboard(admin_client), "rate-budget")

    assert "As seen by the reconciler (full pass)" in text


def test_the_dashboard_lists_the_last_errors(admin_client, octoperf, sandbox, running):
    sandbox.inject_fault("DELETE", r"/servers/\d+", code="unavailable", status=503, times=5)
    octoperf.delete(running)

    page = dashboard(admin_client)

    assert running in module(page, "last-errors")
    assert "unavailable" in module(page, "last-errors")


def test_the_dashboard_keeps_the_app_list(admin_client):
    page = dashboard(admin_client)

    assert 'href="/admin/instances/instance/"' in page
    assert 'id="content-main"' in page


def test_the_dashboard_costs_the_same_queries_for_300_instances_as_for_3(admin_client, octoperf, settle):
    octoperf.create()
    octoperf.allocate()
    settle(60, full=True)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            dashboard(admin_client)
        return len(captured)

    dashboard(admin_client)  # prices cached
    few = queries()
    Instance.objects.bulk_create(
        Instance(
            region="fsn1",
            location=("fsn1", "nbg1", "hel1")[n % 3],
            type="SMALL",
            server_type="cx23",
            image="docker-ce",
            status=("running", "stopped", "terminated")[n % 3],
            last_error=f"boom {n}",
        )
        for n in range(300)
    )
    StaticIP.objects.bulk_create(StaticIP(region="fsn1", location="fsn1", status="allocated") for _ in range(50))

    assert queries() == few


@pytest.mark.parametrize("path", ["/admin/", "/admin/instances/instance/", "/admin/staticips/staticip/"])
def test_every_admin_page_says_the_cloud_is_simulated(admin_client, path):
    assert "Simulated Hetzner Cloud" in admin_client.get(path).content.decode()


def test_the_login_page_says_the_cloud_is_simulated(client):
    assert "Simulated Hetzner Cloud" in client.get("/admin/login/").content.decode()


def test_no_banner_on_a_real_hetzner_project(admin_client, settings):
    hetzner.use_sandbox(None)
    settings.HETZNER_SANDBOX = False

    page = admin_client.get("/admin/instances/instance/").content.decode()

    assert "Simulated Hetzner Cloud" not in page


def test_the_dashboard_shows_each_budget_and_what_is_left(admin_client, octoperf, settings):
    settings.MAX_HOURLY_SPEND_EUR = Decimal("1.00")
    settings.MONTHLY_BUDGET_EUR = Decimal("500")
    octoperf.create()
    burn = gross_hourly(None, server_type="cx23") + gross_hourly(None, ipv4=True)

    text = module(dashboard(admin_client), "budgets")

    assert "MAX_HOURLY_SPEND_EUR 1.00" in text
    assert f"{burn:.4f} (1 %) {Decimal(1) - burn:.2f} EUR" in text
    assert "MONTHLY_BUDGET_EUR 500.00" in text
    assert "DAILY_BUDGET_EUR" not in text


def test_the_dashboard_says_when_no_budget_is_set(admin_client):
    assert "None set" in module(dashboard(admin_client), "budgets")


# --- who sees what -------------------------------------------------------------------------------


def staff_client(client, django_user_model, *perms: str):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("viewer", password="x" * 12, is_staff=True)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    client.force_login(user)
    return client


def test_a_staff_user_without_permissions_sees_no_figure_of_the_fleet(
    client, django_user_model, octoperf, sandbox, running
):
    octoperf.allocate()
    sandbox.inject_fault("DELETE", r"/servers/\d+", code="unavailable", status=503, times=5)
    octoperf.delete(running)
    page = dashboard(staff_client(client, django_user_model))

    for module_id in (
        "instances-by-status",
        "instances-by-location",
        "static-ips",
        "spend",
        "budgets",
        "rate-budget",
        "reconciler",
        "last-errors",
    ):
        assert f'id="{module_id}"' not in page
    assert running not in page
    assert "unavailable" not in page
    assert "EUR/h" not in page and "Hourly spend" not in page


def test_a_staff_user_sees_the_figures_of_what_they_may_view(client, django_user_model, octoperf, sandbox, running):
    octoperf.allocate()
    sandbox.inject_fault("DELETE", r"/servers/\d+", code="unavailable", status=503, times=5)
    octoperf.delete(running)
    page = dashboard(staff_client(client, django_user_model, "instances.view_instance"))

    assert "shutting-down" in module(page, "instances-by-status") or "deleting" in module(page, "instances-by-status")
    assert running in module(page, "last-errors")
    assert 'id="reconciler"' in page
    assert 'id="static-ips"' not in page
    assert 'id="spend"' not in page  # the spend sums static IPs too
