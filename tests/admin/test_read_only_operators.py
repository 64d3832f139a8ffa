"""The read-only operators' group: its members see the whole console and can change nothing."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command

from instances.models import Instance
from octoprovider.core.admin import READ_ONLY_GROUP
from octoprovider.models import ApiToken, AuditEvent, RegionAlias
from staticips.models import StaticIP
from tests.admin.conftest import messages_of

pytestmark = pytest.mark.django_db

# Every list of the project's models that the console shows.
LISTS = [
    "/admin/instances/instance/",
    "/admin/staticips/staticip/",
    "/admin/staticips/association/",
    "/admin/octoprovider/apitoken/",
    "/admin/octoprovider/auditevent/",
    "/admin/octoprovider/regionalias/",
    "/admin/octoprovider/servertypemapping/",
]


@pytest.fixture
def viewer(client, django_user_model):
    """A staff user whose only permissions are the read-only group's, logged in."""
    user = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=READ_ONLY_GROUP))
    client.force_login(user)
    return client


def test_the_group_holds_view_permissions_on_the_projects_models_only(db):
    codenames = set(Group.objects.get(name=READ_ONLY_GROUP).permissions.values_list("codename", flat=True))

    assert {"view_instance", "view_staticip", "view_association", "view_apitoken", "view_auditevent"} <= codenames
    assert {"view_regionalias", "view_servertypemapping"} <= codenames
    assert all(codename.startswith("view_") for codename in codenames)
    assert "view_user" not in codenames


def test_migrate_takes_back_a_permission_given_to_the_group_by_hand(db):
    group = Group.objects.get(name=READ_ONLY_GROUP)
    group.permissions.add(Permission.objects.get(codename="change_instance"))

    call_command("migrate", verbosity=0)

    assert not group.permissions.filter(codename="change_instance").exists()
    assert group.permissions.filter(codename="view_instance").exists()


def test_a_member_sees_every_list_the_dashboard_runs_and_allow_list(viewer, running, octoperf):
    octoperf.allocate()
    for url in LISTS:
        assert viewer.get(url).status_code == 200, url
    assert viewer.get(f"/admin/instances/instance/{running}/change/").status_code == 200
    assert viewer.get("/admin/staticips/staticip/allow-list/").status_code == 200
    assert viewer.get("/admin/runs/").status_code == 200
    index = viewer.get("/admin/").content.decode()
    assert 'id="instances-by-status"' in index and 'id="static-ips"' in index


def test_a_member_is_offered_no_action_no_add_and_no_reconcile_button(viewer, running):
    for url in LISTS:
        response = viewer.get(url)
        assert response.context["action_form"] is None, url
        assert not response.context["has_add_permission"], url
    page = viewer.get(f"/admin/instances/instance/{running}/change/").content.decode()
    assert "terminate-button" not in page and "reboot-button" not in page
    assert "/admin/instances/instance/reconcile/" not in viewer.get("/admin/").content.decode()


def test_a_member_posting_actions_anyway_changes_nothing_and_calls_no_hetzner(viewer, running, octoperf, sandbox):
    ip_id = octoperf.allocate()
    sent = len(sandbox.mutation_requests())

    for url, action, pk in [
        ("/admin/instances/instance/", "terminate", running),
        ("/admin/instances/instance/", "reboot", running),
        ("/admin/instances/instance/", "refresh_from_hetzner", running),
        ("/admin/staticips/staticip/", "release", ip_id),
    ]:
        viewer.post(url, {"action": action, "_selected_action": [pk], "post": "yes"})
    response = viewer.post("/admin/instances/instance/reconcile/", follow=True)

    assert "You may not run reconcile passes." in messages_of(response)
    assert len(sandbox.mutation_requests()) == sent
    assert Instance.objects.get(pk=running).status == "running"
    assert StaticIP.objects.get(pk=ip_id).status == "allocated"
    assert not AuditEvent.objects.filter(kind="console").exists()


def test_a_member_cannot_create_a_token_nor_change_the_catalogue(viewer):
    assert viewer.post("/admin/octoprovider/apitoken/add/", {"name": "x", "scope": "contract"}).status_code == 403
    assert viewer.post("/admin/octoprovider/regionalias/add/", {"alias": "a", "location": "fsn1"}).status_code == 403
    assert not ApiToken.objects.exists() and not RegionAlias.objects.exists()
