"""What Hetzner's faults must not make us believe: caps count what bills, one 404 proves nothing, a
create whose answer was lost is looked for, and whatever is left of ours without a live row is deleted.
"""

import pytest
from django.conf import settings as django_settings

from instances import services as instance_services
from instances.models import Instance
from octoprovider import hetzner
from staticips.models import StaticIP
from staticips.services import ROLE_SERVER_IPV4, ROLE_STATIC, ownership_labels
from tests.conftest import create_in_parallel

pytestmark = pytest.mark.django_db

on_postgresql = pytest.mark.skipif(
    "postgresql" not in django_settings.DATABASES["default"]["ENGINE"],
    reason="parallel connections: PostgreSQL only (CI runs it)",
)
FORM = {"userData": "x", "region": "fsn1", "type": "SMALL"}
AUTH = {"Authorization": "Bearer t"}


def live_servers(sandbox) -> int:
    return sum(1 for server in sandbox.servers.values() if server["status"] != "deleting")


def static_ips_at_hetzner(sandbox) -> list[dict]:
    return [ip for ip in sandbox.primary_ips.values() if ip["labels"].get("octoprovider-role") == ROLE_STATIC]


# --- 1. caps count what bills ------------------------------------------------------------------------


def test_deletes_hetzner_refuses_keep_counting_against_max_instances(octoperf, sandbox, settle, settings):
    settings.MAX_INSTANCES = 5
    sandbox.inject_fault("DELETE", r"/servers/\d+", code="unavailable", status=503, times=10_000)

    for _ in range(4):  # create 5, delete 5, create 5 ... as the adversarial run did
        for _ in range(5):
            response = octoperf.call("POST", "/instances", form=FORM)
            if response.status_code != 200:
                assert response.status_code == 429
                assert "MAX_INSTANCES (5)" in response.json()["error"]["message"]
                continue
            octoperf.delete(response.json()["value"])
        settle(60)

    assert live_servers(sandbox) == 5


def test_deletes_hetzner_refuses_keep_counting_against_the_region_cap(octoperf, sandbox, settle, settings):
    settings.MAX_INSTANCES_PER_REGION = 2
    sandbox.inject_fault("DELETE", r"/servers/\d+", code="unavailable", status=503, times=10_000)
    for instance_id in [octoperf.create(), octoperf.create()]:
        assert octoperf.delete(instance_id).status_code == 200
    settle(60)

    refused = octoperf.call("POST", "/instances", form=FORM)

    assert refused.status_code == 429
    assert "MAX_INSTANCES_PER_REGION" in refused.json()["error"]["message"]
    assert octoperf.call("POST", "/instances", form={**FORM, "region": "hel1"}).status_code == 200


def test_releases_hetzner_refuses_keep_counting_against_max_static_ips(octoperf, sandbox, settle, settings):
    settings.MAX_STATIC_IPS = 2
    sandbox.inject_fault("DELETE", r"/primary_ips/\d+", code="unavailable", status=503, times=10_000)
    for ip_id in [octoperf.allocate(), octoperf.allocate()]:
        assert octoperf.release(ip_id).status_code == 200
    settle(60, full=True)

    response = octoperf.call("POST", "/static-ips/allocate", form={"region": "fsn1", "zone": "a"})

    assert response.status_code == 429
    assert len(static_ips_at_hetzner(sandbox)) == 2


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_parallel_creates_count_the_servers_still_being_deleted(sandbox, settings):
    settings.MAX_INSTANCES = 5
    sandbox.inject_fault("DELETE", r"/servers/\d+", code="unavailable", status=503, times=10_000)
    for _ in range(3):
        instance = instance_services.instance_create(region="fsn1", type="SMALL", user_data="x")
        instance_services.instance_delete(instance_id=instance.id)
    outcomes = create_in_parallel(10)

    assert outcomes == ["created"] * 2 + ["refused"] * 8
    assert len(sandbox.servers) == 5


# --- 2. never trust a single not_found ---------------------------------------------------------------


def test_one_not_found_on_reboot_neither_terminates_the_instance_nor_deletes_its_server(
    octoperf, sandbox, settle, running
):
    server_id = Instance.objects.get(pk=running).hetzner_id
    reboots = rf"/servers/{server_id}/actions/reboot"
    sandbox.inject_fault("POST", reboots, code="not_found", status=404)

    response = octoperf.reboot(running)

    assert response.status_code == 200  # Hetzner still lists the server: the reboot is retried
    for _ in range(3):
        settle(30, full=True)
    assert octoperf.state(running) == "running"
    assert server_id in sandbox.servers
    assert [r.status for r in sandbox.requests if r.method == "POST" and r.path == reboots][-1] == 201


def test_a_reboot_hetzner_confirms_gone_is_409_terminated(octoperf, sandbox, settle, running):
    server_id = Instance.objects.get(pk=running).hetzner_id
    sandbox.handle("DELETE", f"/servers/{server_id}", {}, None, AUTH)
    settle(60)  # a quick pass looks only at what is in transition: the row still says running

    response = octoperf.reboot(running)

    assert response.status_code == 409
    assert octoperf.state(running) == "terminated"


def test_one_not_found_on_delete_leaves_the_instance_shutting_down_until_hetzner_confirms(
    octoperf, sandbox, settle, running
):
    server_id = Instance.objects.get(pk=running).hetzner_id
    sandbox.inject_fault("DELETE", rf"/servers/{server_id}", code="not_found", status=404)

    assert octoperf.delete(running).status_code == 200

    assert octoperf.state(running) == "shutting-down"  # not terminated: the server still bills
    for _ in range(4):
        settle(30)
    assert sandbox.servers == {}
    assert octoperf.state(running) == "terminated"


def test_one_not_found_on_release_does_not_mark_a_billed_ip_released(octoperf, sandbox, settle):
    ip_id = octoperf.allocate()
    hetzner_id = StaticIP.objects.get(pk=ip_id).hetzner_id
    sandbox.inject_fault("DELETE", rf"/primary_ips/{hetzner_id}", code="not_found", status=404)

    assert octoperf.release(ip_id).status_code == 200

    assert hetzner_id in sandbox.primary_ips
    assert StaticIP.objects.get(pk=ip_id).status == "releasing"
    for _ in range(4):
        settle(30, full=True)
    assert sandbox.primary_ips == {}
    assert StaticIP.objects.get(pk=ip_id).status == "released"


# --- 3. retried creates leave nothing behind ---------------------------------------------------------


def lost_then_rate_limited(sandbox, method: str, path: str) -> None:
    """The first try is carried out but its answer is lost (504); hcloud's retries hear 429."""
    sandbox.inject_fault(method, path, code="timeout", status=504, after=True, times=1)
    sandbox.inject_fault(method, path, code="rate_limit_exceeded", status=429, times=5)


def test_an_allocate_whose_answer_was_lost_then_rate_limited_leaves_no_ip(octoperf, sandbox, settle):
    lost_then_rate_limited(sandbox, "POST", "/primary_ips")

    response = octoperf.call("POST", "/static-ips/allocate", form={"region": "fsn1", "zone": "a"})

    assert response.status_code == 503
    assert response.has_header("Retry-After")
    assert len(static_ips_at_hetzner(sandbox)) == 1  # made by the first try
    assert StaticIP.objects.get().status == "releasing"  # not "released": it is looked for
    for _ in range(3):
        settle(30, full=True)
    assert sandbox.primary_ips == {}
    assert StaticIP.objects.get().status == "released"


def test_a_create_whose_answer_was_lost_then_rate_limited_leaves_no_server(octoperf, sandbox, settle):
    lost_then_rate_limited(sandbox, "POST", "/servers")

    response = octoperf.call("POST", "/instances", form=FORM)

    assert response.status_code == 503
    assert Instance.objects.get().status == "deleting"
    for _ in range(3):
        settle(30)
    assert sandbox.servers == {}
    assert Instance.objects.get().status == "terminated"


def test_an_allocate_answered_after_its_row_was_released_is_deleted_by_the_reconciler(
    octoperf, sandbox, settle, settings
):
    # Every try timed out before Hetzner saw it; the row ends released once the grace is over...
    sandbox.inject_fault("POST", "/primary_ips", timeout=True, times=5)
    assert octoperf.call("POST", "/static-ips/allocate", form={"region": "fsn1", "zone": "a"}).status_code == 503
    settle(settings.CREATE_GRACE + 1, full=True)
    row = StaticIP.objects.get()
    assert row.status == "released"
    # ... and then the first try reaches Hetzner after all.
    hetzner.create_primary_ip(name=row.name, location="fsn1", labels=ownership_labels(row.id, ROLE_STATIC))

    settle(30, full=True)
    settle(30, full=True)

    assert sandbox.primary_ips == {}


def test_the_reconciler_deletes_a_static_ip_of_ours_that_no_row_owns_after_the_grace(
    octoperf, sandbox, settle, settings
):
    kept = octoperf.allocate()
    hetzner.create_primary_ip(
        name="octoperf-ip-0000000000000000a",
        location="fsn1",
        labels=ownership_labels("ip-0000000000000000a", ROLE_STATIC),
    )

    settle(60, full=True)
    assert len(sandbox.primary_ips) == 2  # maybe an allocate in flight whose row is not committed yet

    settle(settings.CREATE_GRACE, full=True)
    settle(30, full=True)
    assert [ip["labels"]["octoprovider-id"] for ip in sandbox.primary_ips.values()] == [kept]


def test_the_reconciler_deletes_an_unassigned_server_ipv4_that_no_association_needs(
    octoperf, sandbox, settle, settings
):
    octoperf.allocate()  # a deployment that uses static IPs
    hetzner.create_primary_ip(
        name="octoperf-assoc-0000000000000000a-ipv4",
        location="fsn1",
        labels=ownership_labels("assoc-0000000000000000a", ROLE_SERVER_IPV4),
    )

    settle(settings.CREATE_GRACE + 1, full=True)
    settle(30, full=True)

    assert [ip["labels"]["octoprovider-role"] for ip in sandbox.primary_ips.values()] == [ROLE_STATIC]


def test_the_reconciler_leaves_another_deployments_ips_alone(octoperf, sandbox, settle, settings):
    octoperf.allocate()
    labels = {**ownership_labels("ip-0000000000000000a", ROLE_STATIC), "octoprovider-deployment": "other"}
    hetzner.create_primary_ip(name="octoperf-ip-0000000000000000a", location="fsn1", labels=labels)

    settle(settings.CREATE_GRACE + 1, full=True)
    settle(30, full=True)

    assert len(sandbox.primary_ips) == 2
