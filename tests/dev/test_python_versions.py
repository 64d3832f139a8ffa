"""Python 3.11, 3.12 and 3.13: `make` installs the one lock into a virtualenv per version, and refuses
what is too old. (.ci/run installs the lock and runs a smoke subset on each version.)"""

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
THIS = f"{sys.version_info[0]}.{sys.version_info[1]}"


def pins(lock: str) -> dict[str, str]:
    """Return each package of a lock file with its pinned release and its hashes."""
    text = (ROOT / "requirements" / lock).read_text()
    return {
        match.group(1): match.group(2)
        for match in re.finditer(r"^([a-z0-9._-]+==\S+)((?: \\\n +--hash=\S+)+)", text, re.M)
    }


def make(*args: str) -> subprocess.CompletedProcess:
    # Not the variables of the `make test` running this (`make test PYTHON=…` hands them on in MAKEFLAGS).
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PYTHON", "VENV")
    }
    return subprocess.run(["make", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def make_dry_run(*args: str) -> subprocess.CompletedProcess:
    return make("-n", *args)


def test_pyproject_accepts_every_python_from_3_11():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    assert project["requires-python"] == ">=3.11"


def test_the_production_lock_pins_what_the_development_lock_pins():
    # CI installs dev.lock on each version: that proves base.lock only if it pins the same files.
    base, dev = pins("base.lock"), pins("dev.lock")

    assert base
    assert {name: dev.get(name) for name in base} == base


def test_make_keeps_a_virtualenv_per_python_version():
    assert ".venv/bin/python -m pytest" in make_dry_run("test").stdout
    assert f".venv-{THIS}/bin/python -m pytest" in make_dry_run("test", f"PYTHON={sys.executable}").stdout


def older_python() -> str | None:
    for candidate in ["python3.10", *map(str, Path.home().glob(".pyenv/versions/3.10.*/bin/python3.10"))]:
        if shutil.which(candidate) and subprocess.run([candidate, "-c", ""], capture_output=True).returncode == 0:
            return candidate
    return None


@pytest.mark.skipif(older_python() is None, reason="no Python 3.10 here")
def test_make_refuses_a_python_older_than_3_11(tmp_path):
    result = make("install", f"PYTHON={older_python()}", f"VENV={tmp_path / 'venv'}")

    assert result.returncode != 0
    assert "octoprovider needs Python 3.11 or newer" in result.stdout + result.stderr
    assert not (tmp_path / "venv").exists()
