"""With LOG_FORMAT=json every line the processes write is one JSON object: log records, what commands
print (the reconciler's summaries, migrate's progress), gunicorn's own lines, and start-up errors."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def environment(tmp_path: Path, **extra: str) -> dict:
    env = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
    env.update(
        DJANGO_SETTINGS_MODULE="octoprovider.settings",
        DEBUG="true",
        LOG_FORMAT="json",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        HCLOUD_SANDBOX_FILE=str(tmp_path / "sandbox.json"),
    )
    env.update(extra)
    return env


def manage(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_every_line_of_migrate_and_of_reconcile_is_json(tmp_path):
    env = environment(tmp_path)

    migrate = manage(env, "migrate", "--noinput")
    reconcile = manage(env, "reconcile", "--verbosity", "2")

    assert migrate.returncode == 0 and reconcile.returncode == 0, migrate.stderr + reconcile.stderr
    lines = json_lines(migrate.stdout + migrate.stderr + reconcile.stdout + reconcile.stderr)
    assert any("Applying instances.0001_initial" in line["message"] for line in lines)
    assert any(line["message"].startswith("full pass:") for line in lines)
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)


def test_a_database_that_does_not_exist_is_one_json_line_naming_database_url(tmp_path):
    env = environment(tmp_path, DATABASE_URL="postgres://postgres@127.0.0.1:5432/wt_firstcontact_does_not_exist")

    result = manage(env, "migrate")

    assert result.returncode == 1
    [line] = json_lines(result.stdout + result.stderr)
    assert line["level"] == "ERROR" and "DATABASE_URL" in line["message"]


def test_a_database_that_does_not_exist_is_one_plain_line_in_text_format(tmp_path):
    env = environment(
        tmp_path,
        LOG_FORMAT="text",
        DATABASE_URL="postgres://nobody:s3cret@127.0.0.1:5432/wt_firstcontact_does_not_exist",
    )

    result = manage(env, "migrate")

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "DATABASE_URL" in result.stderr
    assert "s3cret" not in result.stderr and "Traceback" not in result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_every_line_of_gunicorn_is_json(tmp_path):
    env = environment(tmp_path, PORT=str(free_port()), WEB_CONCURRENCY="1")
    assert manage(env, "migrate", "--noinput").returncode == 0
    log = tmp_path / "gunicorn.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "octoprovider.wsgi", "--config", "gunicorn.conf.py"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{env['PORT']}/octoperf/dev-token/instances/i-0/state"):
                    pass
            except urllib.error.HTTPError:
                break  # 404: served
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    lines = json_lines(log.read_text())
    assert any("Booting worker" in line["message"] for line in lines)
    assert any(line["logger"] == "octoprovider.requests" for line in lines)
