"""The tree reads one way: ruff's formatter and linter, configured in pyproject.toml, find nothing."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", [["format", "--check"], ["check"]], ids=["format", "lint"])
def test_ruff_finds_nothing(command):
    result = subprocess.run([sys.executable, "-m", "ruff", *command, "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, f"`ruff {' '.join(command)} .` (run `ruff format .` / `ruff check --fix .`):\n" + (
        result.stdout[-4000:] + result.stderr[-2000:]
    )
