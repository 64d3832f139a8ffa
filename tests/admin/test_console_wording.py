"""What an operator saw that was wrong: a red cross on healthy rows, old errors, "1 errors ..", "0 minutes
ago", "free" IPs that sit on servers, and a US date picker above an ISO table."""

import html
import re

import pytest

from instances.models import Instance
from octoprovider.core import clock
from octoprovider.operations.models import ReconcilerRun
from staticips.models import StaticIP

pytestmark = pytest.mark.django_db


def text_of(page: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">(.*?)</table>', page, re.S)
    assert match, f"no {element_id}"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split()).replace(" :", ":")


def error_cells(page: str) -> list[str]:
    return [
        " ".join(html.unescape(re.sub(r"<[^>]+>", " ", cell)).split())
        for cell in re.findall(r'<td class="field-has_error">(.*?)</td>', page, re.S)
    ]


def test_the_static_ip_list_shows_no_cross_on_healthy_rows_and_the_start_of_an_error(admin_client, octoperf):
    healthy, failing = octoperf.allocate(), octoperf.allocate()
    StaticIP.objects.filter(pk=failing).update(last_error="Hetzner answered locked to the release; retried")

    page = admin_client.get("/admin/staticips/staticip/").content.decode()

    assert "icon-no" not in page and "icon-yes" not in page
    assert sorted(error_cells(page)) == ["-", "Hetzner answered locked to the release; …"]
    assert healthy in page


def test_the_associations_list_shows_no_cross_on_healthy_rows(admin_client, octoperf, associated):
    page = admin_client.get("/admin/staticips/association/").content.decode()

    assert "icon-no" not in page
    assert error_cells(page) == ["-"]


def test_an_instance_whose_delete_later_succeeded_leaves_the_last_errors(
    admin_client, octoperf, sandbox, running, settle
):
    sandbox.inject_fault("DELETE", r"/servers/\d+", code="unavailable", status=503, times=1)
    octoperf.delete(running)
    assert running in text_of(admin_client.get("/admin/").content.decode(), "last-errors")

    for _ in range(3):
        settle(60)
    assert Instance.objects.get(pk=running).status == Instance.Status.TERMINATED

    assert running not in admin_client.get("/admin/").content.decode()


def test_an_instance_whose_create_failed_stays_in_the_last_errors(admin_client, octoperf, sandbox):
    sandbox.inject_fault("POST", r"/servers$", code="resource_limit_exceeded", status=403)
    octoperf.call("POST", "/instances", form={"userData": "#!/bin/sh", "region": "fsn1", "type": "SMALL"})

    assert "resource limit exceeded" in text_of(admin_client.get("/admin/").content.decode(), "last-errors")


def test_the_reconciler_panel_says_just_now_and_counts_one_error_in_the_singular(admin_client):
    now = clock.now()
    ReconcilerRun.objects.create(
        kind="full",
        started_at=now,
        finished_at=now,
        observed=3,
        hetzner_calls=1,
        errors=["Hetzner is unavailable."],
        last_change_at=now,
        last_changes=["Hetzner is unavailable."],
    )

    text = text_of(admin_client.get("/admin/").content.decode(), "reconciler")

    assert "Last full pass just now: 3 observed, 0 changed, 1 Hetzner call, 1 error: Hetzner is unavailable." in text
    assert text.endswith("Last change just now: Hetzner is unavailable.")
    assert "errors" not in text and ".." not in text and "0 minutes" not in text


def test_the_reconciler_panel_says_minutes_ago_by_the_services_clock(admin_client, settle):
    ReconcilerRun.objects.create(kind="quick", started_at=clock.now(), finished_at=clock.now(), observed=2)
    clock.advance(5 * 60)

    text = text_of(admin_client.get("/admin/").content.decode(), "reconciler")

    assert "Last quick pass 5 minutes ago: 2 observed, 0 changed, 0 Hetzner calls." in text


def test_free_static_ips_do_not_count_one_a_create_took_as_its_servers_address(admin_client, octoperf, settle):
    octoperf.allocate()
    octoperf.create()  # takes the free static IP as its server's address
    settle(60)
    octoperf.allocate()

    text = text_of(admin_client.get("/admin/").content.decode(), "static-ips")

    assert "free (on no server) 1 on a server, not associated 1 associated 0" in text


def test_the_runs_page_asks_for_its_date_in_iso_as_its_table_writes_it(admin_client):
    page = admin_client.get("/admin/runs/", {"since": "2026-05-01"}).content.decode()

    (field,) = re.findall(r'<input [^>]*id="since"[^>]*>', page)
    assert 'type="text"' in field and 'value="2026-05-01"' in field
    assert 'placeholder="YYYY-MM-DD"' in field and 'pattern="[0-9]{4}-[0-9]{2}-[0-9]{2}"' in field
    assert 'type="date"' not in page
