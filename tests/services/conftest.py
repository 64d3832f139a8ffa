"""What the service tests share: Hetzner's production API, answered by `responses`."""

import re

import pytest
import responses

from octoprovider import hetzner

API = "https://api.hetzner.cloud/v1"
PAGE = {
    "pagination": {
        "page": 1,
        "per_page": 50,
        "previous_page": None,
        "next_page": None,
        "last_page": 1,
        "total_entries": 1,
    }
}


@pytest.fixture
def hetzner_api(settings):
    """The production client, with `responses` standing in for Hetzner; what a create looks up first is there."""
    settings.HETZNER_SANDBOX = False
    settings.HCLOUD_TOKEN = "test-hcloud-token"
    settings.HCLOUD_ENDPOINT = API
    hetzner.use_sandbox(None)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as api:
        api.get(f"{API}/server_types", json={"server_types": [], "meta": PAGE})
        api.get(
            re.compile(rf"{API}/images\b.*"),
            json={
                "images": [{"id": 114690387, "name": settings.HCLOUD_IMAGE, "type": "app", "status": "available"}],
                "meta": PAGE,
            },
        )
        yield api
