"""A real HCLOUD_TOKEN is never a surprise: with DEBUG on (as `make run` has it), every console page
says the Hetzner project is real and its servers are billed; the reconciler says it when it starts."""

import pytest

from octoprovider import hetzner
from octoprovider.operations.cloud import real_cloud_line

AUTH = {"Authorization": "Bearer t"}  # any token: the sandbox checks that one is sent


@pytest.fixture
def real_cloud(settings):
    """The production client, as with a token; no page below may ask Hetzner anything."""
    hetzner.use_sandbox(None)
    settings.HETZNER_SANDBOX = False
    settings.HCLOUD_TOKEN = "h" * 64
    settings.HCLOUD_ENDPOINT = "http://127.0.0.1:9/v1"  # nothing answers there: a request would fail the page


@pytest.mark.parametrize("path", ["/admin/", "/admin/instances/instance/", "/admin/login/"])
def test_every_console_page_says_the_hetzner_project_is_real_and_billed_with_debug_on(
    client, admin_client, real_cloud, settings, path
):
    settings.DEBUG = True
    page = (client if path == "/admin/login/" else admin_client).get(path).content.decode()

    assert "Real Hetzner Cloud" in page
    assert "Servers are billed" in page
    assert "http://127.0.0.1:9/v1" in page and "“default”" in page
    assert "Simulated Hetzner Cloud" not in page


def test_the_banner_counts_the_live_instances_of_the_database(admin_client, octoperf, settings):
    octoperf.create()
    octoperf.create()
    hetzner.use_sandbox(None)
    settings.HETZNER_SANDBOX = False
    settings.DEBUG = True

    assert "2 live instances." in admin_client.get("/admin/").content.decode()


def test_a_production_console_shows_no_banner(admin_client, real_cloud, settings):
    settings.DEBUG = False

    page = admin_client.get("/admin/").content.decode()

    assert "Real Hetzner Cloud" not in page and "Simulated Hetzner Cloud" not in page


def test_the_reconcilers_start_line_names_the_project_and_says_servers_are_billed(octoperf, sandbox, settings):
    octoperf.create()
    # Someone else's server in the same project (the hcloud CLI's, say).
    sandbox.handle(
        "POST",
        "/servers",
        {},
        {"name": "web-1", "server_type": "cx23", "image": "docker-ce", "location": "fsn1", "labels": {}},
        AUTH,
    )

    line = real_cloud_line()

    assert line.startswith(f"Hetzner: the REAL Hetzner Cloud at {settings.HCLOUD_ENDPOINT}, deployment label 'default'")
    assert "has 2 servers, 1 of them this deployment's" in line
    assert "Servers are billed" in line


def test_the_reconcilers_start_line_says_when_hetzner_cannot_be_asked(db, real_cloud):
    line = real_cloud_line()

    assert "could not be asked" in line
    assert "Servers are billed" in line
    assert "h" * 64 not in line
