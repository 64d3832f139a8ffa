"""A file-backed sandbox lets the web process and the reconciler see one simulated cloud."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
import requests
from hcloud import APIException
from hcloud.images import Image
from hcloud.locations import Location
from hcloud.server_types import ServerType

from octoprovider.hetzner.sandbox import FakeClock, FileBackedSandbox, SandboxCloud

from .conftest import TOKEN, make_client

SECRET = "#cloud-config\nagent_token: s3cr3t-agent-token\n"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def create(sandbox: FileBackedSandbox, name: str = "octoperf-i-1", **kwargs: object) -> int:
    client = make_client(sandbox)
    return client.servers.create(
        name=name,
        server_type=ServerType(name="cx23"),
        image=Image(name="docker-ce"),
        location=Location(name="fsn1"),
        user_data=SECRET,
        **kwargs,
    ).server.id


def test_two_sandboxes_on_one_file_see_the_same_cloud(tmp_path: Path) -> None:
    web = FileBackedSandbox(tmp_path / "cloud.json")
    reconciler = FileBackedSandbox(tmp_path / "cloud.json")

    # The wall clock runs here: boot at once, or the start action would lock the delete below.
    web.cloud.timings.update(create_initializing=0.0, create_running=0.0)
    server_id = create(web)
    seen = make_client(reconciler).servers.get_by_id(server_id)
    make_client(reconciler).servers.delete(seen)

    assert seen.name == "octoperf-i-1"
    assert make_client(web).servers.get_by_id(server_id).status == "deleting"
    assert web.refresh().request_count == 4


def test_rules_hold_across_processes(tmp_path: Path) -> None:
    create(FileBackedSandbox(tmp_path / "cloud.json"))

    with pytest.raises(APIException) as error:
        create(FileBackedSandbox(tmp_path / "cloud.json"))
    assert error.value.code == "uniqueness_error"


def test_user_data_and_request_bodies_never_reach_the_file(tmp_path: Path) -> None:
    sandbox = FileBackedSandbox(tmp_path / "cloud.json")

    server_id = create(sandbox)

    assert sandbox.cloud.user_data(server_id) == SECRET
    text = (tmp_path / "cloud.json").read_text()
    assert "s3cr3t" not in text
    assert str(server_id) in json.loads(text)["servers"]


def test_a_missing_file_is_an_empty_cloud(tmp_path: Path) -> None:
    sandbox = FileBackedSandbox(tmp_path / "var" / "cloud.json")
    create(sandbox)
    (tmp_path / "var" / "cloud.json").unlink()

    status, _, body = sandbox.handle("GET", "/servers", {}, None, AUTH)

    assert status == 200
    assert body is not None and body["servers"] == []


def test_a_lost_response_is_still_persisted(tmp_path: Path) -> None:
    sandbox = FileBackedSandbox(tmp_path / "cloud.json", clock=FakeClock())
    sandbox.cloud.inject_fault("POST", "/servers", timeout=True, after=True, times=6)

    with pytest.raises(requests.Timeout):
        create(sandbox)

    other = FileBackedSandbox(tmp_path / "cloud.json")
    assert [s["name"] for s in other.refresh().servers.values()] == ["octoperf-i-1"]


def test_state_round_trips_through_to_state_and_from_state() -> None:
    clock = FakeClock()
    original = SandboxCloud(clock=clock)
    original.add_ssh_key("ops")
    original.set_quota(servers=5)
    original.handle(
        "POST", "/servers", {}, {"name": "a", "server_type": "cx23", "image": "docker-ce", "user_data": SECRET}, AUTH
    )

    copy = SandboxCloud(clock=clock)
    copy.from_state(json.loads(json.dumps(original.to_state())))

    assert copy.servers == original.servers
    assert copy.primary_ips == original.primary_ips
    assert copy.actions == original.actions
    assert copy.request_count == original.request_count
    assert copy.rate_limit_remaining == original.rate_limit_remaining
    assert "s3cr3t" not in json.dumps(original.to_state())


def _create_many(path: str, prefix: str) -> None:
    sandbox = FileBackedSandbox(path)
    for n in range(20):
        status, _, body = sandbox.handle(
            "POST", "/servers", {}, {"name": f"{prefix}-{n}", "server_type": "cx23", "image": "docker-ce"}, AUTH
        )
        assert status == 201, body


def test_concurrent_processes_do_not_lose_each_others_writes(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    path = str(tmp_path / "cloud.json")
    workers = [context.Process(target=_create_many, args=(path, prefix)) for prefix in ("web", "reconciler")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=20)

    assert [worker.exitcode for worker in workers] == [0, 0]
    assert len(FileBackedSandbox(path).refresh().servers) == 40
