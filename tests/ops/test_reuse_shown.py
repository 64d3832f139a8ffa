"""What server reuse did, shown: the dashboard's parked-servers panel and the metrics."""

import re

import pytest

from instances.models import ParkedServer
from tests.admin.test_dashboard import dashboard, module

pytestmark = pytest.mark.django_db
MINUTE = 60


@pytest.fixture
def parked_then_taken(octoperf, settle, settings):
    """One server parked 15 minutes into its hour, taken 5 minutes later; then a second one parked."""
    settings.SERVER_REUSE = "billed-hour"
    first = octoperf.create()
    other = octoperf.create(type="MEDIUM")
    settle(15 * MINUTE)
    octoperf.delete(first)
    settle(5 * MINUTE)
    taker = octoperf.create()
    settle(MINUTE)
    octoperf.delete(other)
    return taker


def test_the_dashboard_shows_the_parked_servers_and_their_deadlines(parked_then_taken, admin_client):
    row = ParkedServer.objects.get(status="parked")

    text = module(dashboard(admin_client), "parked-servers")

    assert f"cx33 in fsn1 (server {row.hetzner_id}, parked) deleted at {row.deadline:%H:%M:%S} UTC" in text
    assert "Today: 2 parked, 1 taken, 0 deleted at their deadline" in text
    assert re.search(r"\d+\.\d\d EUR saved", text)


def test_the_panel_is_hidden_from_staff_who_may_not_see_instances(parked_then_taken, client, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    client.force_login(user)

    assert 'id="parked-servers"' not in client.get("/admin/").content.decode()


def test_the_metrics_count_parks_takes_deadline_deletes_and_euros_saved(octoperf, settle, settings, scrape):
    def value(text: str, series: str) -> float:
        found = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
        return float(found.group(1)) if found else 0.0

    series = [f'octoprovider_reuse_events_total{{event="{event}"}}' for event in ("park", "take", "deadline_delete")]
    before = scrape()
    settings.SERVER_REUSE = "billed-hour"
    first = octoperf.create()
    settle(15 * MINUTE)
    octoperf.delete(first)
    settle(MINUTE)
    taker = octoperf.create()
    settle(MINUTE)
    octoperf.delete(taker)
    for _ in range(45):
        settle(MINUTE)

    after = scrape()
    assert [value(after, name) - value(before, name) for name in series] == [2, 1, 1]
    saved = value(after, "octoprovider_reuse_saved_eur_total") - value(before, "octoprovider_reuse_saved_eur_total")
    assert saved > 0
