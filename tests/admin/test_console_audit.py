"""Who did what from the console: each action is in the audit log and in "Recent actions", by username."""

import pytest
from django.contrib.admin.models import LogEntry

from instances.models import Instance
from octoprovider.models import ApiToken, AuditEvent, RegionAlias
from staticips.models import StaticIP

pytestmark = pytest.mark.django_db

INSTANCES = "/admin/instances/instance/"
IPS = "/admin/staticips/staticip/"
TOKENS = "/admin/octoprovider/apitoken/"
ALIASES = "/admin/octoprovider/regionalias/"
AUDIT = "/admin/octoprovider/auditevent/"


def console_events():
    return AuditEvent.objects.filter(kind="console").order_by("id")


def recent_actions() -> list[tuple[str, str]]:
    return [(entry.object_repr, entry.get_change_message()) for entry in LogEntry.objects.order_by("id")]


def test_a_terminate_is_recorded_with_the_operator_and_so_is_the_hetzner_delete_it_made(run_action, running):
    run_action(INSTANCES, "terminate", [running])

    (event,) = console_events()
    assert (event.actor, event.route, event.our_ids, event.outcome) == ("admin", "terminate", running, "ok")
    delete = AuditEvent.objects.get(kind="hetzner", method="DELETE")
    assert (delete.actor, delete.our_ids) == ("admin", running)
    assert delete.request_id == event.request_id != ""
    assert recent_actions() == [(running, "Terminate: terminating.")]


def test_a_reboot_is_recorded_with_the_operator_and_the_reboot_sent_to_hetzner(run_action, running):
    run_action(INSTANCES, "reboot", [running])

    (event,) = console_events()
    assert (event.actor, event.route, event.our_ids, event.outcome) == ("admin", "reboot", running, "ok")
    reboot = AuditEvent.objects.get(kind="hetzner", route="/servers/{id}/actions/reboot")
    assert reboot.actor == "admin"
    assert recent_actions() == [(running, "Reboot: rebooted.")]


def test_a_release_is_recorded_with_the_operator(run_action, octoperf):
    ip_id = octoperf.allocate()

    run_action(IPS, "release", [ip_id])

    (event,) = console_events()
    assert (event.actor, event.route, event.our_ids, event.outcome) == ("admin", "release", ip_id, "ok")
    assert AuditEvent.objects.get(kind="hetzner", method="DELETE").actor == "admin"
    assert StaticIP.objects.get(pk=ip_id).status in ("releasing", "released")
    assert recent_actions() == [(ip_id, "Release: releasing.")]


def test_a_refused_action_is_recorded_with_its_error_code(run_action, octoperf, associated):
    ip_id, _, _ = associated

    run_action(IPS, "release", [ip_id])  # still associated with a live instance: 409

    (event,) = console_events()
    assert (event.actor, event.our_ids, event.outcome) == ("admin", ip_id, "static_ip_in_use")
    ((_, message),) = recent_actions()
    assert message.startswith("Release: refused, ")


def test_reconcile_now_is_recorded_with_the_operator(admin_client, running):
    admin_client.post(f"{INSTANCES}reconcile/")

    (event,) = console_events()
    assert (event.actor, event.route, event.outcome) == ("admin", "reconcile pass", "ok")
    ((what, message),) = recent_actions()
    assert what == "reconcile pass" and message.startswith("Ran a reconcile pass: ")


def test_creating_and_revoking_an_api_token_are_recorded_without_its_secret(admin_client, run_action):
    admin_client.post(f"{TOKENS}add/", {"name": "terraform", "scope": "read"})
    token = ApiToken.objects.get()

    run_action(TOKENS, "revoke", [str(token.pk)])

    created, revoked = console_events()
    assert (created.actor, created.route, created.our_ids) == ("admin", "add", "API token terraform")
    assert (revoked.actor, revoked.route, revoked.our_ids, revoked.outcome) == (
        "admin",
        "revoke",
        "API token terraform",
        "ok",
    )
    assert [message for _, message in recent_actions()] == ["Added.", "Revoke: revoked."]
    assert token.prefix not in str(list(AuditEvent.objects.values()))


def test_catalogue_overrides_added_changed_and_deleted_are_recorded(admin_client):
    admin_client.post(f"{ALIASES}add/", {"alias": "germany", "location": "nbg1"})
    alias = RegionAlias.objects.get()
    admin_client.post(f"{ALIASES}{alias.pk}/change/", {"alias": "germany", "location": "fsn1"})
    admin_client.post(f"{ALIASES}{alias.pk}/change/", {"alias": "germany", "location": "fsn1"})  # no change
    admin_client.post(f"{ALIASES}{alias.pk}/delete/", {"post": "yes"})

    assert [(e.actor, e.route, e.our_ids) for e in console_events()] == [
        ("admin", "add", "region alias germany → nbg1"),
        ("admin", "change", "region alias germany → fsn1"),
        ("admin", "delete", "region alias germany → fsn1"),
    ]
    assert len(recent_actions()) == 4  # Django's own log keeps the save that changed nothing


def test_the_console_shows_recent_actions_and_filters_the_audit_by_operator(
    admin_client, django_user_model, run_action, running, client
):
    other = django_user_model.objects.create_superuser("alice", password="x")
    client.force_login(other)
    client.post(f"{INSTANCES}reconcile/")
    run_action(INSTANCES, "reboot", [running])

    index = admin_client.get("/admin/").content.decode()
    assert "Recent actions" in index and running in index

    assert 'href="?actor=alice"' in admin_client.get(AUDIT).content.decode()  # the filter offers each operator
    by_admin = admin_client.get(AUDIT, {"actor": "admin"})
    by_alice = admin_client.get(AUDIT, {"actor": "alice"})
    assert {e.actor for e in by_admin.context["cl"].result_list} == {"admin"}
    assert {e.route for e in by_admin.context["cl"].result_list} >= {"reboot", "/servers/{id}/actions/reboot"}
    assert [e.route for e in by_alice.context["cl"].result_list] == ["reconcile pass"]
    assert "operator alice" in by_alice.content.decode()


def test_the_audit_list_answers_under_operations_too_with_its_filter(admin_client):
    response = admin_client.get("/admin/operations/auditevent/", {"actor": "alice"})

    assert response.status_code == 302
    assert response["Location"] == f"{AUDIT}?actor=alice"
    assert admin_client.get(response["Location"]).status_code == 200


def test_a_contract_call_names_no_operator_in_its_hetzner_calls(octoperf, running):
    # The operator's name is set around a console action only; OctoPerf's calls never carry one.
    octoperf.reboot(running)

    assert AuditEvent.objects.get(kind="hetzner", route="/servers/{id}/actions/reboot").actor == ""
    assert Instance.objects.get(pk=running).status == "running"
