"""A create whose answer OctoPerf never received is ended, not billed for a day; static IPs never used are shown."""

import json
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from instances import services
from instances.models import Instance
from octoprovider.core import clock
from tests.conftest import in_threads, succeeded

pytestmark = pytest.mark.django_db

GRACE = 600


@pytest.fixture(autouse=True)
def grace(settings):
    settings.UNCLAIMED_INSTANCE_GRACE = GRACE


def lost_create() -> str:
    """A create whose answer never reached OctoPerf (its client timed out): OctoPerf never learns the id."""
    return services.instance_create(region="fsn1", type="SMALL", user_data="x").id


def past_the_grace(settle):
    for _ in range(GRACE // 60 + 1):
        settle(60, full=True)


def test_an_instance_octoperf_never_polls_is_deleted_after_the_grace_and_its_retry_is_kept(octoperf, sandbox, settle):
    lost = lost_create()
    retried = octoperf.create()  # OctoPerf retried, and polls the one it got
    server_of_lost = Instance.objects.get(pk=lost).hetzner_id

    for _ in range(GRACE // 60 + 1):
        settle(60, full=True)
        assert octoperf.state(retried) in ("pending", "running")

    assert server_of_lost not in sandbox.servers  # deleted at Hetzner, as a delete would
    row = Instance.objects.get(pk=lost)
    assert row.state == "terminated"
    assert row.last_error.startswith("never claimed")
    assert octoperf.state(retried) == "running"


def test_an_instance_is_kept_until_the_grace_is_over(octoperf, sandbox, settle):
    lost = lost_create()

    settle(GRACE - 60, full=True)

    assert Instance.objects.get(pk=lost).state == "running"


@pytest.mark.parametrize("call", ["state", "reboot", "delete", "associate"])
def test_any_call_of_octoperf_naming_the_instance_claims_it(octoperf, sandbox, settle, call):
    instance_id = octoperf.create()
    settle(60)
    if call == "state":
        octoperf.state(instance_id)
    elif call == "reboot":
        assert octoperf.reboot(instance_id).status_code == 200
    elif call == "delete":
        assert octoperf.delete(instance_id).status_code == 200
    else:
        assert octoperf.associate(octoperf.allocate(), instance_id).status_code == 200

    past_the_grace(settle)

    row = Instance.objects.get(pk=instance_id)
    assert row.claimed_at is not None
    assert not row.last_error.startswith("never claimed")
    if call != "delete":
        assert row.state == "running"


def test_a_grace_of_zero_ends_nothing(octoperf, sandbox, settle, settings):
    settings.UNCLAIMED_INSTANCE_GRACE = 0
    lost = lost_create()

    past_the_grace(settle)

    assert Instance.objects.get(pk=lost).state == "running"


def test_cleanup_ends_an_instance_never_claimed_as_a_finding(octoperf, sandbox, capsys):
    lost = lost_create()
    sandbox.clock.advance(GRACE + 60)
    clock.advance(GRACE + 60)

    call_command("cleanup", "--dry-run")
    dry = capsys.readouterr().out
    assert f"terminate instance {lost}: never claimed" in dry
    assert Instance.objects.get(pk=lost).state != "terminated"

    call_command("cleanup")

    assert Instance.objects.get(pk=lost).state in ("shutting-down", "terminated")
    assert (
        Instance.objects.get(pk=lost).hetzner_id not in sandbox.servers
        or sandbox.servers[Instance.objects.get(pk=lost).hetzner_id]["status"] == "deleting"
    )


def test_the_console_shows_never_claimed_instances(octoperf, sandbox, settle, admin_client):
    lost = lost_create()
    claimed = octoperf.create()
    octoperf.state(claimed)
    past_the_grace(settle)

    page = admin_client.get("/admin/instances/instance/", {"claim": "never", "status": "all"}).content.decode()
    detail = admin_client.get(f"/admin/instances/instance/{lost}/change/").content.decode()

    assert lost in page and claimed not in page
    assert "never claimed" in page
    assert "never claimed (its create&#x27;s answer was lost)" in detail


def test_state_polls_record_their_claims_with_the_snapshots_next_read_not_one_write_per_poll(
    octoperf, settle, settings, monkeypatch
):
    settings.STATE_SNAPSHOT_SECONDS = 1
    monkeypatch.setattr(services, "_snapshot", services._StateSnapshot())
    ids = [octoperf.create() for _ in range(3)]
    settle(60)

    with CaptureQueriesContext(connection) as first_second:
        for _ in range(30):
            for instance_id in ids:
                octoperf.state(instance_id)
    clock.advance(1)
    with CaptureQueriesContext(connection) as next_read:
        octoperf.state(ids[0])
    clock.advance(1)
    with CaptureQueriesContext(connection) as after:
        octoperf.state(ids[0])

    writes = [q["sql"] for q in [*first_second, *next_read, *after] if q["sql"].lstrip().upper().startswith("UPDATE")]
    assert len(first_second) == 1  # the read of the fleet, nothing per poll
    assert len(writes) == 1  # the three claims, in one statement with the next read
    assert all(row.claimed_at is not None for row in Instance.objects.filter(pk__in=ids))


def test_a_static_ip_never_associated_is_shown_as_never_used_in_the_console_and_in_costs(
    octoperf, sandbox, admin_client, capsys
):
    used = octoperf.allocate()
    octoperf.associate(used, octoperf.create())
    never = octoperf.allocate()  # OctoPerf timed out on this one and allocated again
    sandbox.clock.advance(GRACE + 60)
    clock.advance(GRACE + 60)

    page = admin_client.get("/admin/staticips/staticip/", {"use": "never-used"}).content.decode()
    call_command("costs", "--since", (clock.now() - timedelta(days=1)).date().isoformat())
    text = capsys.readouterr().out
    call_command("costs", "--since", (clock.now() - timedelta(days=1)).date().isoformat(), "--json")
    report = json.loads(capsys.readouterr().out)

    assert never in page and used not in page
    assert "never used" in page
    assert "Never used: 1 static IPs allocated and never associated" in text
    assert report["unclaimed"]["static_ips"] == 1


def test_costs_counts_the_never_claimed_instances(octoperf, sandbox, settle, capsys):
    lost_create()
    octoperf.state(octoperf.create())
    past_the_grace(settle)

    call_command("costs", "--since", (clock.now() - timedelta(days=1)).date().isoformat(), "--json")
    report = json.loads(capsys.readouterr().out)

    assert report["unclaimed"]["instances"] == 1
    assert float(report["unclaimed"]["instances_eur"]) > 0


on_postgresql = pytest.mark.skipif(
    "postgresql" not in django_settings.DATABASES["default"]["ENGINE"],
    reason="parallel connections: PostgreSQL only (CI runs it)",
)


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_retry_sent_while_the_lost_create_is_still_running_leaves_one_server_billed(with_latency, settle):
    # OctoPerf's client gave up on the first create while Hetzner was still on it, and retried at once.
    lost, retried = succeeded(
        in_threads(2, lambda index: services.instance_create(region="fsn1", type="SMALL", user_data="x").id)
    )

    for _ in range(GRACE // 60 + 1):
        settle(60, full=True)
        services.instance_get_state(instance_id=retried)  # OctoPerf polls the one it got

    assert {s["name"] for s in with_latency.servers.values()} == {f"octoperf-{retried}"}
    assert Instance.objects.get(pk=lost).state == "terminated"
    assert Instance.objects.get(pk=retried).state == "running"
