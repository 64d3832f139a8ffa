"""OCTOPROVIDER_DEPLOYMENT changed under a running fleet: every process refuses, until the fleet is relabelled."""

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from instances.models import Instance
from octoprovider.checks import deployment_label
from staticips.models import StaticIP
from tests.ops.test_log_format import environment, manage

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def fleet(octoperf, settle, associated):
    """Two running instances, one holding a static IP, and a free static IP, all under the label `default`."""
    call_command("reconcile", "--wait", "0")  # the first start records the label
    octoperf.create()
    octoperf.allocate()
    settle(60, full=True)
    return list(Instance.objects.exclude(status="terminated").values_list("pk", flat=True))


def test_reconcile_and_cleanup_refuse_a_changed_label_and_mark_nothing_terminated(fleet, sandbox, settings):
    settings.OCTOPROVIDER_DEPLOYMENT = "blue"
    mutations = len(sandbox.mutation_requests())

    with pytest.raises(CommandError, match="relabel-deployment --to blue"):
        call_command("reconcile", "--wait", "0")
    with pytest.raises(CommandError, match="labelled octoprovider-deployment=default"):
        call_command("cleanup", "--grace", "0")

    assert set(Instance.objects.filter(pk__in=fleet).values_list("status", flat=True)) == {"running"}
    assert len(sandbox.servers) == 2
    assert len(sandbox.mutation_requests()) == mutations


def test_the_system_check_names_both_labels_and_the_way_out(fleet, settings):
    assert deployment_label(None) == []
    settings.OCTOPROVIDER_DEPLOYMENT = "blue"

    [error] = deployment_label(None)

    assert error.id == "octoprovider.E010"
    assert "'blue'" in error.msg and "octoprovider-deployment=default" in error.msg


def test_a_dry_run_relabels_nothing(fleet, sandbox, settings, capsys):
    settings.OCTOPROVIDER_DEPLOYMENT = "blue"

    call_command("relabel-deployment", "--to", "blue", "--dry-run")

    assert "2 servers and 2 Primary IPs would move from 'default' to 'blue'" in capsys.readouterr().out
    assert {server["labels"]["octoprovider-deployment"] for server in sandbox.servers.values()} == {"default"}
    with pytest.raises(CommandError):
        call_command("reconcile", "--wait", "0")


def test_relabelling_moves_servers_and_static_ips_and_the_fleet_runs_on_under_the_new_label(
    fleet, sandbox, settings, octoperf, settle
):
    settings.OCTOPROVIDER_DEPLOYMENT = "blue"

    call_command("relabel-deployment", "--to", "blue")
    call_command("reconcile", "--wait", "0")
    call_command("cleanup", "--grace", "0")
    settle(60, full=True)

    assert {server["labels"]["octoprovider-deployment"] for server in sandbox.servers.values()} == {"blue"}
    static = [ip for ip in sandbox.primary_ips.values() if ip["labels"].get("managed-by") == "octoprovider"]
    assert len(static) == 2 and {ip["labels"]["octoprovider-deployment"] for ip in static} == {"blue"}
    assert set(Instance.objects.filter(pk__in=fleet).values_list("status", flat=True)) == {"running"}
    assert StaticIP.objects.filter(status="allocated").count() == 2
    assert all(octoperf.state(instance_id) == "running" for instance_id in fleet)


def test_relabelling_refuses_a_label_hetzner_would_refuse(fleet):
    with pytest.raises(CommandError, match="valid Hetzner label value"):
        call_command("relabel-deployment", "--to", "no spaces")


def test_migrate_works_on_an_empty_database_and_check_and_the_web_process_refuse_a_changed_label(tmp_path):
    env = environment(tmp_path, LOG_FORMAT="text")
    assert manage(env, "migrate", "--noinput").returncode == 0
    assert manage(env, "check").returncode == 0  # the first start records `default`

    env["OCTOPROVIDER_DEPLOYMENT"] = "blue"
    check = manage(env, "check")
    web = subprocess.run(
        [sys.executable, "-c", "import octoprovider.wsgi"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert check.returncode != 0 and "octoprovider.E010" in check.stderr
    assert web.returncode != 0 and "relabel-deployment --to blue" in web.stderr


def test_relabelling_from_a_label_never_recorded_moves_what_carries_it(octoperf, settle, sandbox, settings):
    # A database that predates the record, upgraded with the label changed at the same time.
    octoperf.create()
    settle(60)
    settings.OCTOPROVIDER_DEPLOYMENT = "blue"

    call_command("relabel-deployment", "--from", "default", "--to", "blue")

    assert {server["labels"]["octoprovider-deployment"] for server in sandbox.servers.values()} == {"blue"}
    call_command("reconcile", "--wait", "0")
