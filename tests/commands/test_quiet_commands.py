"""A command's output is its answer: only the commands that need Hetzner call it, and none prints log lines.

Each runs as an operator runs it (`manage.py …`, its own process) against a throw-away database and the
simulated cloud's file, whose request log counts every request any process sent it.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def manage(tmp_path):
    sandbox_file = tmp_path / "hetzner-sandbox.json"
    env = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
    env.update(
        DEBUG="true",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        HCLOUD_SANDBOX_FILE=str(sandbox_file),
        DJANGO_SUPERUSER_USERNAME="ops",
        DJANGO_SUPERUSER_EMAIL="ops@example.com",
        DJANGO_SUPERUSER_PASSWORD="a long passphrase",
    )

    def run(*args: str) -> tuple[subprocess.CompletedProcess, int]:
        """Run one command; return it and how many requests the simulated Hetzner answered meanwhile."""
        before = hetzner_requests(sandbox_file)
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        return result, hetzner_requests(sandbox_file) - before

    result, _ = run("migrate", "--noinput", "--verbosity", "0")
    assert result.returncode == 0, result.stderr
    return run


def hetzner_requests(sandbox_file: Path) -> int:
    if not sandbox_file.exists():
        return 0
    return json.loads(sandbox_file.read_text())["request_count"]


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        (["createsuperuser", "--noinput"], "Superuser created successfully."),
        (["costs"], "0 runs since"),
        (["static-ips"], "No static IP is allocated."),
        (["check"], "System check identified no issues"),
    ],
    ids=["createsuperuser", "costs", "static-ips", "check"],
)
def test_a_command_that_needs_no_hetzner_calls_none_and_prints_only_its_answer(manage, command, answer):
    result, requests = manage(*command)

    assert result.returncode == 0, result.stderr
    assert answer in result.stdout
    assert result.stderr == ""
    assert requests == 0


def test_the_reconciler_still_asks_hetzner_whether_the_settings_exist_at_its_start(manage):
    result, requests = manage("reconcile", "--verbosity", "0")

    assert result.returncode == 0, result.stderr
    assert "GET /images" in result.stderr  # the check of HCLOUD_IMAGE, logged as the reconciler logs
    assert requests >= 2  # /images, then the pass's listing


def test_costs_asks_hetzner_its_prices_only_when_it_has_a_run_to_price_and_logs_nothing(manage):
    result, _ = manage(
        "shell",
        "-c",
        "from instances.models import Instance; Instance.objects.create(status='running', region='fsn1', "
        "location='fsn1', type='SMALL', server_type='cx23', image='debian-12', hetzner_id=42)",
    )
    assert result.returncode == 0, result.stderr

    result, requests = manage("costs")

    assert result.returncode == 0, result.stderr
    assert "1 runs since" in result.stdout
    assert requests == 1  # GET /pricing
    assert result.stderr == ""  # not the INFO line of that request
