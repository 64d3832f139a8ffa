"""`manage.py preflight`: before the units are enabled, one command says everything that is wrong, one
line per problem and a non-zero exit, and shows the Hetzner project reached and what the caps can bill."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import responses
from django.core.management import CommandError, call_command
from urllib3.exceptions import MaxRetryError, NewConnectionError

from octoprovider import hetzner
from tests.admin.test_dashboard import gross_hourly
from tests.ops.test_deploy import PRODUCTION

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_ENV = ROOT / "deploy" / "octoprovider.env.example"
HCLOUD_TOKEN = "h" * 64

pytestmark = pytest.mark.django_db


@pytest.fixture
def production(settings, sandbox):
    """docs/deployment.md's production settings, with a Hetzner project that has what they name."""
    settings.DEBUG = False
    settings.SECRET_KEY = "k" * 20 + "0123456789abcdefghijKLMNOPQRSTUVWXYZ"
    settings.OCTOPERF_API_TOKENS = ["t" * 43]
    settings.METRICS_TOKEN = "m" * 43
    settings.ALLOWED_HOSTS = ["octoprovider.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    settings.HCLOUD_TOKEN = HCLOUD_TOKEN
    settings.HETZNER_SANDBOX = False
    settings.HCLOUD_SSH_KEYS = ["ops"]
    settings.HCLOUD_FIREWALLS = ["agents"]
    settings.ALLOWED_REGIONS = ["fsn1"]
    settings.ALLOWED_TYPES = ["SMALL"]
    settings.MAX_INSTANCES = 10
    settings.MAX_STATIC_IPS = 2
    sandbox.token = HCLOUD_TOKEN  # the sandbox refuses any other token
    sandbox.add_ssh_key("ops")
    sandbox.add_firewall("agents")
    hetzner.use_sandbox(sandbox)  # a client built with HCLOUD_TOKEN
    return settings


def preflight() -> tuple[int, str, str]:
    """Run the command as an operator would; return (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("preflight", stdout=out, stderr=err)
    except CommandError as exc:
        err.write(f"CommandError: {exc}\n")
        return 1, out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def problems(stderr: str) -> list[str]:
    return [line.removeprefix("problem: ") for line in stderr.splitlines() if line.startswith("problem: ")]


def test_a_good_configuration_passes_and_shows_the_project_and_what_the_caps_can_bill(production, sandbox):
    for name, labels in (("ours", hetzner.ownership_labels("i-0123456789abcdef0")), ("someone-elses", {})):
        hetzner.create_server(
            name=name,
            server_type="cx23",
            image="docker-ce",
            location="fsn1",
            user_data="",
            labels=labels,
            ssh_keys=[],
            firewalls=[],
        )

    status, out, err = preflight()

    print(out)
    assert (status, err) == (0, ""), err
    assert "Hetzner project reached: 2 servers (1 of this deployment's), " in out
    remaining = sandbox.rate_limit_remaining
    assert f"{remaining} of 3600 API requests left this hour" in out
    per_instance = gross_hourly(sandbox, server_type="cpx22") + gross_hourly(sandbox, ipv4=True)
    at_caps = 10 * per_instance + 2 * gross_hourly(sandbox, ipv4=True)
    assert (
        f"Billed at the caps: at most {at_caps:.4f} EUR an hour (VAT included): MAX_INSTANCES=10 x (cpx22 in fsn1"
        in out
    )
    assert out.rstrip().endswith("No problems: the units can be enabled.")


def test_each_problem_is_one_line_and_the_exit_is_non_zero(production, sandbox):
    production.DEBUG = True
    production.SECRET_KEY = "short-but-not-a-placeholder"
    production.OCTOPERF_API_TOKENS = ["t" * 43, "change-me-python-c-import-secrets-print-secrets-token_urlsafe-32"]
    production.METRICS_TOKEN = "m" * 31
    production.HCLOUD_SSH_KEYS = ["ops", "gone"]
    production.HCLOUD_FIREWALLS = ["nowhere"]
    production.HCLOUD_IMAGE = "no-such-image"
    production.ALLOWED_REGIONS = ["fsn1", "mars1"]

    status, out, err = preflight()

    assert status == 1
    assert problems(err) == [
        "SECRET_KEY is shorter than 50 characters: make it longer",
        "METRICS_TOKEN is shorter than 32 characters: make it longer",
        "OCTOPERF_API_TOKENS (token 2) is the example's change-me placeholder: replace it with 32+ random characters",
        "DEBUG is on: error pages show settings and code to anyone; set DEBUG=false",
        "security.W009: Your SECRET_KEY has less than 50 characters, less than 5 unique characters, or it's "
        "prefixed with 'django-insecure-' indicating that it was generated automatically by Django. Please "
        "generate a long and random value, otherwise many of Django's security-critical features will be "
        "vulnerable to attack.",
        "security.W018: You should not have DEBUG set to True in deployment.",
        "ALLOWED_REGIONS names 'mars1', which is not a Hetzner location or region alias "
        "(known: ash, fsn1, hel1, hil, nbg1, sin)",
        "HCLOUD_SSH_KEYS names 'gone', which is not an SSH key of the Hetzner project",
        "HCLOUD_FIREWALLS names 'nowhere', which is not a firewall of the Hetzner project",
        "HCLOUD_IMAGE is 'no-such-image', which is not an image Hetzner offers this project",
    ]
    assert err.splitlines()[-1] == "CommandError: 10 problems: fix them, then run preflight again"
    assert "Hetzner project reached" in out  # the figures are shown all the same


def test_a_token_hetzner_refuses_is_a_problem(production, sandbox):
    sandbox.token = "the-projects-real-token"

    status, out, err = preflight()

    assert status == 1
    assert problems(err) == ["Hetzner refuses HCLOUD_TOKEN (unauthorized): set a read & write API token of the project"]
    assert "Hetzner project: not asked (it did not accept the token)" in out


@responses.activate
def test_hetzner_unreachable_is_a_problem(production):
    production.HCLOUD_ENDPOINT = "https://api.hetzner.cloud/v1"
    hetzner.use_sandbox(None)  # the production client, with `responses` standing in for the network
    # What requests raises when nothing listens: the request never left (told apart from an answer lost).
    refused = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
    responses.get(
        "https://api.hetzner.cloud/v1/locations",
        body=requests.ConnectionError(MaxRetryError(None, "/v1/locations", refused)),
    )

    status, out, err = preflight()

    assert status == 1
    assert problems(err) == [
        "Hetzner could not be asked whether it accepts HCLOUD_TOKEN: Hetzner could not be reached (check HCLOUD_TOKEN)."
    ]
    assert "Hetzner project: not asked (it could not be reached)" in out


def test_a_database_not_migrated_is_a_problem_and_hetzner_is_not_asked(tmp_path):
    env = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
    env.update(
        PRODUCTION,
        DJANGO_SETTINGS_MODULE="octoprovider.settings",
        LOG_FORMAT="text",
        DATABASE_URL=f"sqlite:///{tmp_path / 'new.sqlite3'}",
    )

    result = subprocess.run(
        [sys.executable, "manage.py", "preflight"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 1
    [problem] = problems(result.stderr)
    assert problem.startswith("the database is not migrated: ") and problem.endswith("(manage.py migrate)")
    assert "Hetzner project: not asked (the database cannot be used yet)" in result.stdout


def example_environment(tmp_path: Path) -> dict:
    env = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
    for line in EXAMPLE_ENV.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    # Not in the example: no test may reach the real Hetzner API (the start-up checks would ask it).
    env.update(DJANGO_SETTINGS_MODULE="octoprovider.settings", HCLOUD_ENDPOINT="http://127.0.0.1:9/v1")
    return env


def test_the_example_env_files_values_give_one_line_per_problem(tmp_path):
    # As the operator who copied the example and forgot sudoedit: its DATABASE_URL (a role with the
    # password change-me) cannot log in either.
    result = subprocess.run(
        [sys.executable, "manage.py", "preflight"],
        cwd=ROOT,
        env=example_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )

    messages = [json.loads(line)["message"] for line in (result.stdout + result.stderr).splitlines()]
    print("\n".join(messages))
    assert result.returncode == 1
    found = [message.removeprefix("problem: ") for message in messages if message.startswith("problem: ")]
    assert found[:5] == [
        "SECRET_KEY is the example's change-me placeholder: replace it with 50+ random characters",
        "METRICS_TOKEN is the example's change-me placeholder: replace it with 32+ random characters",
        "OCTOPERF_API_TOKENS (token 1) is the example's change-me placeholder: replace it with 32+ random characters",
        "HCLOUD_TOKEN is the example's change-me placeholder: set a read & write API token of the Hetzner project",
        "DATABASE_URL's password is the example's change-me placeholder",
    ]
    assert len(found) == 6 and found[5].startswith("the database of DATABASE_URL cannot be used: ")
    assert "Hetzner project: not asked (the database cannot be used yet)" in messages
    assert messages[-1] == "CommandError: 6 problems: fix them, then run preflight again"
    assert "change-me-" not in result.stdout + result.stderr  # secrets are named, never shown
