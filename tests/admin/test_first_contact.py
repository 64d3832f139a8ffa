"""What a new operator looks for in the console: live rows by default, age and price per instance,
reboot and terminate on an instance's page, one region filter choice per region, no dead links."""

from datetime import timedelta
from decimal import Decimal

import pytest

from instances.models import Instance
from octoprovider import hetzner
from octoprovider.core import clock
from staticips.models import StaticIP

pytestmark = pytest.mark.django_db

INSTANCES = "/admin/instances/instance/"
STATIC_IPS = "/admin/staticips/staticip/"


def test_the_instance_list_hides_terminated_instances_unless_asked(admin_client, octoperf, settle):
    live, gone = octoperf.create(), octoperf.create()
    settle(60)
    octoperf.delete(gone)
    settle(60)

    default = admin_client.get(INSTANCES).content.decode()
    everything = admin_client.get(INSTANCES, {"status": "all"}).content.decode()
    terminated = admin_client.get(INSTANCES, {"status": "terminated"}).content.decode()

    assert live in default and gone not in default
    assert live in everything and gone in everything
    assert gone in terminated and live not in terminated


def test_the_static_ip_list_hides_released_ips_unless_asked(admin_client, octoperf, settle):
    kept, released = octoperf.allocate(), octoperf.allocate()
    octoperf.release(released)
    settle(60)
    assert StaticIP.objects.get(pk=released).status == "released"

    default = admin_client.get(STATIC_IPS).content.decode()

    assert kept in default and released not in default
    assert released in admin_client.get(STATIC_IPS, {"status": "all"}).content.decode()


def test_the_dashboards_location_counts_link_to_the_instances_they_count(admin_client, octoperf, settle):
    running, stopped = octoperf.create(region="nbg1"), octoperf.create(region="nbg1")
    settle(60)
    Instance.objects.filter(pk=stopped).update(status=Instance.Status.STOPPED)  # as a sweep finds it

    dashboard = admin_client.get("/admin/").content.decode()
    link = f"{INSTANCES}?location__exact=nbg1"
    listed = admin_client.get(link).content.decode()

    assert f'href="{link}"' in dashboard and ">2</td>" in dashboard.split(link)[1][:200]
    assert running in listed and stopped in listed


def test_each_instance_shows_its_age_and_what_it_costs_per_hour(admin_client, octoperf, settle):
    instance_id = octoperf.create()
    settle(60)
    Instance.objects.filter(pk=instance_id).update(created_at=clock.now() - timedelta(hours=2, minutes=5))
    prices = hetzner.hourly_prices()
    expected = prices.server("cx23", "fsn1") + prices.primary_ipv4["fsn1"]

    page = admin_client.get(INSTANCES).content.decode()
    detail = admin_client.get(f"{INSTANCES}{instance_id}/change/").content.decode()

    assert "2 h 05 min" in page and "2 h 05 min" in detail
    assert f"{expected:.4f}" in page and f"{expected:.4f}" in detail
    assert expected > Decimal(0)


def test_an_instances_page_offers_reboot_and_terminate_through_their_confirmation(admin_client, octoperf, settle):
    instance_id = octoperf.create()
    settle(60)

    detail = admin_client.get(f"{INSTANCES}{instance_id}/change/").content.decode()
    confirm = admin_client.post(INSTANCES, {"action": "terminate", "_selected_action": [instance_id]})

    assert 'id="reboot-button"' in detail and 'id="terminate-button"' in detail
    assert f'action="{INSTANCES}"' in detail
    assert "Their Hetzner servers are deleted" in confirm.content.decode()
    assert Instance.objects.get(pk=instance_id).status == "running"


def test_a_terminated_instances_page_offers_no_buttons(admin_client, octoperf, settle):
    instance_id = octoperf.create()
    settle(60)
    octoperf.delete(instance_id)
    settle(60)

    detail = admin_client.get(f"{INSTANCES}{instance_id}/change/").content.decode()

    assert 'id="reboot-button"' not in detail and 'id="terminate-button"' not in detail


def test_regions_are_recorded_in_lower_case_so_the_filter_has_one_choice_each(admin_client, octoperf, settle):
    octoperf.create(region="FSN1")
    octoperf.create(region="fsn1")
    octoperf.allocate(region="Fsn1")

    assert set(Instance.objects.values_list("region", flat=True)) == {"fsn1"}
    assert set(StaticIP.objects.values_list("region", flat=True)) == {"fsn1"}
    assert "FSN1" not in admin_client.get(INSTANCES).content.decode()


def test_no_view_site_link_leads_to_a_404(admin_client):
    index = admin_client.get("/admin/").content.decode()
    root = admin_client.get("/")

    assert "View site" not in index
    assert root.status_code == 302 and root["Location"] == "/admin/"
