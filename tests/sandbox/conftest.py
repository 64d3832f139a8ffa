"""Fixtures that drive the sandbox through an unchanged hcloud client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hcloud import Client
from hcloud.images import Image
from hcloud.server_types import ServerType
from hcloud.servers import BoundServer

from octoprovider.hetzner.sandbox import FakeClock, SandboxAdapter, SandboxCloud

ENDPOINT = "https://sandbox.hetzner.invalid/v1"
TOKEN = "sandbox-token"


def make_client(cloud: Any, token: str = TOKEN) -> Client:
    """Build an hcloud client whose HTTP goes to ``cloud`` and whose retries never sleep."""
    client = Client(token=token, api_endpoint=ENDPOINT, poll_interval=0, timeout=5)
    client._client._session.mount("https://sandbox.hetzner.invalid/", SandboxAdapter(cloud))
    client._client._retry_interval_func = lambda retries: 0
    return client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cloud(clock: FakeClock) -> SandboxCloud:
    return SandboxCloud(clock=clock, token=TOKEN)


@pytest.fixture
def client(cloud: SandboxCloud) -> Client:
    return make_client(cloud)


@pytest.fixture
def create_server(client: Client) -> Callable[..., BoundServer]:
    """Create a server with sensible defaults and return it as hcloud sees it."""

    def create(
        name: str = "octoperf-i-1", *, server_type: str = "cx23", location: str | None = "fsn1", **kwargs: Any
    ) -> BoundServer:
        from hcloud.locations import Location

        response = client.servers.create(
            name=name,
            server_type=ServerType(name=server_type),
            image=Image(name="docker-ce"),
            location=Location(name=location) if location else None,
            **kwargs,
        )
        return response.server

    return create
