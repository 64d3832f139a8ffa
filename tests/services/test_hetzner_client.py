"""The hcloud client the gateway builds: retries bounded by HCLOUD_RETRIES, a loud failure when an
hcloud upgrade renamed what it sets, and no way out of the process in sandbox mode."""

import socket

import hcloud
import pytest
import requests
import responses
from django.core.exceptions import ImproperlyConfigured

from octoprovider import hetzner
from octoprovider.core.exceptions import HetznerUnavailable

pytestmark = pytest.mark.django_db


def server_lists(sandbox) -> list:
    return [r for r in sandbox.requests if r.method == "GET" and r.path == "/servers"]


@pytest.mark.parametrize("retries", [0, 2, 3])
def test_a_504_is_tried_exactly_hcloud_retries_plus_one_times(sandbox, settings, retries):
    settings.HCLOUD_RETRIES = retries
    hetzner.use_sandbox(sandbox)  # a client built with the setting
    sandbox.inject_fault("GET", r"/servers", code="timeout", status=504, times=10)

    with pytest.raises(HetznerUnavailable):
        hetzner.list_servers(label_selector=hetzner.managed_selector())

    assert len(server_lists(sandbox)) == retries + 1


@responses.activate
def test_a_proxys_bare_504_is_tried_exactly_hcloud_retries_plus_one_times(settings):
    settings.HETZNER_SANDBOX = False
    settings.HCLOUD_TOKEN = "test-hcloud-token"
    settings.HCLOUD_ENDPOINT = "https://api.hetzner.cloud/v1"
    hetzner.use_sandbox(None)  # the production client, with `responses` standing in for the network
    answer = responses.get("https://api.hetzner.cloud/v1/servers", status=504, body="<html>Gateway Timeout</html>")

    with pytest.raises(HetznerUnavailable):
        hetzner.list_servers(label_selector=hetzner.managed_selector())

    assert answer.call_count == settings.HCLOUD_RETRIES + 1


def renaming(monkeypatch, base: str, attribute: str | None) -> None:
    """Make hcloud's Client look like a release that renamed `base.attribute` (or `base` itself)."""
    original = hcloud.Client.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if attribute is None:
            setattr(self, f"{base}_renamed", getattr(self, base))
            delattr(self, base)
        else:
            target = getattr(self, base)
            setattr(target, f"{attribute}_renamed", getattr(target, attribute))
            delattr(target, attribute)

    monkeypatch.setattr(hcloud.Client, "__init__", init)


@pytest.mark.parametrize("base", ["_client", "_client_hetzner"])
@pytest.mark.parametrize("attribute", ["_retry_max_retries", "_retry_interval_func", "_session", None])
def test_an_hcloud_release_without_what_we_set_fails_loudly_when_a_client_is_built(
    sandbox, monkeypatch, base, attribute
):
    renaming(monkeypatch, base, attribute)
    hetzner.use_sandbox(sandbox)

    with pytest.raises(ImproperlyConfigured, match=rf"hcloud has no {base}\.{attribute or '_retry_max_retries'}"):
        hetzner.list_servers(label_selector=hetzner.managed_selector())

    assert sandbox.requests == []  # nothing was sent with hcloud's own 5 retries and 60 s backoff


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if anything tries to open a connection or use requests' real transport."""

    def refuse(*args, **kwargs):
        raise AssertionError("a request tried to leave the process")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", refuse)


def test_in_sandbox_mode_hclouds_second_endpoint_is_answered_by_the_sandbox(sandbox, no_network):
    second = hetzner.client()._client_hetzner
    assert second._endpoint.startswith("https://api.hetzner.com")  # hcloud's default: the real internet

    answer = second.request("GET", "/servers")

    assert answer["servers"] == []
    assert [(r.method, r.path) for r in sandbox.requests] == [("GET", "/servers")]


def test_the_sandbox_of_make_run_answers_hclouds_second_endpoint_too(settings, tmp_path, no_network):
    settings.HETZNER_SANDBOX = True
    settings.HCLOUD_TOKEN = ""
    settings.HCLOUD_SANDBOX_FILE = tmp_path / "sandbox.json"
    hetzner.use_sandbox(None)  # no test cloud: the file-backed one DEBUG without a token runs

    answer = hetzner.client()._client_hetzner.request("GET", "/servers")

    assert answer["servers"] == []
