"""Servers in the sandbox behave as Hetzner's do, seen through the hcloud library."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hcloud import APIException, Client
from hcloud.firewalls import Firewall
from hcloud.images import Image
from hcloud.locations import Location
from hcloud.server_types import ServerType
from hcloud.servers import BoundServer
from hcloud.ssh_keys import SSHKey

from octoprovider.hetzner.sandbox import FakeClock, SandboxCloud

CreateServer = Callable[..., BoundServer]
OURS = {"managed-by": "octoprovider", "octoprovider-deployment": "default", "octoprovider-id": "i-1"}


def test_created_server_moves_from_initializing_to_starting_to_running_with_the_clock(
    client: Client, clock: FakeClock, create_server: CreateServer
) -> None:
    server = create_server()
    assert server.status == "initializing"

    clock.advance(6)
    assert client.servers.get_by_id(server.id).status == "starting"

    clock.advance(10)
    assert client.servers.get_by_id(server.id).status == "running"


def test_create_action_finishes_with_initializing_and_its_start_action_when_running(
    client: Client, cloud: SandboxCloud
) -> None:
    response = client.servers.create(
        name="octoperf-i-1",
        server_type=ServerType(name="cx23"),
        image=Image(name="docker-ce"),
        location=Location(name="fsn1"),
    )
    assert response.action.command == "create_server"
    assert response.action.status == "running"
    (start,) = response.next_actions
    assert (start.command, start.status) == ("start_server", "running")

    cloud.advance(5)
    assert client.actions.get_by_id(response.action.id).status == "success"
    cloud.advance(9)
    assert client.actions.get_by_id(start.id).status == "running"
    cloud.advance(1)
    action = client.actions.get_by_id(start.id)
    assert (action.status, action.progress) == ("success", 100)
    assert action.resources == [{"id": response.server.id, "type": "server"}]


def test_created_server_has_auto_deleted_primary_ipv4_and_ipv6_and_its_labels(
    client: Client, create_server: CreateServer
) -> None:
    server = create_server(labels=OURS)

    assert server.labels == OURS
    assert server.public_net.ipv4.ip
    ip = client.primary_ips.get_by_id(server.public_net.primary_ipv4.id)
    assert (ip.ip, ip.assignee_id, ip.auto_delete) == (server.public_net.ipv4.ip, server.id, True)
    assert ip.location.name == "fsn1"
    ipv6 = client.primary_ips.get_by_id(server.public_net.primary_ipv6.id)
    assert (ipv6.type, ipv6.ip, ipv6.assignee_id, ipv6.auto_delete) == (
        "ipv6",
        server.public_net.ipv6.ip,
        server.id,
        True,
    )
    assert server.public_net.ipv6.ip.endswith("::/64")


def test_created_server_reports_its_type_location_image_and_created_time(
    create_server: CreateServer, clock: FakeClock
) -> None:
    server = create_server(server_type="cpx22", location="sin")

    assert (server.server_type.name, server.server_type.cores) == ("cpx22", 2)
    assert (server.location.name, server.location.network_zone) == ("sin", "ap-southeast")
    assert server.image.name == "docker-ce"
    assert server.created.timestamp() == clock.now()


def test_server_without_ipv4_gets_no_primary_ip(cloud: SandboxCloud, create_server: CreateServer) -> None:
    from hcloud.servers import ServerCreatePublicNetwork

    server = create_server(public_net=ServerCreatePublicNetwork(enable_ipv4=False))

    assert server.public_net.ipv4 is None
    assert [ip["type"] for ip in cloud.primary_ips.values()] == ["ipv6"]


def test_user_data_is_recorded_for_tests_but_not_returned_by_the_api(
    cloud: SandboxCloud, create_server: CreateServer
) -> None:
    server = create_server(user_data="#cloud-config\nsecret: s3cr3t\n")

    assert cloud.user_data(server.id) == "#cloud-config\nsecret: s3cr3t\n"
    assert "s3cr3t" not in str(cloud.servers[server.id])


def test_user_data_over_32_kib_is_invalid_input(create_server: CreateServer) -> None:
    with pytest.raises(APIException) as error:
        create_server(user_data="x" * (32 * 1024 + 1))
    assert error.value.code == "invalid_input"


def test_root_password_is_returned_only_without_ssh_keys(client: Client, cloud: SandboxCloud) -> None:
    cloud.add_ssh_key("ops")
    common = {
        "server_type": ServerType(name="cx23"),
        "image": Image(name="docker-ce"),
        "location": Location(name="fsn1"),
    }

    without_key = client.servers.create(name="a", **common)
    with_key = client.servers.create(name="b", ssh_keys=[SSHKey(name="ops")], **common)

    assert without_key.root_password
    assert with_key.root_password is None


def test_ssh_keys_by_name_and_firewalls_by_id_are_attached(
    cloud: SandboxCloud, create_server: CreateServer, client: Client
) -> None:
    key_id = cloud.add_ssh_key("ops")
    firewall_id = cloud.add_firewall("agents")

    server = create_server(ssh_keys=[SSHKey(name="ops"), SSHKey(id=key_id)], firewalls=[Firewall(id=firewall_id)])

    assert [fw.firewall.id for fw in server.public_net.firewalls] == [firewall_id]
    firewall = client.firewalls.get_by_name("agents")
    assert [resource.server.id for resource in firewall.applied_to] == [server.id]


def test_server_names_are_unique(create_server: CreateServer) -> None:
    create_server("octoperf-i-1")

    with pytest.raises(APIException) as error:
        create_server("octoperf-i-1")
    assert error.value.code == "uniqueness_error"


def test_server_names_must_be_valid_hostnames(create_server: CreateServer) -> None:
    with pytest.raises(APIException) as error:
        create_server("not a hostname")
    assert error.value.code == "invalid_input"


def test_second_action_while_one_runs_is_locked(
    client: Client, cloud: SandboxCloud, create_server: CreateServer
) -> None:
    server = create_server()

    with pytest.raises(APIException) as error:
        client.servers.power_off(server)
    assert error.value.code == "locked"

    cloud.settle()
    client.servers.reboot(server)
    with pytest.raises(APIException) as error:
        client.servers.reset(server)
    assert error.value.code == "locked"


def test_type_not_sold_in_the_location_is_invalid_input(create_server: CreateServer) -> None:
    with pytest.raises(APIException) as error:
        create_server(server_type="cx23", location="ash")

    assert error.value.code == "invalid_input"
    assert "unsupported location for server type" in error.value.message
    # As Hetzner answers it: a rule of its catalogue, not a field's validation, so no field is named.
    assert error.value.details == {}


@pytest.mark.parametrize("server_type", ["cx22", "cpx11", "cpx51"])
def test_deprecated_type_is_resource_unavailable(create_server: CreateServer, server_type: str) -> None:
    with pytest.raises(APIException) as error:
        create_server(server_type=server_type, location="fsn1")
    assert error.value.code == "resource_unavailable"


def test_sold_out_type_is_resource_unavailable_and_listed_unavailable(
    client: Client, cloud: SandboxCloud, create_server: CreateServer
) -> None:
    cloud.set_availability("cx23", "fsn1", False)

    with pytest.raises(APIException) as error:
        create_server(server_type="cx23", location="fsn1")
    assert error.value.code == "resource_unavailable"
    cx23 = client.server_types.get_by_name("cx23")
    availability = {entry.location.name: entry.available for entry in cx23.locations}
    assert availability == {"fsn1": False, "nbg1": True, "hel1": True}
    assert create_server(server_type="cx23", location="nbg1").location.name == "nbg1"


@pytest.mark.parametrize(
    "overrides",
    [
        {"server_type": ServerType(name="cx99")},
        {"image": Image(name="windows-11")},
        {"location": Location(name="mars1")},
        {"ssh_keys": [SSHKey(name="nobody")]},
        {"firewalls": [Firewall(id=4242)]},
        {"labels": {"bad key": "x"}},
    ],
    ids=["server_type", "image", "location", "ssh_key", "firewall", "labels"],
)
def test_unknown_references_are_invalid_input(client: Client, cloud: SandboxCloud, overrides: dict) -> None:
    arguments = {
        "name": "octoperf-i-1",
        "server_type": ServerType(name="cx23"),
        "image": Image(name="docker-ce"),
        "location": Location(name="fsn1"),
        **overrides,
    }

    with pytest.raises(APIException) as error:
        client.servers.create(**arguments)

    assert error.value.code == "invalid_input"
    assert cloud.servers == {}


def test_images_are_accepted_by_id_and_a_location_is_picked_when_none_is_given(
    client: Client,
) -> None:
    image_id = client.images.get_by_name_and_architecture("debian-12", "x86").id

    server = client.servers.create(name="by-id", server_type=ServerType(name="cx23"), image=Image(id=image_id)).server

    assert server.image.name == "debian-12"
    assert server.location.name == "fsn1"  # Hetzner picks a location when none is given


def test_server_quota_is_resource_limit_exceeded(cloud: SandboxCloud, create_server: CreateServer) -> None:
    cloud.set_quota(servers=1)
    create_server("one")

    with pytest.raises(APIException) as error:
        create_server("two")
    assert error.value.code == "resource_limit_exceeded"
    assert len(cloud.servers) == 1


def test_primary_ip_quota_also_stops_servers_that_would_get_an_ipv4(
    cloud: SandboxCloud, create_server: CreateServer
) -> None:
    cloud.set_quota(primary_ips=2)  # a server's IPv4 and IPv6
    create_server("one")

    with pytest.raises(APIException) as error:
        create_server("two")
    assert error.value.code == "resource_limit_exceeded"


def test_poweroff_stops_the_server_within_seconds(
    client: Client, cloud: SandboxCloud, create_server: CreateServer
) -> None:
    server = create_server()
    cloud.settle()

    action = client.servers.power_off(server)
    assert action.command == "stop_server"
    assert client.servers.get_by_id(server.id).status == "stopping"

    cloud.advance(3)
    assert client.servers.get_by_id(server.id).status == "off"
    assert client.actions.get_by_id(action.id).status == "success"


def test_poweron_starts_an_off_server(client: Client, cloud: SandboxCloud, create_server: CreateServer) -> None:
    server = create_server(start_after_create=False)
    cloud.settle()
    assert client.servers.get_by_id(server.id).status == "off"

    client.servers.power_on(server)
    assert client.servers.get_by_id(server.id).status == "starting"
    cloud.settle()
    assert client.servers.get_by_id(server.id).status == "running"


def test_shutdown_action_finishes_long_before_the_server_is_off(
    client: Client, cloud: SandboxCloud, create_server: CreateServer
) -> None:
    server = create_server()
    cloud.settle()

    action = client.servers.shutdown(server)
    cloud.advance(1)

    assert client.actions.get_by_id(action.id).status == "success"
    assert client.servers.get_by_id(server.id).status == "running"
    cloud.advance(19)
    assert client.servers.get_by_id(server.id).status == "off"


def test_reboot_keeps_the_server_running(client: Client, cloud: SandboxCloud, create_server: CreateServer) -> None:
    server = create_server()
    cloud.settle()

    action = client.servers.reboot(server)

    assert client.servers.get_by_id(server.id).status == "running"
    cloud.advance(5)
    assert client.actions.get_by_id(action.id).status == "success"


def test_delete_while_the_start_after_create_runs_is_locked(client: Client, cloud: SandboxCloud) -> None:
    created = client.servers.create(
        name="octoperf-i-1", server_type=ServerType(name="cx23"), image=Image(name="docker-ce")
    )
    cloud.advance(5)  # the create action is done, its start_server action is not

    with pytest.raises(APIException) as error:
        client.servers.delete(created.server)

    assert error.value.code == "locked"
    assert client.servers.get_by_id(created.server.id).status == "starting"
    cloud.settle()
    assert client.servers.delete(created.server).command == "delete_server"


@pytest.mark.parametrize("act", ["reboot", "power_off", "power_on"])
def test_delete_while_a_power_action_runs_is_423_locked(
    client: Client, cloud: SandboxCloud, create_server: CreateServer, act: str
) -> None:
    server = create_server()
    cloud.settle()
    if act == "power_on":
        client.servers.power_off(server)
        cloud.settle()
    getattr(client.servers, act)(server)
    before = len(cloud.requests)

    with pytest.raises(APIException) as error:
        client.servers.delete(server)

    assert error.value.code == "locked"
    assert cloud.requests[before].status == 423
    assert client.servers.get_by_id(server.id).status != "deleting"


def test_deleted_server_is_gone_after_its_delete_action_and_its_auto_ip_too(
    client: Client, cloud: SandboxCloud, create_server: CreateServer
) -> None:
    server = create_server()
    ip_id = server.public_net.primary_ipv4.id
    cloud.settle()

    delete = client.servers.delete(server)
    cloud.advance(3)

    assert client.actions.get_by_id(delete.id).status == "success"
    with pytest.raises(APIException) as error:
        client.servers.get_by_id(server.id)
    assert (error.value.code, error.value.message) == ("not_found", f"server with ID '{server.id}' not found")
    assert ip_id not in cloud.primary_ips


def test_name_of_a_deleting_server_is_still_taken(
    client: Client, cloud: SandboxCloud, create_server: CreateServer
) -> None:
    server = create_server("octoperf-i-1")
    cloud.settle()
    client.servers.delete(server)

    with pytest.raises(APIException) as error:
        create_server("octoperf-i-1")
    assert error.value.code == "uniqueness_error"
    cloud.settle()
    assert create_server("octoperf-i-1").name == "octoperf-i-1"


def test_labels_and_name_can_be_updated(client: Client, create_server: CreateServer) -> None:
    server = create_server()

    updated = client.servers.update(server, name="renamed", labels={"a": "b"})

    assert (updated.name, updated.labels) == ("renamed", {"a": "b"})


def test_datacenter_is_refused_since_hetzner_removed_it(cloud: SandboxCloud) -> None:
    status, _, body = cloud.handle(
        "POST",
        "/servers",
        {},
        {"name": "a", "server_type": "cx23", "image": "docker-ce", "datacenter": "fsn1-dc14"},
        {"Authorization": "Bearer sandbox-token"},
    )

    assert status == 422
    assert body is not None and body["error"]["code"] == "invalid_input"
