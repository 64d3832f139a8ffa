import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from instances.models import Instance

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent.parent


def test_one_pass_records_states_and_says_what_it_did(octoperf, sandbox, capsys):
    instance_id = octoperf.create()
    sandbox.clock.advance(60)

    call_command("reconcile")

    assert Instance.objects.get(pk=instance_id).status == "running"
    assert "1 observed, 1 changed" in capsys.readouterr().out


def test_the_loop_stops_cleanly_on_sigterm(tmp_path):
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update(
        DEBUG="true",
        PYTHONUNBUFFERED="1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        HCLOUD_SANDBOX_FILE=str(tmp_path / "sandbox.json"),
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
    loop = subprocess.Popen(
        [sys.executable, "manage.py", "reconcile", "--loop", "--interval", "0.2"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert "simulated cloud" in loop.stdout.readline()
        loop.send_signal(signal.SIGTERM)
        out, err = loop.communicate(timeout=30)
    finally:
        loop.kill()

    assert loop.returncode == 0, err
    assert "Stopped." in out
