"""The instances' admin: what operators see of the fleet, and the actions that call the API's services."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from instances.models import Instance
from octoprovider import hetzner
from octoprovider.core import clock
from staticips.models import Association, StaticIP
from tests.admin.conftest import messages_of

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/instances/instance/"


def reboots(sandbox) -> list:
    return [r for r in sandbox.mutation_requests() if r.path.endswith("/actions/reboot")]


# --- the list --------------------------------------------------------------------------------------


def test_the_list_shows_each_instance_with_its_state_address_and_static_ip(admin_client, associated):
    ip_id, instance_id, _ = associated
    instance = Instance.objects.get(pk=instance_id)

    page = admin_client.get(CHANGELIST).content.decode()

    assert instance_id in page
    assert instance.public_ipv4 in page
    assert ip_id in page
    assert str(instance.hetzner_id) in page


@pytest.mark.parametrize("term", ["id", "hetzner_id", "name", "public_ipv4"])
def test_an_instance_is_found_by_our_id_hetzner_id_name_or_address(admin_client, octoperf, settle, term):
    wanted, other = octoperf.create(), octoperf.create(region="nbg1")
    settle(60)
    instance = Instance.objects.get(pk=wanted)
    query = {
        "id": instance.id,
        "hetzner_id": instance.hetzner_id,
        "name": instance.name,
        "public_ipv4": instance.public_ipv4,
    }[term]

    page = admin_client.get(CHANGELIST, {"q": query}).content.decode()

    assert wanted in page
    assert other not in page


def test_a_search_by_a_word_is_not_an_error_on_the_hetzner_id(admin_client, running):
    assert admin_client.get(CHANGELIST, {"q": "nothing-like-this"}).status_code == 200


def test_the_list_filters_by_state_location_type_and_age(admin_client, octoperf, settle):
    in_fsn1, in_nbg1 = octoperf.create(), octoperf.create(region="nbg1", type="LARGE")
    settle(60)
    octoperf.delete(in_nbg1)
    Instance.objects.filter(pk=in_fsn1).update(created_at=clock.now() - timedelta(days=2))

    def listed(**query) -> set[str]:
        page = admin_client.get(CHANGELIST, query).content.decode()
        return {pk for pk in (in_fsn1, in_nbg1) if pk in page}

    assert listed(status__exact="running") == {in_fsn1}
    assert listed(location__exact="nbg1") == {in_nbg1}
    assert listed(type__exact="LARGE") == {in_nbg1}
    assert listed(age="gt1d") == {in_fsn1}
    assert listed(age="lt1h") == {in_nbg1}


def test_the_list_costs_the_same_queries_for_300_instances_as_for_3(admin_client, django_assert_max_num_queries):
    def make(count: int) -> None:
        Instance.objects.bulk_create(
            Instance(
                region="fsn1",
                location="fsn1",
                type="SMALL",
                server_type="cx23",
                image="docker-ce",
                status="running",
                hetzner_id=10_000 + Instance.objects.count() + n,
                public_ipv4=f"10.0.{n // 250}.{n % 250}",
            )
            for n in range(count)
        )
        ips = StaticIP.objects.bulk_create(
            StaticIP(region="fsn1", location="fsn1", status="allocated", address=f"10.9.{n // 250}.{n % 250}")
            for n in range(count // 3)
        )
        instances = Instance.objects.filter(associations__isnull=True)[: len(ips)]
        pairs = zip(ips, instances, strict=True)
        Association.objects.bulk_create(Association(static_ip=ip, instance=i) for ip, i in pairs)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(CHANGELIST).status_code == 200
        return len(captured)

    make(3)
    queries()  # the first page also fetches Hetzner's prices (the EUR/h column), cached for an hour
    few = queries()
    make(297)
    with django_assert_max_num_queries(few):
        assert admin_client.get(CHANGELIST).status_code == 200
    assert queries() == few
    for other in ("/admin/staticips/staticip/", "/admin/staticips/association/"):
        with django_assert_max_num_queries(few):
            assert admin_client.get(other).status_code == 200


# --- read-only --------------------------------------------------------------------------------------


def test_instances_cannot_be_added_edited_or_deleted_in_the_admin(admin_client, running):
    page = admin_client.get(f"{CHANGELIST}{running}/change/")

    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    assert admin_client.post(f"{CHANGELIST}{running}/delete/", {"post": "yes"}).status_code == 403
    assert b"delete_selected" not in admin_client.get(CHANGELIST).content


def test_the_detail_page_never_shows_user_data(admin_client, sandbox, running):
    page = admin_client.get(f"{CHANGELIST}{running}/change/").content.decode()

    assert "s3cr3t-agent-token" not in page
    assert "s3cr3t-agent-token" in sandbox.user_data(Instance.objects.get(pk=running).hetzner_id)


def test_a_staff_member_with_view_permission_only_gets_no_actions(client, running):
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_instance"))
    client.force_login(user)

    page = client.get(CHANGELIST).content.decode()

    assert running in page
    assert 'value="terminate"' not in page
    assert 'value="reboot"' not in page


# --- actions -----------------------------------------------------------------------------------------


def test_reboot_asks_for_confirmation_and_reboots_nothing_until_confirmed(admin_client, sandbox, running, run_action):
    page = run_action(CHANGELIST, "reboot", [running], confirm=False)

    assert page.status_code == 200
    assert "Yes, I’m sure" in page.content.decode()
    assert running in page.content.decode()
    assert reboots(sandbox) == []


def test_reboot_once_confirmed_reboots_the_server_through_the_service(sandbox, running, run_action):
    page = run_action(CHANGELIST, "reboot", [running])

    assert messages_of(page) == ["Rebooted 1 instance."]
    assert len(reboots(sandbox)) == 1


def test_terminate_deletes_the_servers_and_octoperf_sees_them_terminated(octoperf, sandbox, settle, run_action):
    first, second = octoperf.create(), octoperf.create()
    settle(60)

    page = run_action(CHANGELIST, "terminate", [first, second])

    assert messages_of(page) == ["Terminating 2 instances."]
    assert octoperf.state(first) == "shutting-down"
    settle(30)
    assert octoperf.state(first) == octoperf.state(second) == "terminated"
    assert sandbox.servers == {}


def test_one_rows_failure_is_reported_and_does_not_stop_the_others(octoperf, sandbox, settle, run_action):
    alive, gone = octoperf.create(), octoperf.create()
    settle(60)
    octoperf.delete(gone)

    page = run_action(CHANGELIST, "reboot", [gone, alive])

    assert "Rebooted 1 instance." in messages_of(page)
    assert any(m.startswith(f"{gone}: ") and "cannot be rebooted" in m for m in messages_of(page))
    assert len(reboots(sandbox)) == 1


def test_refresh_from_hetzner_shows_a_server_stopped_behind_our_back(octoperf, sandbox, running, run_action):
    hetzner.power_off(Instance.objects.get(pk=running).hetzner_id)
    sandbox.settle()

    page = run_action(CHANGELIST, "refresh_from_hetzner", [running])

    assert octoperf.state(running) == "stopped"
    assert f"{running}: running → stopped" in messages_of(page)
    assert any(m.startswith("Reconcile pass: 1 instances observed, 1 changed") for m in messages_of(page))


def test_run_a_reconcile_pass_now_answers_only_to_post(admin_client, running):
    assert admin_client.get("/admin/instances/instance/reconcile/").status_code == 405

    page = admin_client.post("/admin/instances/instance/reconcile/", follow=True)

    assert page.request["PATH_INFO"] == "/admin/"
    assert any(m.startswith("Reconcile pass:") for m in messages_of(page))
