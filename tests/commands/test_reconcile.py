import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection

from instances.models import Instance
from octoprovider.hetzner.deployment import deployment_label_refusal
from octoprovider.hetzner.models import DeploymentLabel
from octoprovider.operations.models import ReconcilerRun

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent.parent


def test_one_pass_records_states_and_says_what_it_did(octoperf, sandbox, capsys):
    instance_id = octoperf.create()
    sandbox.clock.advance(60)

    call_command("reconcile")

    assert Instance.objects.get(pk=instance_id).status == "running"
    assert "1 observed, 1 changed" in capsys.readouterr().out


def test_a_one_shot_pass_waits_out_a_delete_hetzner_refused_as_locked(octoperf, sandbox, settle, capsys):
    instance_id = octoperf.create()
    settle(60)
    octoperf.reboot(instance_id)
    octoperf.delete(instance_id)  # Hetzner answers `locked` while the reboot runs (5 s)
    started = sandbox.clock.now()

    call_command("reconcile")

    assert [server["status"] for server in sandbox.servers.values()] == ["deleting"]
    assert sandbox.clock.now() - started <= sandbox.timings["reboot"] + 2  # one REFRESH_INTERVAL at most
    assert "locked by running Hetzner actions: delete" in capsys.readouterr().out


def test_a_one_shot_pass_waits_no_longer_than_wait_and_then_fails(octoperf, sandbox):
    instance_id = octoperf.create()
    octoperf.delete(instance_id)  # Hetzner answers `locked` while the server boots (15 s)
    started, before = sandbox.clock.now(), len(sandbox.requests)

    with pytest.raises(CommandError, match="still locked by running Hetzner actions after 6 s"):
        call_command("reconcile", "--wait", "6")

    path = f"/servers/{Instance.objects.get(pk=instance_id).hetzner_id}"
    tries = [r for r in sandbox.requests[before:] if r.method == "DELETE" and r.path == path]
    # A pass every --interval (REFRESH_INTERVAL, 2 s) sent it again, refused as locked each time; one at 6 s
    # would end past --wait.
    assert [r.at - started for r in tries] == [0, 2, 4]
    assert {r.status for r in tries} == {423}
    assert sandbox.clock.now() - started <= 6
    assert [server["status"] for server in sandbox.servers.values()] != ["deleting"]


def test_a_one_shot_pass_fails_when_hetzner_cannot_be_reached(octoperf, sandbox, capsys):
    octoperf.create()
    sandbox.inject_fault("GET", r"/servers", timeout=True, times=10)

    with pytest.raises(CommandError, match="Hetzner did not answer in time"):
        call_command("reconcile")


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> Path:
    """A migrated SQLite database for commands run as processes, made once per module (copied by each test)."""
    path = tmp_path_factory.mktemp("cli") / "db.sqlite3"
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update(DEBUG="true", DATABASE_URL=f"sqlite:///{path}")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
    return path


def cli_env(tmp_path, migrated: Path, **extra) -> dict:
    shutil.copy(migrated, tmp_path / "db.sqlite3")
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update(
        DEBUG="true",
        PYTHONUNBUFFERED="1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        HCLOUD_SANDBOX_FILE=str(tmp_path / "sandbox.json"),
        **extra,
    )
    return env


def test_reconcile_and_cleanup_exit_non_zero_when_hetzner_is_unreachable(tmp_path, migrated):
    # Nothing listens on the discard port: the connection is refused at once, as for a Hetzner outage.
    env = cli_env(tmp_path, migrated, HCLOUD_TOKEN="unreachable-test-token", HCLOUD_ENDPOINT="http://127.0.0.1:9/v1")

    for command in ("reconcile", "cleanup"):
        run = subprocess.run(
            [sys.executable, "manage.py", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )

        assert run.returncode == 1, (command, run.stdout, run.stderr)
        assert "Hetzner could not be reached" in run.stderr
        assert "unreachable-test-token" not in run.stdout + run.stderr


def test_the_loop_stops_cleanly_on_sigterm(tmp_path, migrated):
    env = cli_env(tmp_path, migrated)
    loop = subprocess.Popen(
        [sys.executable, "manage.py", "reconcile", "--loop", "--interval", "0.2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "simulated cloud" in loop.stdout.readline()
        loop.send_signal(signal.SIGTERM)
        out, err = loop.communicate(timeout=30)
    finally:
        loop.kill()

    assert loop.returncode == 0, err
    assert "Stopped." in out


# --- the database goes away ---------------------------------------------------------------------


class Outage:
    """Fail the next `queries` queries as a database that went away does; stop the loop after a pass recorded."""

    def __init__(self, queries: int):
        self.left = queries
        self.failed = 0

    def __call__(self, execute, sql, params, many, context):
        if DeploymentLabel._meta.db_table in sql:
            return execute(sql, params, many, context)  # the label check at start, before the first pass
        if self.left > 0:
            self.left -= 1
            self.failed += 1
            raise OperationalError("server closed the connection unexpectedly")
        result = execute(sql, params, many, context)
        if ReconcilerRun._meta.db_table in sql and sql.lstrip().upper().startswith(("INSERT", "UPDATE")):
            os.kill(os.getpid(), signal.SIGTERM)  # a pass went through: stop the loop
        return result


@pytest.fixture
def restore_signals():
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.mark.django_db(transaction=True)
def test_the_loop_survives_a_database_outage_backs_off_and_carries_on(octoperf, sandbox, capsys, restore_signals):
    instance_id = octoperf.create()
    sandbox.clock.advance(60)
    outage = Outage(queries=3)
    deployment_label_refusal()  # recorded by an earlier start: the check at start is one SELECT, let through

    with connection.execute_wrapper(outage):
        call_command("reconcile", "--loop", "--interval", "0.01")

    out, err = capsys.readouterr()
    assert outage.failed == 3
    assert err.count("The database is unavailable (OperationalError") == 3
    assert "next try in 0.02 s" in err and "next try in 0.08 s" in err  # doubling each time
    assert "The database is back after 3 failed passes." in out
    assert "Stopped." in out
    assert Instance.objects.get(pk=instance_id).status == "running"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a server-side disconnect: PostgreSQL only")
@pytest.mark.django_db(transaction=True)
def test_the_loop_reconnects_after_postgresql_killed_its_connection(octoperf, sandbox, capsys, restore_signals):
    import psycopg

    instance_id = octoperf.create()
    sandbox.clock.advance(60)
    params = connection.get_connection_params()
    # From another connection, end this test's own (only its own test database is touched).
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )

    with connection.execute_wrapper(Outage(queries=0)):
        call_command("reconcile", "--loop", "--interval", "0.01")

    out, err = capsys.readouterr()
    assert "The database is unavailable" in err
    assert "The database is back after 1 failed passes." in out
    assert Instance.objects.get(pk=instance_id).status == "running"


class StopAt:
    """Send the loop SIGTERM when a pass is recorded once `seconds` of simulated time have passed (or `writes`)."""

    def __init__(self, *, seconds: float, writes: int):
        from octoprovider.core import clock

        self.clock = clock
        self.until = clock.now().timestamp() + seconds
        self.writes_left = writes

    def __call__(self, execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if ReconcilerRun._meta.db_table in sql and sql.lstrip().upper().startswith(("INSERT", "UPDATE")):
            self.writes_left -= 1
            if self.writes_left <= 0 or self.clock.now().timestamp() >= self.until:
                os.kill(os.getpid(), signal.SIGTERM)
        return result


def test_the_loop_waits_and_sweeps_on_the_service_clock(octoperf, sandbox, capsys, restore_signals):
    octoperf.create()
    started, wall = sandbox.clock.now(), time.monotonic()

    with connection.execute_wrapper(StopAt(seconds=60, writes=40)):
        call_command("reconcile", "--loop", "--interval", "10", "--sweep-interval", "30", "-v", "2")

    passes = [line.split()[0] for line in capsys.readouterr().out.splitlines() if " pass: " in line]
    # A full pass every 30 s of simulated time, quick ones every 10 s between: a minute that took no real one.
    assert passes == ["full", "quick", "quick", "full", "quick", "quick", "full"]
    assert sandbox.clock.now() - started == pytest.approx(60)
    assert time.monotonic() - wall < 30


def test_one_pass_fails_with_a_clear_message_when_the_database_is_down(octoperf, sandbox):
    with (
        connection.execute_wrapper(Outage(queries=10**6)),
        pytest.raises(CommandError, match="The database is unavailable"),
    ):
        call_command("reconcile")


# --- Hetzner unreachable, or answering nonsense ---------------------------------------------------


class StopAfter:
    """Send the loop SIGTERM once `seconds` of simulated time have passed, or after `tries` Hetzner tries."""

    def __init__(self, *, seconds: float, tries: int):
        from octoprovider.core import clock

        self.clock = clock
        self.until = clock.now().timestamp() + seconds
        self.tries_left = tries
        self.tries = 0

    def __call__(self, *args) -> None:
        self.tries += 1
        self.tries_left -= 1
        if self.tries_left <= 0 or self.clock.now().timestamp() >= self.until:
            os.kill(os.getpid(), signal.SIGTERM)


def warning_lines(caplog, err: str) -> int:
    """What an operator reads: warning log records and the loop's own lines on stderr."""
    return len([r for r in caplog.records if r.levelno >= logging.WARNING]) + len(err.splitlines())


@pytest.fixture
def hetzner_refuses_connections(settings, sandbox):
    """The production client, its endpoint a local port nobody listens on: every connection is refused."""
    from octoprovider import hetzner

    settings.HETZNER_SANDBOX = False
    settings.HCLOUD_TOKEN = "unreachable-test-token"
    settings.HCLOUD_ENDPOINT = "http://127.0.0.1:9/v1"
    hetzner.use_sandbox(None)


def test_the_loop_backs_off_while_hetzner_is_unreachable(
    octoperf, hetzner_refuses_connections, caplog, capsys, restore_signals
):
    from octoprovider import hetzner

    # Booting: every pass, quick or full, asks Hetzner about it.
    Instance.objects.create(
        region="fsn1",
        location="fsn1",
        type="SMALL",
        server_type="cx23",
        image="docker-ce",
        status="pending",
        hetzner_id=42,
    )
    # Five minutes of simulated time; on a loop that does not back off, 100 tries stop it sooner.
    stop = StopAfter(seconds=300, tries=100)
    hetzner.add_failure_hook(stop)
    caplog.set_level(logging.WARNING)

    call_command("reconcile", "--loop", "--interval", "2")

    out, err = capsys.readouterr()
    assert stop.tries <= 12  # 4, 8, 16, 32 s, then once a minute
    assert warning_lines(caplog, err) <= 40
    assert "next pass in 4 s" in err and "next pass in 60 s" in err
    assert "Stopped." in out


def test_the_loop_waits_at_interval_again_once_hetzner_answers(octoperf, sandbox, capsys, restore_signals):
    from octoprovider import hetzner

    octoperf.create()
    sandbox.inject_fault("GET", r"/servers", timeout=True, times=3 * 3)  # three passes, hcloud's retries included
    stop = StopAfter(seconds=10**6, tries=1)  # Hetzner's first answer ends the loop after its pass
    hetzner.add_response_hook(stop)

    call_command("reconcile", "--loop", "--interval", "2")

    out, err = capsys.readouterr()
    assert "next pass in 4 s" in err and "next pass in 16 s" in err
    assert "Hetzner answers again after 3 failed passes." in out


def test_the_loop_survives_listings_it_cannot_read_and_counts_them(octoperf, sandbox, capsys, restore_signals):
    from prometheus_client import REGISTRY

    from octoprovider import hetzner

    instance_id = octoperf.create()
    sandbox.clock.advance(60)
    listings = []

    def answer_without_servers(response, *args, **kwargs):
        # Hetzner's 200 without `servers`, three times; then its usual answer.
        if response.request.method == "GET" and response.request.path_url.startswith("/v1/servers?"):
            listings.append(response)
            if len(listings) <= 3:
                response._content = b'{"meta": {"pagination": {"next_page": null}}}'
            elif len(listings) >= 5:
                os.kill(os.getpid(), signal.SIGTERM)

    hetzner.add_response_hook(answer_without_servers)
    errors_before = REGISTRY.get_sample_value("octoprovider_reconcile_errors_total") or 0

    call_command("reconcile", "--loop", "--interval", "0.5")

    out, err = capsys.readouterr()
    assert err.count("Hetzner's answer could not be read") == 3
    assert REGISTRY.get_sample_value("octoprovider_reconcile_errors_total") - errors_before == 3
    assert "Stopped." in out
    assert Instance.objects.get(pk=instance_id).status == "running"
