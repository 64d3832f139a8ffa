"""gunicorn with a missing or wrong setting stops in one line, as `manage.py` does, before any worker."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
GOOD_SECRET = "s" * 20 + "0123456789abcdefghijKLMNOPQRSTUVWXYZ"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gunicorn(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
    clean.update(
        DEBUG="false",
        HCLOUD_TOKEN="h" * 64,
        HCLOUD_ENDPOINT="http://127.0.0.1:9/v1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        PORT=str(free_port()),
        XDG_RUNTIME_DIR=str(tmp_path),
    )
    clean.update(env)
    return subprocess.run(
        [str(GUNICORN), "octoprovider.wsgi", "--config", "gunicorn.conf.py"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "SECRET_KEY"),
        ({"SECRET_KEY": GOOD_SECRET, "DATABASE_URL": "mysql://octoprovider@127.0.0.1/octoprovider"}, "DATABASE_URL"),
    ],
    ids=["secret key missing", "database url of another scheme"],
)
def test_gunicorn_with_a_bad_setting_exits_with_one_line_naming_it(tmp_path, env, named):
    result = gunicorn(tmp_path, **env)
    output = result.stdout + result.stderr

    assert result.returncode != 0
    assert "Traceback" not in output
    # gunicorn's own "Starting gunicorn" line, then ours.
    errors = [line for line in output.splitlines() if "Starting gunicorn" not in line]
    assert len(errors) == 1, output
    assert "[ERROR] octoprovider: configuration error: " in errors[0] and named in errors[0]


def test_the_line_is_json_with_log_format_json(tmp_path):
    result = gunicorn(tmp_path, LOG_FORMAT="json")

    [error] = [line for line in result.stderr.splitlines() if "Starting gunicorn" not in line]
    assert error.startswith("{") and '"level": "ERROR"' in error and "SECRET_KEY" in error
