"""The sandbox speaks Hetzner's HTTP: auth, rate limit, pagination, errors, injected faults."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
import requests
from hcloud import APIException, Client
from hcloud.images import Image
from hcloud.server_types import ServerType
from hcloud.servers import BoundServer

from octoprovider.hetzner.sandbox import FakeClock, SandboxAdapter, SandboxCloud

from .conftest import TOKEN, make_client

CreateServer = Callable[..., BoundServer]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_missing_or_wrong_token_is_unauthorized(cloud: SandboxCloud) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer "}):
        status, _, body = cloud.handle("GET", "/servers", {}, None, headers)
        assert status == 401
        assert body == {"error": {"code": "unauthorized", "message": "unable to authenticate", "details": {}}}


def test_any_token_is_accepted_when_none_is_configured(clock: FakeClock) -> None:
    client = make_client(SandboxCloud(clock=clock), token="whatever")

    assert client.servers.get_all() == []


def test_every_response_carries_rate_limit_headers(clock: FakeClock) -> None:
    cloud = SandboxCloud(clock=clock, rate_limit=10, rate_refill_per_second=0.5)

    status, headers, _ = cloud.handle("GET", "/locations", {}, None, AUTH)

    assert status == 200
    assert headers["RateLimit-Limit"] == "10"
    assert headers["RateLimit-Remaining"] == "9"
    assert headers["RateLimit-Reset"] == str(int(clock.now()) + 2)
    assert headers["X-Correlation-Id"]


def test_empty_bucket_answers_429_without_effect_and_refills_with_the_clock(
    clock: FakeClock,
) -> None:
    cloud = SandboxCloud(clock=clock, rate_limit=2)
    body = {"name": "a", "server_type": "cx23", "image": "docker-ce"}
    cloud.handle("GET", "/servers", {}, None, AUTH)
    cloud.handle("GET", "/servers", {}, None, AUTH)

    status, headers, answer = cloud.handle("POST", "/servers", {}, body, AUTH)

    assert status == 429
    assert answer is not None and answer["error"]["code"] == "rate_limit_exceeded"
    assert headers["RateLimit-Remaining"] == "0"
    assert cloud.servers == {}
    clock.advance(1)
    assert cloud.rate_limit_remaining == 1
    assert cloud.handle("POST", "/servers", {}, body, AUTH)[0] == 201


def test_hcloud_retries_a_rate_limited_request_five_times_then_raises(clock: FakeClock) -> None:
    cloud = SandboxCloud(clock=clock, rate_limit=1)
    client = make_client(cloud)
    client.locations.get_all()

    with pytest.raises(APIException) as error:
        client.locations.get_all()

    assert error.value.code == "rate_limit_exceeded"
    assert cloud.request_count == 1 + 6


def test_listing_120_servers_pages_by_at_most_50(cloud: SandboxCloud, client: Client) -> None:
    for n in range(120):
        cloud.handle(
            "POST",
            "/servers",
            {},
            {
                "name": f"s{n:03}",
                "server_type": "cx23",
                "image": "docker-ce",
                "labels": {"parity": "even" if n % 2 == 0 else "odd"},
            },
            AUTH,
        )

    _, _, first = cloud.handle("GET", "/servers", {"per_page": ["100"]}, None, AUTH)
    _, _, last = cloud.handle("GET", "/servers", {"page": ["5"]}, None, AUTH)
    assert first is not None and last is not None
    assert len(first["servers"]) == 50
    assert first["meta"]["pagination"] == {
        "page": 1,
        "per_page": 50,
        "previous_page": None,
        "next_page": 2,
        "last_page": 3,
        "total_entries": 120,
    }
    assert len(last["servers"]) == 20
    assert last["meta"]["pagination"]["previous_page"] == 4
    assert last["meta"]["pagination"]["next_page"] is None

    before = cloud.request_count
    everything = client.servers.get_all()
    assert len(everything) == 120
    assert cloud.request_count - before == 3
    assert len(client.servers.get_all(label_selector="parity=even")) == 60
    assert [s.name for s in client.servers.get_all(name="s007")] == ["s007"]


def test_servers_can_be_sorted(cloud: SandboxCloud, client: Client, create_server: CreateServer) -> None:
    for name in ("b", "c", "a"):
        create_server(name)

    _, _, body = cloud.handle("GET", "/servers", {"sort": ["name:desc"]}, None, AUTH)

    assert body is not None and [s["name"] for s in body["servers"]] == ["c", "b", "a"]


def test_label_selectors_filter_servers(client: Client, create_server: CreateServer) -> None:
    create_server("ours", labels={"managed-by": "octoprovider", "octoprovider-deployment": "default"})
    create_server("other-deployment", labels={"managed-by": "octoprovider", "octoprovider-deployment": "staging"})
    create_server("foreign", labels={"team": "web"})

    def names(selector: str) -> list[str]:
        return [s.name for s in client.servers.get_all(label_selector=selector)]

    assert names("managed-by=octoprovider,octoprovider-deployment=default") == ["ours"]
    assert names("managed-by=octoprovider") == ["ours", "other-deployment"]
    assert names("!managed-by") == ["foreign"]
    assert names("octoprovider-deployment in (default,staging)") == ["ours", "other-deployment"]
    assert names("octoprovider-deployment notin (default)") == ["other-deployment", "foreign"]


def test_invalid_label_selector_is_invalid_input(client: Client) -> None:
    with pytest.raises(APIException) as error:
        client.servers.get_all(label_selector="managed-by in (a,b")
    assert error.value.code == "invalid_input"


def test_servers_filter_by_status(client: Client, cloud: SandboxCloud, create_server: CreateServer) -> None:
    create_server("early")
    cloud.settle()
    create_server("late")

    assert [s.name for s in client.servers.get_all(status=["running"])] == ["early"]
    assert [s.name for s in client.servers.get_all(status=["initializing", "off"])] == ["late"]


def test_many_actions_are_polled_in_one_call(client: Client, cloud: SandboxCloud, create_server: CreateServer) -> None:
    first = create_server("a")
    cloud.settle()
    second = client.servers.create(name="b", server_type=ServerType(name="cx23"), image=Image(name="docker-ce"))
    actions = {a["resources"][0]["id"]: a["id"] for a in cloud.actions.values()}

    _, _, body = cloud.handle(
        "GET", "/actions", {"id": [str(actions[first.id]), str(second.action.id), "999"]}, None, AUTH
    )

    assert body is not None
    statuses = {a["id"]: a["status"] for a in body["actions"]}
    assert statuses == {actions[first.id]: "success", second.action.id: "running"}
    _, _, running = cloud.handle(
        "GET", "/actions", {"id": [str(actions[first.id]), str(second.action.id)], "status": ["running"]}, None, AUTH
    )
    assert running is not None and [a["id"] for a in running["actions"]] == [second.action.id]


def test_listing_actions_without_ids_is_refused_as_at_hetzner(cloud: SandboxCloud) -> None:
    status, _, body = cloud.handle("GET", "/actions", {}, None, AUTH)

    assert status == 422
    assert body is not None and body["error"]["code"] == "invalid_input"


def test_a_servers_actions_are_listed(client: Client, cloud: SandboxCloud, create_server: CreateServer) -> None:
    server = create_server()
    cloud.settle()
    client.servers.reboot(server)

    commands = [a.command for a in client.servers.get_actions(server)]

    assert commands == ["create_server", "start_server", "reboot_server"]
    assert [a.command for a in client.servers.get_actions(server, status=["running"])] == ["reboot_server"]


def test_unknown_route_is_not_found_and_wrong_method_is_405(cloud: SandboxCloud) -> None:
    status, _, body = cloud.handle("GET", "/volcanoes", {}, None, AUTH)
    assert (status, body and body["error"]["code"]) == (404, "not_found")

    status, _, body = cloud.handle("PATCH", "/servers", {}, None, AUTH)
    assert status == 405
    assert body is not None and set(body["error"]) == {"code", "message", "details"}


def test_catalog_lists_sold_and_deprecated_server_types(client: Client) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        types = {t.name: t for t in client.server_types.get_all()}
        assert types["cx22"].deprecation is not None
        assert types["cx23"].deprecation is None

    assert {"cx23", "cx33", "cx43", "cx53", "cpx22", "cpx32", "cpx42", "cpx52"} <= set(types)
    assert [loc.location.name for loc in types["cx23"].locations] == ["fsn1", "nbg1", "hel1"]
    assert len(types["cpx22"].locations) == 6
    assert all(not loc.available and loc.deprecation for loc in types["cpx11"].locations)
    fsn1_price = next(p for p in types["cx23"].prices if p["location"] == "fsn1")
    assert set(fsn1_price["price_hourly"]) == {"net", "gross"}
    assert client.server_types.get_by_id(types["cx33"].id).cores == 4
    assert [loc.name for loc in client.locations.get_all()] == ["fsn1", "nbg1", "hel1", "ash", "hil", "sin"]
    assert client.locations.get_by_name("ash").network_zone == "us-east"


def test_pricing_lists_server_types_and_primary_ips(client: Client) -> None:
    pricing = client.request("GET", "/pricing")["pricing"]

    assert pricing["currency"] == "EUR"
    assert {t["name"] for t in pricing["server_types"]} >= {"cx23", "cpx22"}
    assert pricing["primary_ips"][0]["type"] == "ipv4"


def test_requests_are_recorded_and_mutations_listed(
    cloud: SandboxCloud, client: Client, create_server: CreateServer
) -> None:
    create_server()
    client.servers.get_all()

    assert [(r.method, r.path, r.status) for r in cloud.requests] == [
        ("POST", "/servers", 201),
        ("GET", "/servers", 200),
    ]
    assert [r.path for r in cloud.mutation_requests()] == ["/servers"]
    assert cloud.mutation_requests()[0].body["name"] == "octoperf-i-1"


def test_fault_before_the_effect_changes_nothing(
    client: Client, cloud: SandboxCloud, create_server: CreateServer
) -> None:
    cloud.inject_fault("POST", r"/servers")

    with pytest.raises(APIException) as error:
        create_server()

    assert error.value.code == "unavailable"
    assert cloud.servers == {}
    assert create_server().name == "octoperf-i-1"  # the fault fired once


def test_fault_after_the_effect_loses_the_response_only(
    client: Client, cloud: SandboxCloud, create_server: CreateServer
) -> None:
    server = create_server()
    cloud.settle()
    cloud.inject_fault("POST", r"/servers/\d+/actions/poweroff", after=True, code="timeout", status=504, times=6)

    with pytest.raises(APIException) as error:
        client.servers.power_off(server)

    assert error.value.code == "timeout"
    cloud.settle()
    assert cloud.servers[server.id]["status"] == "off"


def test_connect_timeout_is_retried_by_hcloud_and_the_retry_succeeds(
    client: Client, cloud: SandboxCloud, create_server: CreateServer
) -> None:
    cloud.inject_fault("POST", r"/servers", timeout=True)

    server = create_server()

    assert [r.timeout for r in cloud.requests] == ["connect", None]
    assert list(cloud.servers) == [server.id]


def test_read_timeout_after_create_makes_the_hcloud_retry_answer_uniqueness_error(
    client: Client, cloud: SandboxCloud, create_server: CreateServer
) -> None:
    cloud.inject_fault("POST", r"/servers", timeout=True, after=True)

    with pytest.raises(APIException) as error:
        create_server("octoperf-i-7")

    assert error.value.code == "uniqueness_error"
    assert [s["name"] for s in cloud.servers.values()] == ["octoperf-i-7"]


def test_adapter_raises_requests_timeouts(cloud: SandboxCloud) -> None:
    session = requests.Session()
    session.mount("https://sandbox.hetzner.invalid/", SandboxAdapter(cloud))
    cloud.inject_fault("GET", r"/servers", timeout=True)
    cloud.inject_fault("DELETE", r"/servers/\d+", timeout=True, after=True)

    with pytest.raises(requests.exceptions.ConnectTimeout):
        session.get("https://sandbox.hetzner.invalid/v1/servers", headers=AUTH)
    with pytest.raises(requests.exceptions.ReadTimeout):
        session.delete("https://sandbox.hetzner.invalid/v1/servers/1", headers=AUTH)
    response = session.get("https://sandbox.hetzner.invalid/v1/servers?page=1", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.reason == "OK"
    assert response.json()["servers"] == []
