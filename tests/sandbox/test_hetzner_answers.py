"""The sandbox answers as Hetzner's API reference says: statuses, headers, fields, Primary IPs."""

from __future__ import annotations

import pytest
import requests
from hcloud import Client
from hcloud.locations import Location
from hcloud.primary_ips import BoundPrimaryIP
from hcloud.servers import BoundServer, ServerCreatePublicNetwork

from octoprovider.hetzner.sandbox import SandboxAdapter, SandboxCloud
from octoprovider.hetzner.sandbox.cloud import ApiError

from .conftest import ENDPOINT, TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}
SERVER = {"name": "octoperf-i-1", "server_type": "cx23", "image": "docker-ce", "location": "fsn1"}


def post(cloud: SandboxCloud, path: str, body: dict | None = None) -> tuple[int, dict]:
    status, _, answer = cloud.handle("POST", path, {}, body, AUTH)
    return status, answer or {}


def static_ip(client: Client, location: str = "fsn1", ip_type: str = "ipv4") -> BoundPrimaryIP:
    return client.primary_ips.create(
        type=ip_type, name=f"static-{location}-{ip_type}", location=Location(name=location)
    ).primary_ip


def off_server(client: Client, cloud: SandboxCloud, server: BoundServer) -> None:
    cloud.settle()
    client.servers.power_off(server)
    cloud.settle()


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("token_readonly", 401),
        ("maintenance", 403),
        ("server_error", 500),
        ("invalid_input", 422),
        ("server_not_stopped", 422),
        ("server_has_ipv4", 422),
        ("primary_ip_already_assigned", 422),
        ("must_be_unassigned", 422),
        ("locked", 423),
        ("resource_limit_exceeded", 403),
        ("json_error", 400),
        ("deprecated_api_endpoint", 410),
    ],
)
def test_error_codes_answer_the_status_of_hetzners_error_table(code: str, status: int) -> None:
    assert ApiError(code, "x").status == status


def test_assigning_to_a_running_server_is_422_server_not_stopped(
    client: Client, cloud: SandboxCloud, create_server
) -> None:
    server = create_server()
    cloud.settle()
    ip = static_ip(client)

    status, answer = post(
        cloud, f"/primary_ips/{ip.id}/actions/assign", {"assignee_id": server.id, "assignee_type": "server"}
    )

    assert (status, answer["error"]["code"]) == (422, "server_not_stopped")


def test_assigning_a_second_ipv4_is_422_server_has_ipv4_and_an_assigned_ip_422(
    client: Client, cloud: SandboxCloud, create_server
) -> None:
    server, other = create_server("one"), create_server("two")
    off_server(client, cloud, server)
    client.servers.power_off(other)
    cloud.settle()
    ip = static_ip(client)

    status, answer = post(
        cloud, f"/primary_ips/{ip.id}/actions/assign", {"assignee_id": server.id, "assignee_type": "server"}
    )
    assert (status, answer["error"]["code"]) == (422, "server_has_ipv4")

    taken = server.public_net.primary_ipv4.id
    status, answer = post(
        cloud, f"/primary_ips/{taken}/actions/assign", {"assignee_id": other.id, "assignee_type": "server"}
    )
    assert (status, answer["error"]["code"]) == (422, "primary_ip_already_assigned")


def test_deleting_an_assigned_primary_ip_is_422_must_be_unassigned(cloud: SandboxCloud, create_server) -> None:
    server = create_server()

    status, _, answer = cloud.handle("DELETE", f"/primary_ips/{server.public_net.primary_ipv4.id}", {}, None, AUTH)

    assert (status, answer and answer["error"]["code"]) == (422, "must_be_unassigned")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/servers", {**SERVER, "colour": "blue"}),
        ("POST", "/servers", {**SERVER, "public_net": {"enable_ipv4": True, "ipv7": 1}}),
        ("POST", "/primary_ips", {"name": "ip", "type": "ipv4", "location": "fsn1", "colour": 1}),
        ("PUT", "/servers/{server}", {"name": "renamed", "colour": "blue"}),
        ("PUT", "/primary_ips/{ip}", {"labels": {}, "colour": "blue"}),
        ("POST", "/primary_ips/{ip}/actions/assign", {"assignee_id": 1, "colour": "blue"}),
        ("POST", "/servers/{server}/actions/reboot", {"colour": "blue"}),
    ],
)
def test_an_unknown_body_field_is_422_invalid_input(
    cloud: SandboxCloud, create_server, method: str, path: str, body: dict
) -> None:
    server = create_server("existing")
    path = path.format(server=server.id, ip=server.public_net.primary_ipv4.id)
    servers_before = len(cloud.servers)

    status, _, answer = cloud.handle(method, path, {}, body, AUTH)

    assert status == 422
    assert answer is not None and answer["error"]["code"] == "invalid_input"
    unknown = "public_net.ipv7" if "public_net" in body else "colour"
    assert answer["error"]["details"]["fields"] == [{"name": unknown, "messages": ["unknown field"]}]
    assert len(cloud.servers) == servers_before


def test_servers_get_an_ipv6_primary_ip_unless_enable_ipv6_is_false(client: Client, create_server) -> None:
    with_ipv6 = create_server("one")
    without = create_server("two", public_net=ServerCreatePublicNetwork(enable_ipv6=False))

    assert client.primary_ips.get_by_id(with_ipv6.public_net.primary_ipv6.id).type == "ipv6"
    assert without.public_net.ipv6 is None and without.public_net.primary_ipv6 is None
    assert without.public_net.ipv4 is not None


def test_an_unassigned_primary_ip_reports_assignee_type_unassigned(
    client: Client, cloud: SandboxCloud, create_server
) -> None:
    ip = static_ip(client)
    assert cloud.primary_ips[ip.id]["assignee_type"] == "unassigned"

    server = create_server(public_net=ServerCreatePublicNetwork(ipv4=ip))

    assert cloud.primary_ips[ip.id]["assignee_type"] == "server"
    assert cloud.primary_ips[ip.id]["assignee_id"] == server.id


def test_no_datacenter_in_servers_or_primary_ips_and_datacenters_are_gone(
    client: Client, cloud: SandboxCloud, create_server
) -> None:
    server = create_server()

    assert "datacenter" not in cloud.servers[server.id]
    assert all("datacenter" not in ip for ip in cloud.primary_ips.values())
    for path in ("/datacenters", "/datacenters/1"):
        status, _, answer = cloud.handle("GET", path, {}, None, AUTH)
        assert (status, answer and answer["error"]["code"]) == (410, "deprecated_api_endpoint")


def test_pricing_carries_every_section_hetzner_requires(cloud: SandboxCloud) -> None:
    status, _, answer = cloud.handle("GET", "/pricing", {}, None, AUTH)

    assert status == 200 and answer is not None
    pricing = answer["pricing"]
    assert set(pricing) >= {
        "currency",
        "vat_rate",
        "floating_ip",
        "floating_ips",
        "image",
        "load_balancer_types",
        "primary_ips",
        "server_backup",
        "server_types",
        "volume",
    }
    assert pricing["image"]["price_per_gb_month"]["gross"]
    assert {entry["type"] for entry in pricing["primary_ips"]} == {"ipv4", "ipv6"}


def test_create_returns_its_start_action_in_next_actions_unless_told_not_to_start(
    cloud: SandboxCloud,
) -> None:
    _, started = post(cloud, "/servers", SERVER)
    _, stopped = post(cloud, "/servers", {**SERVER, "name": "b", "start_after_create": False})

    assert [a["command"] for a in started["next_actions"]] == ["start_server"]
    assert started["next_actions"][0]["resources"] == [{"id": started["server"]["id"], "type": "server"}]
    assert stopped["next_actions"] == []


def test_unauthenticated_answers_carry_rate_limit_headers_too(cloud: SandboxCloud) -> None:
    status, headers, _ = cloud.handle("GET", "/servers", {}, None, {})

    assert status == 401
    assert {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= set(headers)
    assert headers["RateLimit-Remaining"] == headers["RateLimit-Limit"]  # nothing was spent


def test_list_answers_carry_hetzners_pagination_link_header(cloud: SandboxCloud) -> None:
    session = requests.Session()
    session.mount("https://sandbox.hetzner.invalid/", SandboxAdapter(cloud))

    response = session.get(f"{ENDPOINT}/locations?per_page=2&page=2&sort=id", headers=AUTH)

    assert response.status_code == 200
    assert response.headers["Link"] == (
        f'<{ENDPOINT}/locations?sort=id&page=1&per_page=2>; rel="prev", '
        f'<{ENDPOINT}/locations?sort=id&page=3&per_page=2>; rel="next", '
        f'<{ENDPOINT}/locations?sort=id&page=3&per_page=2>; rel="last"'
    )
    assert "Link" not in session.get(f"{ENDPOINT}/locations/1", headers=AUTH).headers


def test_create_with_an_existing_unassigned_primary_ip_attaches_it(client: Client, cloud: SandboxCloud) -> None:
    ip = static_ip(client)

    status, answer = post(cloud, "/servers", {**SERVER, "public_net": {"ipv4": ip.id}})

    assert status == 201
    assert answer["server"]["public_net"]["ipv4"]["ip"] == ip.ip
    assert cloud.primary_ips[ip.id]["auto_delete"] is False


def test_create_with_an_assigned_primary_ip_is_422_primary_ip_assigned(
    client: Client, cloud: SandboxCloud, create_server
) -> None:
    taken = create_server("one").public_net.primary_ipv4.id

    status, answer = post(cloud, "/servers", {**SERVER, "public_net": {"ipv4": taken}})

    assert (status, answer["error"]["code"]) == (422, "primary_ip_assigned")
    assert len(cloud.servers) == 1


def test_create_with_a_primary_ip_of_another_location_or_version_is_refused(
    client: Client, cloud: SandboxCloud
) -> None:
    elsewhere = static_ip(client, location="hel1")
    ipv6 = static_ip(client, ip_type="ipv6")

    status, answer = post(cloud, "/servers", {**SERVER, "public_net": {"ipv4": elsewhere.id}})
    assert (status, answer["error"]["code"]) == (422, "primary_ip_datacenter_mismatch")

    status, answer = post(cloud, "/servers", {**SERVER, "public_net": {"ipv4": ipv6.id}})
    assert (status, answer["error"]["code"]) == (422, "primary_ip_version_mismatch")
    assert cloud.servers == {}


def test_the_transport_shows_every_exchange_to_its_observer(cloud: SandboxCloud) -> None:
    seen = []
    session = requests.Session()
    session.mount("https://sandbox.hetzner.invalid/", SandboxAdapter(cloud, observer=seen.append))

    session.post(f"{ENDPOINT}/servers", json=SERVER, headers=AUTH)
    session.get(f"{ENDPOINT}/servers?name=octoperf-i-1", headers={})

    assert [(e.method, e.path, e.status) for e in seen] == [("POST", "/servers", 201), ("GET", "/servers", 401)]
    assert seen[0].body == SERVER
    assert seen[0].payload["server"]["name"] == "octoperf-i-1"
    assert seen[1].query == {"name": ["octoperf-i-1"]}
