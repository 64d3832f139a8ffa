"""One version, pyproject.toml's, wherever a user may read it for a bug report: `manage.py version`,
`/healthz`, the console's footer, the User-Agent sent to Hetzner, and the newest release of CHANGELOG.md."""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from django.test import Client

import octoprovider

ROOT = Path(__file__).resolve().parent.parent
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_the_package_version_is_pyprojects():
    assert re.fullmatch(r"\d+\.\d+\.\d+", VERSION)
    assert octoprovider.__version__ == VERSION


def test_manage_py_version_prints_octoproviders_version_even_with_no_setting_right():
    clean = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
    clean.update(DEBUG="false", DJANGO_SETTINGS_MODULE="octoprovider.settings")  # no SECRET_KEY: start-up would stop

    result = subprocess.run(
        [sys.executable, "manage.py", "version"], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"octoprovider {VERSION} (Django ")


def test_healthz_says_the_version(db):
    assert Client().get("/healthz").json()["version"] == VERSION


def test_every_console_page_shows_the_version_in_its_footer(admin_client, client):
    for page in (admin_client.get("/admin/"), client.get("/admin/login/")):
        assert f'<div class="version">octoprovider {VERSION}</div>' in page.content.decode()


def test_the_changelogs_newest_release_is_this_version():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", changelog, re.M)

    assert releases and releases[0] == VERSION
