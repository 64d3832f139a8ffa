"""SANDBOX_LATENCY per endpoint: server creates as slow as Hetzner's, reads faster, the rest at once."""

import time

from django.test import override_settings
from hcloud.locations import Location

from octoprovider.hetzner.sandbox import FileBackedSandbox


def timed(call) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


def test_each_endpoint_answers_after_its_own_latency(cloud, client):
    cloud.set_latency("POST /servers=0.3,GET=0.1")

    assert cloud.latency_for("POST", "/servers") == 0.3
    assert cloud.latency_for("GET", "/servers/12") == 0.1
    assert cloud.latency_for("DELETE", "/servers/12") == 0.0
    assert 0.1 <= timed(client.primary_ips.get_all) < 0.3
    assert timed(lambda: client.primary_ips.create(type="ipv4", name="a", location=Location(name="fsn1"))) < 0.1


def test_a_bare_figure_is_the_latency_of_every_other_answer(cloud):
    cloud.set_latency("0.05, POST /servers=1.5")

    assert cloud.latency_for("POST", "/servers") == 1.5
    assert cloud.latency_for("POST", "/servers/7/actions/reboot") == 0.05
    assert cloud.latency_for("GET", "/servers") == 0.05


def test_the_service_takes_its_sandbox_latency_from_the_setting(tmp_path):
    from octoprovider import hetzner
    from octoprovider.hetzner import connection

    hetzner.use_sandbox(None)
    with override_settings(
        HETZNER_SANDBOX=True,
        HCLOUD_TOKEN="",
        HCLOUD_SANDBOX_FILE=tmp_path / "cloud.json",
        SANDBOX_LATENCY="POST /servers=1.5,GET=0.2",
    ):
        session = connection._bases(connection._build_client())[0]._session
    adapter = session.get_adapter("https://sandbox.hetzner.invalid/v1/servers")

    assert isinstance(adapter.cloud, FileBackedSandbox)
    assert adapter.cloud.latency_for("POST", "/servers") == 1.5
    assert adapter.cloud.latency_for("GET", "/servers") == 0.2
