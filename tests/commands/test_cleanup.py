"""cleanup stops what leaks money, and never touches what is not ours."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command

from instances.models import Instance
from octoprovider import hetzner
from octoprovider.core import clock
from staticips.models import StaticIP

pytestmark = pytest.mark.django_db
AUTH = {"Authorization": "Bearer t"}


def make_server(sandbox, name: str, labels: dict) -> int:
    body = {"name": name, "server_type": "cx23", "image": "docker-ce", "location": "fsn1", "labels": labels}
    status, _, answer = sandbox.handle("POST", "/servers", {}, body, AUTH)
    assert status == 201, answer
    return answer["server"]["id"]


def make_ip(sandbox, name: str, labels: dict) -> int:
    body = {"name": name, "type": "ipv4", "location": "fsn1", "auto_delete": False, "labels": labels}
    status, _, answer = sandbox.handle("POST", "/primary_ips", {}, body, AUTH)
    assert status == 201, answer
    return answer["primary_ip"]["id"]


def ours(our_id: str, **extra) -> dict:
    return {**hetzner.ownership_labels(our_id), **extra}


def later(sandbox, minutes: float) -> None:
    sandbox.clock.advance(minutes * 60)
    clock.advance(minutes * 60)


def cleanup(capsys, *args) -> str:
    call_command("cleanup", *args)
    return capsys.readouterr().out


def test_a_server_unknown_to_the_database_is_deleted_once_past_the_grace(sandbox, capsys):
    young = make_server(sandbox, "octoperf-i-young", ours("i-young"))
    later(sandbox, 20)
    make_server(sandbox, "octoperf-i-younger", ours("i-younger"))

    out = cleanup(capsys)
    sandbox.settle()

    assert set(sandbox.servers) == {young + 1}
    assert f"delete server {young} (octoperf-i-young, cx23 in fsn1): unknown to the database" in out
    assert "1 resources cleaned up" in out


def test_what_is_not_ours_survives(sandbox, capsys, settings):
    make_server(sandbox, "someone-elses", {})
    make_server(sandbox, "other-deployment", {**ours("i-other"), "octoprovider-deployment": "staging"})
    make_server(sandbox, "only-managed-by", {"managed-by": "octoprovider"})
    make_ip(sandbox, "foreign-ip", {})
    make_ip(
        sandbox,
        "other-deployment-ip",
        {**ours("ip-other"), "octoprovider-deployment": "staging", "octoprovider-role": "static-ip"},
    )
    later(sandbox, 60 * 48)
    ips = set(sandbox.primary_ips)

    out = cleanup(capsys)

    assert len(sandbox.servers) == 3
    assert set(sandbox.primary_ips) == ips
    assert "0 resources cleaned up" in out
    assert [r for r in sandbox.mutation_requests() if r.method == "DELETE"] == []


def test_dry_run_says_what_it_would_do_and_does_nothing(sandbox, capsys):
    make_server(sandbox, "octoperf-i-lost", ours("i-lost"))
    later(sandbox, 30)
    mutations = len(sandbox.mutation_requests())

    out = cleanup(capsys, "--dry-run")

    assert "would delete server" in out
    assert "1 resources found, would stop" in out
    assert len(sandbox.mutation_requests()) == mutations
    assert len(sandbox.servers) == 1


def test_each_line_gives_the_hourly_price_and_the_total_adds_them_up(sandbox, capsys):
    make_server(sandbox, "octoperf-i-a", ours("i-a"))
    make_ip(sandbox, "octoperf-ip-a", ours("ip-a", **{"octoprovider-role": "static-ip"}))
    later(sandbox, 30)

    out = cleanup(capsys, "--dry-run")

    prices = hetzner.hourly_prices()
    server_price = prices.server("cx23", "fsn1")
    ip_price = prices.primary_ipv4["fsn1"]
    assert f"({server_price:.4f}/h)" in out
    assert f"({ip_price:.4f}/h)" in out
    assert f"would stop {server_price + ip_price:.4f}/h" in out


def test_a_server_alive_under_a_terminated_row_is_deleted_at_once(octoperf, sandbox, settle, capsys):
    instance_id = octoperf.create()
    settle(60)
    Instance.objects.filter(pk=instance_id).update(status="terminated")

    out = cleanup(capsys)

    assert f"its instance {instance_id} is terminated" in out
    sandbox.settle()
    assert sandbox.servers == {}


def test_a_static_ip_unknown_or_released_is_deleted(octoperf, sandbox, capsys):
    released = octoperf.allocate()
    StaticIP.objects.filter(pk=released).update(status="released")
    make_ip(sandbox, "octoperf-ip-unknown", ours("ip-unknown", **{"octoprovider-role": "static-ip"}))
    later(sandbox, 30)

    out = cleanup(capsys)

    assert sandbox.primary_ips == {}
    assert "unknown to the database" in out
    assert f"its static IP {released} is released" in out


def test_instances_past_their_maximum_lifetime_are_terminated(octoperf, sandbox, settle, capsys, settings):
    settings.INSTANCE_MAX_LIFETIME = 24
    old = octoperf.create()
    settle(60)
    later(sandbox, 23 * 60)
    young = octoperf.create()
    later(sandbox, 2 * 60)

    out = cleanup(capsys)
    settle(60)

    assert f"terminate instance {old}: older than INSTANCE_MAX_LIFETIME (24 h)" in out
    assert octoperf.state(old) == "terminated"
    assert octoperf.state(young) == "running"


def test_a_lifetime_of_zero_turns_it_off(octoperf, sandbox, settle, capsys, settings):
    settings.INSTANCE_MAX_LIFETIME = 0
    instance_id = octoperf.create()
    later(sandbox, 24 * 60 * 30)

    cleanup(capsys)

    assert octoperf.state(instance_id) != "shutting-down"


def test_rows_whose_resource_vanished_are_ended(octoperf, sandbox, settle, capsys):
    instance_id = octoperf.create()
    ip_id = octoperf.allocate()
    settle(60)
    server_id = Instance.objects.get(pk=instance_id).hetzner_id
    sandbox.handle("DELETE", f"/servers/{server_id}", {}, None, AUTH)
    sandbox.handle("DELETE", f"/primary_ips/{StaticIP.objects.get(pk=ip_id).hetzner_id}", {}, None, AUTH)
    sandbox.settle()

    out = cleanup(capsys)

    assert octoperf.state(instance_id) == "terminated"
    assert StaticIP.objects.get(pk=ip_id).status == "released"
    assert f"end instance {instance_id}: its Hetzner server {server_id} is gone" in out


def test_one_failure_does_not_stop_the_others_and_the_command_fails(sandbox, capsys):
    make_server(sandbox, "octoperf-i-one", ours("i-one"))
    make_server(sandbox, "octoperf-i-two", ours("i-two"))
    later(sandbox, 30)
    sandbox.inject_fault("DELETE", r"/servers/\d+", code="unavailable", status=503)

    with pytest.raises(CommandError, match="1 cleanup actions failed"):
        call_command("cleanup")

    sandbox.settle()
    assert len(sandbox.servers) == 1


def test_audit_events_past_their_retention_are_pruned(sandbox, capsys, settings):
    from octoprovider.models import AuditEvent

    settings.AUDIT_RETENTION_DAYS = 90
    fields = {"kind": "contract", "method": "GET", "route": "instances"}
    AuditEvent.objects.create(at=clock.now(), **fields)
    old = AuditEvent.objects.create(at=clock.now() - timedelta(days=91), **fields)

    dry = cleanup(capsys, "--dry-run")
    assert "would prune 1 audit events" in dry
    assert AuditEvent.objects.count() == 2

    out = cleanup(capsys)

    assert "pruned 1 audit events" in out
    assert not AuditEvent.objects.filter(pk=old.pk).exists()
    assert AuditEvent.objects.count() == 1


def test_a_delete_hetzner_held_back_as_locked_is_finished(octoperf, sandbox, settle, capsys):
    instance_id = octoperf.create()
    settle(60)
    octoperf.reboot(instance_id)
    octoperf.delete(instance_id)  # Hetzner answers `locked` while the reboot runs
    with pytest.raises(CommandError, match="still locked"):
        call_command("reconcile", "--wait", "0")
    capsys.readouterr()

    out = cleanup(capsys, "--grace", "0")

    assert f"its instance {instance_id} is being deleted" in out
    assert "1 resources cleaned up" in out
    assert [server["status"] for server in sandbox.servers.values()] == ["deleting"]
    settle(5)
    assert sandbox.servers == {}
    assert octoperf.state(instance_id) == "terminated"


def deletes_of(sandbox, instance_id: str, since: int) -> list:
    """The DELETEs of the instance's server that reached Hetzner from request number `since` on."""
    path = f"/servers/{Instance.objects.get(pk=instance_id).hetzner_id}"
    return [r for r in sandbox.requests[since:] if r.method == "DELETE" and r.path == path]


def test_a_locked_delete_is_waited_out_no_longer_than_wait(octoperf, sandbox, capsys):
    instance_id = octoperf.create()
    octoperf.delete(instance_id)  # Hetzner answers `locked` while the server boots (15 s)
    started, before = sandbox.clock.now(), len(sandbox.requests)

    with pytest.raises(CommandError, match="1 cleanup actions failed"):
        call_command("cleanup", "--grace", "0", "--wait", "6")

    tries = deletes_of(sandbox, instance_id, before)
    # Sent again every 2 s (LOCKED_RETRY_INTERVAL), refused as locked each time; a try at 6 s would end past --wait.
    assert [r.at - started for r in tries] == [0, 2, 4]
    assert {r.status for r in tries} == {423}
    assert sandbox.clock.now() - started <= 6
    assert [server["status"] for server in sandbox.servers.values()] != ["deleting"]


def test_a_release_hetzner_did_not_finish_is_finished(octoperf, sandbox, capsys):
    ip_id = octoperf.allocate()
    sandbox.inject_fault("DELETE", r"/primary_ips/\d+", code="unavailable", status=503)
    assert octoperf.release(ip_id).status_code == 200
    assert StaticIP.objects.get(pk=ip_id).status == "releasing"

    out = cleanup(capsys, "--grace", "0")

    assert f"its static IP {ip_id} is being released" in out
    assert StaticIP.objects.get(pk=ip_id).status == "released"
    assert sandbox.primary_ips == {}


def test_hetzner_unreachable_fails_the_command(sandbox):
    sandbox.inject_fault("GET", r"/servers", timeout=True, times=10)

    with pytest.raises(CommandError, match="Could not list the Hetzner project"):
        call_command("cleanup")


# --- cleanup racing creates -----------------------------------------------------------------------


def test_an_instance_created_while_cleanup_lists_the_servers_is_left_alone(octoperf, sandbox, settle, capsys):
    octoperf.create()  # something to list
    settle(60)
    created = []

    def create_while_the_answer_travels(response, *args, **kwargs):
        # The listing holds what Hetzner had when it was asked; this create is recorded before it arrives.
        if response.request.method == "GET" and response.request.path_url.startswith("/v1/servers?") and not created:
            created.append(octoperf.create())

    hetzner.add_response_hook(create_while_the_answer_travels)
    out = cleanup(capsys)
    hetzner.remove_hook(create_while_the_answer_travels)

    assert created and f"end instance {created[0]}" not in out
    assert octoperf.state(created[0]) == "pending"
    settle(60)
    assert octoperf.state(created[0]) == "running"
    assert len(sandbox.servers) == 2


def test_a_server_whose_row_appeared_since_the_listing_is_left_alone_and_nothing_fails(sandbox, capsys):
    make_server(sandbox, "octoperf-i-lost", ours("i-lost"))
    late = make_server(sandbox, "octoperf-i-late", ours("i-late"))
    later(sandbox, 20)

    def row_written_meanwhile(response, *args, **kwargs):
        # While cleanup deletes the first unknown server, a create records the second one's row.
        if response.request.method == "DELETE" and not Instance.objects.filter(pk="i-late").exists():
            Instance.objects.create(
                pk="i-late", region="fsn1", location="fsn1", type="SMALL", server_type="cx23", image="docker-ce"
            )

    hetzner.add_response_hook(row_written_meanwhile)
    out = cleanup(capsys)  # the harmless race fails nothing: no CommandError
    hetzner.remove_hook(row_written_meanwhile)

    assert f"left alone: delete server {late} (octoperf-i-late, cx23 in fsn1): unknown to the database" in out
    assert "instance i-late exists now" in out
    assert "1 resources cleaned up" in out and "failed" not in out
    sandbox.settle()
    assert set(sandbox.servers) == {late}


def test_a_row_observed_after_the_listing_is_not_ended_by_a_finding_made_before(octoperf, sandbox, settle, capsys):
    from octoprovider.core.reports import Kind
    from octoprovider.operations.cleanup import cleanup_findings

    instance_id = octoperf.create()
    settle(60)
    server_id = Instance.objects.get(pk=instance_id).hetzner_id
    sandbox.handle("DELETE", f"/servers/{server_id}", {}, None, AUTH)
    sandbox.settle()
    (finding,) = [f for f in cleanup_findings(grace=timedelta(minutes=15)) if f.action == "end"]
    # Meanwhile the reconciler saw the row move on (an operator's fix, a newer observation).
    Instance.objects.filter(pk=instance_id).update(observed_at=clock.now() + timedelta(seconds=1))

    assert finding.act().kind is Kind.LEFT_ALONE

    assert Instance.objects.get(pk=instance_id).status == "running"


def test_a_delete_the_reconciler_finished_since_the_listing_is_left_alone(octoperf, sandbox):
    from octoprovider.core.reports import Kind
    from octoprovider.operations.cleanup import cleanup_findings

    instance_id = octoperf.create()
    octoperf.delete(instance_id)  # Hetzner answers `locked` while the server boots: the row stays deleting
    (finding,) = [f for f in cleanup_findings(grace=timedelta(minutes=15)) if "being deleted" in f.why]
    Instance.objects.filter(pk=instance_id).update(status="terminated")  # the reconciler got there first
    sent = len(sandbox.mutation_requests())

    assert finding.act().kind is Kind.LEFT_ALONE
    assert len(sandbox.mutation_requests()) == sent
