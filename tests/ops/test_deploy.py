"""Production settings as docs/deployment.md describes them pass `check --deploy` without a warning."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

# The production environment of docs/deployment.md, with throw-away secrets.
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "k" * 20 + "0123456789abcdefghijKLMNOPQRSTUVWXYZ",
    "ALLOWED_HOSTS": "octoprovider.example.com",
    "DATABASE_URL": "postgres://octoprovider:password@127.0.0.1:5432/octoprovider",
    "HCLOUD_TOKEN": "h" * 64,
    # Not in the documented settings: no test may reach the real Hetzner API (the start-up check asks it).
    "HCLOUD_ENDPOINT": "http://127.0.0.1:9/v1",
    "HCLOUD_SSH_KEYS": "ops",
    "OCTOPERF_API_TOKENS": "t" * 43,
    "CSRF_TRUSTED_ORIGINS": "https://octoprovider.example.com",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "METRICS_TOKEN": "m" * 43,
    "LOG_FORMAT": "json",
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    clean.update({"DJANGO_SETTINGS_MODULE": "octoprovider.settings", **env})
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


def test_check_deploy_is_silent_with_the_documented_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_warns_when_hsts_is_left_out():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **{**PRODUCTION, "SECURE_HSTS_SECONDS": "0"})

    assert result.returncode != 0
    assert "security.W004" in result.stderr


def test_a_bad_log_format_stops_start_up_naming_it():
    result = manage("check", DEBUG="true", DATABASE_URL="sqlite:///:memory:", LOG_FORMAT="xml")

    assert result.returncode != 0
    assert "LOG_FORMAT" in result.stderr
    assert "Traceback" not in result.stderr
