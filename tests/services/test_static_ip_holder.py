"""Whose server a static IP's address is on (`holder`) follows Hetzner, never a stale or terminated holder.

The next create takes a static IP on no server, swaps choose by it, and the allow-list shows it: a
holder naming a server the address is not on costs an agent its allow-listed address.
"""

from io import StringIO

import pytest
from django.core.management import call_command

from instances.models import Instance
from staticips import selectors
from staticips.models import StaticIP
from tests.conftest import address_of, public_ipv4

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("with_latency", "no_leftovers")]


def holders_at_hetzner(sandbox) -> dict[str, str | None]:
    """For each allocated static IP, the instance whose server Hetzner shows its Primary IP on."""
    by_server = dict(Instance.objects.exclude(hetzner_id=None).values_list("hetzner_id", "pk"))
    return {
        row.pk: by_server.get(sandbox.primary_ips[row.hetzner_id]["assignee_id"])
        for row in StaticIP.objects.filter(status="allocated")
    }


def holders_recorded() -> dict[str, str | None]:
    return dict(StaticIP.objects.filter(status="allocated").values_list("pk", "holder_id"))


def test_a_swap_asked_for_during_a_move_leaves_no_static_ip_held_by_a_server_it_is_not_on(octoperf, sandbox, settle):
    bare = octoperf.create()  # created before any static IP: an IPv4 of its own
    settle(60)
    first = octoperf.allocate()
    holder = octoperf.create()  # gets the first static IP's address at create
    settle(60)
    # OctoPerf associates that ipId with the bare instance: with no spare, the holder is moved off it
    # first. Its power-on is refused for a while, so the move stays in flight; OctoPerf dissociates.
    holder_server = Instance.objects.get(pk=holder).hetzner_id
    sandbox.inject_fault(
        "POST", rf"/servers/{holder_server}/actions/poweron", code="unavailable", status=503, times=10_000
    )
    association = octoperf.associate(first, bare).json()["value"]
    assert octoperf.dissociate(first, bare, association).status_code == 200
    for _ in range(6):
        settle(5)
    # Meanwhile a second static IP is allocated, and a new instance gets it at create.
    second = octoperf.allocate()
    third = octoperf.create()
    settle(60)
    assert public_ipv4(sandbox, third) == address_of(second)

    # OctoPerf associates the first ipId (whose move is in flight) with the new instance.
    assert octoperf.associate(first, third).status_code == 200
    sandbox.calm()
    for _ in range(20):
        settle(5)
    settle(30, full=True)

    assert holders_recorded() == holders_at_hetzner(sandbox)
    assert octoperf.state(holder) == "running" and octoperf.state(third) == "running"
    assert public_ipv4(sandbox, third) == address_of(first)
    # The address on no server goes to the next create, as the allow-list promises.
    fourth = octoperf.create()
    settle(60)
    assert public_ipv4(sandbox, fourth) == address_of(second)


def test_a_full_pass_corrects_a_holder_hetzner_does_not_show_the_address_on(octoperf, sandbox, settle):
    bare = octoperf.create()
    settle(60)
    ip_id = octoperf.allocate()
    # A write lost, or a move that ended otherwise than planned: the row says the bare server has it.
    StaticIP.objects.filter(pk=ip_id).update(holder=bare)

    settle(30, full=True)

    assert StaticIP.objects.get(pk=ip_id).holder_id is None
    created = octoperf.create()
    settle(60)
    assert public_ipv4(sandbox, created) == address_of(ip_id)


def test_a_full_pass_leaves_the_holder_of_a_create_still_in_flight_alone(octoperf, sandbox, settle):
    ip_id = octoperf.allocate()
    # The create took the IP and its request is still on its way to Hetzner.
    creating = Instance.objects.create(region="fsn1", location="fsn1", type="SMALL", server_type="cx23", image="x")
    StaticIP.objects.filter(pk=ip_id).update(holder=creating)

    settle(5, full=True)

    assert StaticIP.objects.get(pk=ip_id).holder_id == creating.pk
    Instance.objects.filter(pk=creating.pk).update(status="terminated")


def allow_list_command(**options) -> str:
    out = StringIO()
    call_command("static-ips", stdout=out, **options)
    return out.getvalue()


def test_the_allow_list_never_shows_a_terminated_instance_as_an_addresss_holder(
    octoperf, sandbox, settle, admin_client
):
    ip_id = octoperf.allocate()
    instance_id = octoperf.create()
    settle(60)
    assert f"on {instance_id}" in allow_list_command(verbosity=2)

    octoperf.delete(instance_id)
    for _ in range(3):
        settle(10)  # quick passes: the instance is terminated, its row still names it

    assert octoperf.state(instance_id) == "terminated"
    listed = allow_list_command(verbosity=2)
    assert address_of(ip_id) in listed and instance_id not in listed
    page = admin_client.get("/admin/staticips/staticip/allow-list/")
    assert page.status_code == 200
    assert address_of(ip_id) in page.content.decode() and instance_id not in page.content.decode()
    (row,) = selectors.static_ip_allow_list()["fsn1"]
    assert row.on_instance is None
