"""Primary IPs follow Hetzner's rules: same location, powered-off servers, one IPv4 each."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hcloud import APIException, Client
from hcloud.locations import Location
from hcloud.primary_ips import BoundPrimaryIP, PrimaryIP
from hcloud.servers import BoundServer, ServerCreatePublicNetwork

from octoprovider.hetzner.sandbox import SandboxCloud

CreateServer = Callable[..., BoundServer]
STATIC_LABELS = {"managed-by": "octoprovider", "octoprovider-deployment": "default"}


@pytest.fixture
def create_static_ip(client: Client) -> Callable[..., BoundPrimaryIP]:
    def create(name: str = "octoperf-ip-1", location: str = "fsn1") -> BoundPrimaryIP:
        return client.primary_ips.create(
            type="ipv4", name=name, location=Location(name=location), auto_delete=False, labels=STATIC_LABELS
        ).primary_ip

    return create


@pytest.fixture
def off_server(client: Client, cloud: SandboxCloud, create_server: CreateServer) -> BoundServer:
    """Return a server that was created, started, and powered off again."""
    server = create_server()
    cloud.settle()
    client.servers.power_off(server)
    cloud.settle()
    return client.servers.get_by_id(server.id)


def test_static_ip_is_created_unassigned_in_its_location(
    create_static_ip: Callable[..., BoundPrimaryIP],
) -> None:
    ip = create_static_ip(location="hel1")

    assert (ip.type, ip.assignee_id, ip.auto_delete) == ("ipv4", None, False)
    assert ip.location.name == "hel1"
    assert ip.labels == STATIC_LABELS
    assert ip.dns_ptr[0]["ip"] == ip.ip


def test_primary_ip_needs_a_location_or_an_assignee(client: Client) -> None:
    with pytest.raises(APIException) as error:
        client.primary_ips.create(type="ipv4", name="octoperf-ip-1")
    assert error.value.code == "invalid_input"


def test_primary_ip_names_are_unique(create_static_ip: Callable[..., BoundPrimaryIP]) -> None:
    create_static_ip("octoperf-ip-1")

    with pytest.raises(APIException) as error:
        create_static_ip("octoperf-ip-1")
    assert error.value.code == "uniqueness_error"


def test_primary_ip_quota_is_resource_limit_exceeded(
    cloud: SandboxCloud, create_static_ip: Callable[..., BoundPrimaryIP]
) -> None:
    cloud.set_quota(primary_ips=1)
    create_static_ip("one")

    with pytest.raises(APIException) as error:
        create_static_ip("two")
    assert error.value.code == "resource_limit_exceeded"


def test_unassign_requires_a_stopped_server(client: Client, cloud: SandboxCloud, create_server: CreateServer) -> None:
    server = create_server()
    cloud.settle()

    with pytest.raises(APIException) as error:
        client.primary_ips.unassign(PrimaryIP(id=server.public_net.primary_ipv4.id))
    assert error.value.code == "server_not_stopped"


def test_moving_a_static_ip_onto_a_powered_off_server(
    client: Client,
    cloud: SandboxCloud,
    off_server: BoundServer,
    create_static_ip: Callable[..., BoundPrimaryIP],
) -> None:
    static = create_static_ip()
    auto_ip = PrimaryIP(id=off_server.public_net.primary_ipv4.id)

    unassign = client.primary_ips.unassign(auto_ip)
    assert unassign.command == "unassign_primary_ip"
    cloud.settle()
    client.primary_ips.delete(auto_ip)
    assign = client.primary_ips.assign(static, assignee_id=off_server.id, assignee_type="server")
    cloud.settle()
    client.servers.power_on(off_server)
    cloud.settle()

    assert client.actions.get_by_id(assign.id).status == "success"
    server = client.servers.get_by_id(off_server.id)
    assert (server.status, server.public_net.ipv4.ip) == ("running", static.ip)
    assert client.primary_ips.get_by_id(static.id).assignee_id == off_server.id


def test_assign_requires_a_stopped_server(
    client: Client, cloud: SandboxCloud, create_server: CreateServer, create_static_ip: Callable[..., BoundPrimaryIP]
) -> None:
    server = create_server(public_net=ServerCreatePublicNetwork(enable_ipv4=False))
    cloud.settle()

    with pytest.raises(APIException) as error:
        client.primary_ips.assign(create_static_ip(), assignee_id=server.id)
    assert error.value.code == "server_not_stopped"


def test_assign_locks_the_server_until_it_finishes(
    client: Client,
    cloud: SandboxCloud,
    off_server: BoundServer,
    create_static_ip: Callable[..., BoundPrimaryIP],
) -> None:
    client.primary_ips.unassign(PrimaryIP(id=off_server.public_net.primary_ipv4.id))

    with pytest.raises(APIException) as error:
        client.servers.power_on(off_server)
    assert error.value.code == "locked"


def test_assign_to_a_server_in_another_location_is_invalid_input(
    client: Client,
    off_server: BoundServer,
    create_static_ip: Callable[..., BoundPrimaryIP],
) -> None:
    with pytest.raises(APIException) as error:
        client.primary_ips.assign(create_static_ip(location="nbg1"), assignee_id=off_server.id)
    assert error.value.code == "invalid_input"


def test_a_server_holds_at_most_one_ipv4(
    client: Client,
    off_server: BoundServer,
    create_static_ip: Callable[..., BoundPrimaryIP],
) -> None:
    with pytest.raises(APIException) as error:
        client.primary_ips.assign(create_static_ip(), assignee_id=off_server.id)
    assert error.value.code == "server_has_ipv4"


def test_an_assigned_ip_cannot_be_assigned_elsewhere(
    client: Client,
    cloud: SandboxCloud,
    off_server: BoundServer,
) -> None:
    with pytest.raises(APIException) as error:
        client.primary_ips.assign(PrimaryIP(id=off_server.public_net.primary_ipv4.id), assignee_id=off_server.id)
    assert error.value.code == "primary_ip_already_assigned"


def test_deleting_an_assigned_ip_is_must_be_unassigned(client: Client, create_server: CreateServer) -> None:
    server = create_server()

    with pytest.raises(APIException) as error:
        client.primary_ips.delete(PrimaryIP(id=server.public_net.primary_ipv4.id))
    assert error.value.code == "must_be_unassigned"


def test_server_created_with_a_static_ip_uses_it(
    create_server: CreateServer,
    create_static_ip: Callable[..., BoundPrimaryIP],
    cloud: SandboxCloud,
) -> None:
    static = create_static_ip()

    server = create_server(public_net=ServerCreatePublicNetwork(ipv4=static))

    assert server.public_net.ipv4.ip == static.ip
    assert [ip["type"] for ip in cloud.primary_ips.values()] == ["ipv4", "ipv6"]
    assert cloud.primary_ips[static.id]["assignee_id"] == server.id


def test_static_ip_from_another_location_is_refused_at_create(
    create_server: CreateServer,
    create_static_ip: Callable[..., BoundPrimaryIP],
) -> None:
    static = create_static_ip(location="hel1")

    with pytest.raises(APIException) as error:
        create_server(location="fsn1", public_net=ServerCreatePublicNetwork(ipv4=static))
    assert error.value.code == "primary_ip_datacenter_mismatch"


def test_deleted_servers_static_ip_stays_assigned_for_a_moment_then_is_free(
    client: Client,
    cloud: SandboxCloud,
    create_server: CreateServer,
    create_static_ip: Callable[..., BoundPrimaryIP],
) -> None:
    static = create_static_ip()
    server = create_server(public_net=ServerCreatePublicNetwork(ipv4=static))
    cloud.settle()

    client.servers.delete(server)
    cloud.advance(3)  # the delete action has finished, the server is gone

    assert client.primary_ips.get_by_id(static.id).assignee_id == server.id
    with pytest.raises(APIException) as error:
        client.primary_ips.delete(static)
    assert error.value.code == "must_be_unassigned"

    cloud.advance(2)
    ip = client.primary_ips.get_by_id(static.id)
    assert (ip.assignee_id, ip.auto_delete) == (None, False)
    client.primary_ips.delete(static)
    assert cloud.primary_ips == {}


def test_primary_ips_filter_by_label_selector_name_and_ip(
    client: Client,
    create_static_ip: Callable[..., BoundPrimaryIP],
    create_server: CreateServer,
) -> None:
    static = create_static_ip("octoperf-ip-1")
    create_server()

    assert [ip.id for ip in client.primary_ips.get_all(label_selector="managed-by=octoprovider")] == [static.id]
    assert client.primary_ips.get_by_name("octoperf-ip-1").id == static.id
    assert [ip.id for ip in client.primary_ips.get_list(ip=static.ip).primary_ips] == [static.id]


def test_primary_ip_can_be_updated(client: Client, create_static_ip: Callable[..., BoundPrimaryIP]) -> None:
    static = create_static_ip()

    updated = client.primary_ips.update(static, auto_delete=True, labels={"x": "y"}, name="new")

    assert (updated.auto_delete, updated.labels, updated.name) == (True, {"x": "y"}, "new")
