"""Fixtures shared by the whole suite: a fresh simulated Hetzner Cloud per test, and OctoPerf's client."""

import os
import sys
import threading
import time
from urllib.parse import urlencode

import pytest
from django.core.cache import cache
from django.test import Client

from octoprovider import hetzner
from octoprovider.core import clock
from octoprovider.hetzner.sandbox import FakeClock, SandboxCloud
from octoprovider.operations.reconciler import reconcile_pass
from tests.settings import TEST_TOKENS

TOKEN = TEST_TOKENS[0]
JAVA_ACCEPT = "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2"
USER_DATA = "#!/bin/bash\ndocker run -d --restart=always -e AGENT_TOKEN=s3cr3t-agent-token octoperf/docker-agent\n"


@pytest.fixture(autouse=True)
def sandbox():
    """Route every Hetzner call to a fresh in-memory cloud whose clock the test drives."""
    # Both clocks start now and move together (settle), so Hetzner's timestamps and ours agree.
    cloud = SandboxCloud(clock=FakeClock(start=time.time()))
    # SANDBOX_LATENCY=0.05 makes every Hetzner answer travel that long (wall clock), for hunting races;
    # "POST /servers=1.5,GET=0.2" sets it per endpoint (the service reads the same setting).
    cloud.set_latency(os.environ.get("SANDBOX_LATENCY", "0"))
    hetzner.use_sandbox(cloud)
    cache.clear()  # what the gateway cached came from another test's cloud
    hooks = hetzner.registered_hooks()
    # Code that waits (for a Hetzner action to end) lets simulated time pass instead of sleeping.
    clock.use_sleep(lambda seconds: (cloud.clock.advance(seconds), clock.advance(seconds)))
    yield cloud
    hetzner.restore_hooks(hooks)  # hooks a test added (faults, deaths) end with it
    hetzner.use_sandbox(None)
    clock.use_sleep(None)
    clock.reset()


def ipv4s(sandbox) -> list[dict]:
    """The Primary IPv4s at Hetzner (servers also get an auto-deleted IPv6 one, free of charge)."""
    return [ip for ip in sandbox.primary_ips.values() if ip["type"] == "ipv4"]


def in_threads(count: int, target) -> list:
    """Run `target(index)` in `count` threads started together; return what each returned or raised."""
    from django.db import connection

    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(index):
        try:
            barrier.wait()
            results[index] = target(index)
        except Exception as exc:  # collected for the assertions
            results[index] = exc
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def succeeded(results: list) -> list:
    """Return `results` from `in_threads`, raising the first exception among them."""
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


def create_in_parallel(count: int, *, region: str = "fsn1") -> list[str]:
    """Send `count` instance creates at once from as many threads; return "created" or "refused" for each."""
    from instances import services
    from octoprovider.core.exceptions import LimitReached

    def create(index: int) -> str:
        try:
            services.instance_create(region=region, type="SMALL", user_data="x")
        except LimitReached:
            return "refused"
        return "created"

    return sorted(succeeded(in_threads(count, create)))


def server_of(sandbox, instance_id: str) -> dict:
    """The sandbox's server behind an instance."""
    from instances.models import Instance

    return sandbox.servers[Instance.objects.get(pk=instance_id).hetzner_id]


def reboots_at_hetzner(sandbox, instance_id: str) -> int:
    """How many reboots of an instance's server Hetzner carried out (the sandbox's `reboot_server` actions)."""
    from instances.models import Instance

    server_id = Instance.objects.get(pk=instance_id).hetzner_id
    return sum(
        1
        for action in sandbox.actions.values()
        if action["command"] == "reboot_server" and {"id": server_id, "type": "server"} in action["resources"]
    )


def public_ipv4(sandbox, instance_id: str) -> str | None:
    """The public IPv4 address an instance's server has at Hetzner, if any."""
    ipv4 = server_of(sandbox, instance_id)["public_net"]["ipv4"]
    return ipv4["ip"] if ipv4 else None


def address_of(ip_id: str) -> str:
    """The address a static IP stands for now."""
    from staticips.models import StaticIP

    return StaticIP.objects.get(pk=ip_id).address


class OctoPerf:
    """Call the contract the way OctoPerf's Java backend does: form bodies, Java's Accept header."""

    def __init__(self, base: str = f"/octoperf/{TOKEN}"):
        self.base = base
        self.client = Client(HTTP_ACCEPT=JAVA_ACCEPT)

    def call(self, method: str, path: str, *, form: dict | None = None, query: dict | None = None, **extra):
        url = self.base + path + (f"?{urlencode(query)}" if query else "")
        body = urlencode(form) if form is not None else ""
        content_type = "application/x-www-form-urlencoded; charset=UTF-8" if form is not None else None
        kwargs = {"content_type": content_type} if content_type else {}
        response = self.client.generic(method, url, body, **kwargs, **extra)
        assert response["Content-Type"] == "application/json; charset=utf-8"
        return response

    def create(self, *, region: str = "fsn1", type: str = "SMALL", user_data: str = USER_DATA) -> str:
        response = self.call("POST", "/instances", form={"userData": user_data, "region": region, "type": type})
        assert response.status_code == 200, response.content
        return response.json()["value"]

    def state(self, instance_id: str) -> str:
        response = self.call("GET", f"/instances/{instance_id}/state", query={"region": "fsn1", "zone": "default"})
        assert response.status_code == 200, response.content
        return response.json()["value"]

    def reboot(self, instance_id: str):
        return self.call("PUT", f"/instances/{instance_id}")

    def delete(self, instance_id: str):
        return self.call("DELETE", "/instances", query={"instanceId": instance_id})

    def allocate(self, *, region: str = "fsn1", zone: str = "default") -> str:
        response = self.call("POST", "/static-ips/allocate", form={"region": region, "zone": zone})
        assert response.status_code == 200, response.content
        return response.json()["value"]

    def associate(self, ip_id: str, instance_id: str, *, region: str = "fsn1"):
        return self.call(
            "PUT",
            "/static-ips/associate",
            form={"region": region, "zone": "default", "instanceId": instance_id, "id": ip_id},
        )

    def dissociate(self, ip_id: str, instance_id: str, association_id: str, *, region: str = "fsn1"):
        return self.call(
            "PUT",
            "/static-ips/dissociate",
            form={
                "region": region,
                "zone": "default",
                "instanceId": instance_id,
                "id": ip_id,
                "associationId": association_id,
            },
        )

    def release(self, ip_id: str, *, region: str = "fsn1"):
        return self.call("DELETE", "/static-ips/release", query={"region": region, "zone": "default", "id": ip_id})


@pytest.fixture
def octoperf(db):
    return OctoPerf()


@pytest.fixture
def running(octoperf, settle):
    """A running instance in fsn1."""
    instance_id = octoperf.create()
    settle(60)
    return instance_id


@pytest.fixture
def associated(octoperf, settle, running):
    """A static IP associated with a running instance, the move carried out: (ipId, instanceId, associationId)."""
    ip_id = octoperf.allocate()
    association_id = octoperf.associate(ip_id, running).json()["value"]
    for _ in range(12):
        settle(10)
    return ip_id, running, association_id


@pytest.fixture
def with_latency(sandbox):
    """Let every Hetzner answer take a little wall-clock time (more with SANDBOX_LATENCY), as Hetzner's do.

    Races between a request and what happens while its answer travels only show with it.
    """
    sandbox.latency = max(sandbox.latency, 0.001)
    return sandbox


@pytest.fixture
def no_leftovers(sandbox, settle):
    """After the test, do what OctoPerf does at the end of a run, then check Hetzner bills nothing more.

    Every instance is deleted and every static IP released (dissociated first where needed); a few
    reconcile passes later no server and no Primary IP (static, or a server's own IPv4) may be left.
    """
    yield
    from instances import services as instance_services
    from instances.models import Instance
    from staticips import services as static_ip_services
    from staticips.models import Association, StaticIP

    sandbox.calm()
    for instance_id in Instance.objects.exclude(status="terminated").values_list("pk", flat=True):
        instance_services.instance_delete(instance_id=instance_id)
    for association in Association.objects.filter(status__in=Association.ACTIVE, internal=False):
        static_ip_services.static_ip_dissociate(
            static_ip_id=association.static_ip_id, instance_id=association.instance_id, association_id=association.id
        )
    for static_ip_id in StaticIP.objects.exclude(status="released").values_list("pk", flat=True):
        static_ip_services.static_ip_release(static_ip_id=static_ip_id)
    for _ in range(8):
        settle(40, full=True)
    assert sandbox.servers == {}, "servers left at Hetzner"
    assert sandbox.primary_ips == {}, "Primary IPs left at Hetzner"


@pytest.fixture
def settle(sandbox):
    """Let simulated time pass, then run a reconcile pass as the background loop would."""

    def run(seconds: float = 60, *, full: bool = False):
        sandbox.clock.advance(seconds)
        clock.advance(seconds)
        return reconcile_pass(full=full)

    return run


def pytest_terminal_summary(terminalreporter):
    """Say how many fault-matrix scenarios ran, and which tests were skipped for want of what, and how to run them."""
    matrix = sys.modules.get("tests.services.test_fault_matrix")
    if matrix is not None and matrix.SCENARIOS_RUN:
        terminalreporter.write_line(f"fault matrix: {len(matrix.SCENARIOS_RUN)} scenarios ran")
    for line in skipped_summary(terminalreporter.stats.get("skipped", [])):
        terminalreporter.write_line(line, yellow=True)


# Tests skipped for want of something this machine lacks: (the skip reason or test file that marks
# them, what they need, how to get it). The commands are those .ci/run uses.
NEEDS = [
    (
        "PostgreSQL only",
        "PostgreSQL for row locks and concurrent connections (.ci/run starts the local one; any PostgreSQL "
        "the tests may create a database on will do)",
        'DATABASE_URL=postgres://postgres@127.0.0.1:5432/octoprovider make test PYTEST_ARGS="{files}"',
    ),
    (
        "tests/admin/test_browser.py",
        "Debian's chromium at /usr/bin/chromium and playwright (in requirements/dev.lock: make install)",
        'apt-get install -y chromium, then make test PYTEST_ARGS="{files}"',
    ),
    (
        "tests/ops/test_nginx.py",
        "nginx",
        "apt-get install -y nginx-light && systemctl disable --now nginx (the tests start their own), "
        'then make test PYTEST_ARGS="{files}"',
    ),
]


def skipped_summary(reports) -> list[str]:
    """Lines saying how many tests were skipped for want of PostgreSQL, a browser or nginx, and how to run them."""
    lines = []
    for marker, needed, command in NEEDS:
        files, count, reasons = {}, 0, set()
        for report in reports:
            reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
            if marker in reason or report.nodeid.startswith(marker):
                count += 1
                files[report.nodeid.split("::")[0]] = True
                reasons.add(reason.removeprefix("Skipped: "))
        if count:
            lines.append(f"{count} tests skipped ({'; '.join(sorted(reasons))}): they need {needed}. Run them with")
            lines.append("    " + command.format(files=" ".join(files)))
    return lines


def pytest_configure(config):
    """Check every exchange with the simulated Hetzner against Hetzner's OpenAPI description."""
    from tests import hetzner_spec

    hetzner_spec.register(config)
