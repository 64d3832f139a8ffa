"""The static IPs' and associations' admin: free or in use, and release and dissociate through the services."""

import pytest

from instances.models import Instance
from staticips.models import Association, StaticIP
from tests.admin.conftest import messages_of

pytestmark = pytest.mark.django_db

IPS = "/admin/staticips/staticip/"
ASSOCIATIONS = "/admin/staticips/association/"


def test_the_list_shows_each_ip_with_its_address_and_instance(admin_client, associated):
    ip_id, instance_id, _ = associated

    page = admin_client.get(IPS).content.decode()

    assert ip_id in page
    assert StaticIP.objects.get(pk=ip_id).address in page
    assert instance_id in page


def test_the_list_tells_free_ips_from_associated_ones(admin_client, octoperf, associated):
    in_use, _, _ = associated
    free = octoperf.allocate()

    assert free in admin_client.get(IPS, {"use": "free"}).content.decode()
    assert in_use not in admin_client.get(IPS, {"use": "free"}).content.decode()
    assert in_use in admin_client.get(IPS, {"use": "associated"}).content.decode()
    assert free not in admin_client.get(IPS, {"use": "associated"}).content.decode()


@pytest.mark.parametrize("term", ["address", "name", "hetzner_id"])
def test_an_ip_is_found_by_address_name_or_hetzner_id(admin_client, octoperf, term):
    wanted, other = octoperf.allocate(), octoperf.allocate()
    static_ip = StaticIP.objects.get(pk=wanted)
    query = {"address": static_ip.address, "name": static_ip.name, "hetzner_id": static_ip.hetzner_id}[term]

    page = admin_client.get(IPS, {"q": query}).content.decode()

    assert wanted in page
    assert other not in page


def test_release_asks_for_confirmation_then_deletes_the_primary_ip(octoperf, sandbox, settle, run_action):
    ip_id = octoperf.allocate()

    page = run_action(IPS, "release", [ip_id], confirm=False)
    assert "Yes, I’m sure" in page.content.decode()
    assert len(sandbox.primary_ips) == 1

    page = run_action(IPS, "release", [ip_id])
    settle(30)

    assert messages_of(page) == ["Releasing 1 static IP."]
    assert sandbox.primary_ips == {}
    assert StaticIP.objects.get(pk=ip_id).status == "released"


def test_releasing_an_ip_on_a_live_instance_is_refused_saying_to_dissociate(octoperf, sandbox, associated, run_action):
    in_use, _, _ = associated
    free = octoperf.allocate()

    page = run_action(IPS, "release", [in_use, free])

    assert "Releasing 1 static IP." in messages_of(page)
    assert any(m.startswith(f"{in_use}: ") and "dissociate" in m for m in messages_of(page))
    assert StaticIP.objects.get(pk=in_use).status == "allocated"


def test_static_ips_and_associations_cannot_be_added_or_deleted(admin_client, associated):
    ip_id, _, association_id = associated

    assert admin_client.get(f"{IPS}add/").status_code == 403
    assert admin_client.get(f"{ASSOCIATIONS}add/").status_code == 403
    assert b'name="_save"' not in admin_client.get(f"{IPS}{ip_id}/change/").content
    assert b'name="_save"' not in admin_client.get(f"{ASSOCIATIONS}{association_id}/change/").content


def test_the_associations_list_shows_ip_address_and_instance_state(admin_client, associated):
    ip_id, instance_id, association_id = associated

    page = admin_client.get(ASSOCIATIONS, {"q": StaticIP.objects.get(pk=ip_id).address}).content.decode()

    assert association_id in page
    assert instance_id in page
    assert "running" in page


def test_dissociate_gives_the_instance_its_own_ipv4_back_through_the_reconciler(
    octoperf, sandbox, settle, associated, run_action
):
    ip_id, instance_id, association_id = associated
    static_address = StaticIP.objects.get(pk=ip_id).address

    page = run_action(ASSOCIATIONS, "dissociate", [association_id], confirm=False)
    assert static_address in page.content.decode()
    page = run_action(ASSOCIATIONS, "dissociate", [association_id])
    for _ in range(12):
        settle(10)

    assert messages_of(page) == ["Dissociating 1 association."]
    assert Association.objects.get(pk=association_id).status == "ended"
    assert octoperf.state(instance_id) == "running"
    server = sandbox.servers[Instance.objects.get(pk=instance_id).hetzner_id]
    assert server["public_net"]["ipv4"]["ip"] != static_address


# --- the allow-list and each ipId's address history ------------------------------------------------------


def test_the_allow_list_shows_every_allocated_address_by_location(admin_client, octoperf):
    fsn, nbg = octoperf.allocate(), octoperf.allocate(region="nbg1")
    released = octoperf.allocate()
    octoperf.release(released)

    page = admin_client.get(IPS + "allow-list/").content.decode()
    as_json = admin_client.get(IPS + "allow-list/", {"format": "json"}).json()

    assert StaticIP.objects.get(pk=fsn).address in page and StaticIP.objects.get(pk=nbg).address in page
    assert StaticIP.objects.get(pk=released).address not in page
    assert as_json == {"fsn1": [StaticIP.objects.get(pk=fsn).address], "nbg1": [StaticIP.objects.get(pk=nbg).address]}
    assert "allow-list/" in admin_client.get(IPS).content.decode()


def test_the_allow_list_needs_the_view_permission(client, django_user_model, octoperf):
    octoperf.allocate()
    staff = django_user_model.objects.create_user("staff", password="x", is_staff=True)
    client.force_login(staff)

    assert client.get(IPS + "allow-list/").status_code == 403


def test_a_static_ips_page_shows_the_addresses_it_stood_for(admin_client, octoperf, settle):
    first_ip, second_ip = octoperf.allocate(), octoperf.allocate()
    first, second = octoperf.create(), octoperf.create()
    settle(60)
    first_address = StaticIP.objects.get(pk=first_ip).address
    holder_of_first = StaticIP.objects.get(pk=first_ip).holder_id
    other = second if holder_of_first == first else first
    octoperf.associate(first_ip, other)  # swaps: first_ip now stands for the other server's address

    page = admin_client.get(f"{IPS}{first_ip}/change/").content.decode()

    assert StaticIP.objects.get(pk=first_ip).address != first_address
    assert first_address in page and StaticIP.objects.get(pk=first_ip).address in page
    assert second_ip in page  # swapped with
