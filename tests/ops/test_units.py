"""The systemd units of deploy/ start, each on its own, on a server set up as docs/deployment.md says.

systemd cannot start them in a container, so this checks what makes a unit fail at start: systemd's
own verdict on each file (`systemd-analyze verify`, where it is installed), and every user, directory
and program a unit names against what deployment.md creates.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
DEPLOY = ROOT / "deploy"
DEPLOYMENT = (ROOT / "docs" / "deployment.md").read_text()
UNITS = sorted([*DEPLOY.glob("*.service"), *DEPLOY.glob("*.timer")])
SERVICES = [unit for unit in UNITS if unit.suffix == ".service"]
CODE = "/opt/octoprovider"


def directives(unit: Path) -> dict[str, list[str]]:
    """Return each key of the unit file with its values, in order (a key may be given several times)."""
    found: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def environment(unit: Path) -> dict[str, str]:
    return dict(value.split("=", 1) for value in directives(unit).get("Environment", []))


def runtime_directories(unit: Path) -> list[str]:
    return [f"/run/{name}" for value in directives(unit).get("RuntimeDirectory", []) for name in value.split()]


def made_by_unit(unit: Path, path: str) -> bool:
    """Tell whether the unit itself makes `path` before its main process runs."""
    if path in runtime_directories(unit):
        return True
    return any(
        re.search(rf"mkdir -p [^;&|]*{re.escape(path)}(?:\s|'|$)", command)
        for command in directives(unit).get("ExecStartPre", [])
    )


def made_by_deployment_md(path: str) -> bool:
    """Tell whether deployment.md's steps make `path` (from the checkout in /opt/octoprovider)."""
    if not path.startswith(CODE + "/"):
        return False
    relative = path.removeprefix(CODE + "/")
    return bool(
        re.search(rf"^sudo install -d -o octoprovider -g octoprovider {re.escape(relative)}$", DEPLOYMENT, re.M)
    )


@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.name)
def test_systemd_finds_nothing_wrong_in_the_unit(unit, tmp_path):
    if not shutil.which("systemd-analyze"):
        # CI's machine has it (Debian's systemd package): there, its absence must not pass unnoticed.
        assert not os.environ.get("CI"), "systemd-analyze is not installed"
        pytest.skip("systemd-analyze is not installed")
    # verify checks that the programs exist: the unit is read from a copy pointing at a stand-in tree.
    code = tmp_path / "opt" / "octoprovider"
    (code / ".venv" / "bin").mkdir(parents=True)
    for program in ("python", "gunicorn"):
        (code / ".venv" / "bin" / program).write_text("#!/bin/sh\n")
        (code / ".venv" / "bin" / program).chmod(0o755)
    for other in UNITS:
        (tmp_path / other.name).write_text(other.read_text().replace(CODE, str(code)))

    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "--generators=no", str(tmp_path / unit.name)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    # Unknown keys and bad values are only warned about (and ignored at start): any output is a failure.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


@pytest.mark.parametrize("unit", SERVICES, ids=lambda unit: unit.name)
def test_every_directory_the_service_writes_exists_when_it_starts_alone(unit):
    written = [path for value in directives(unit).get("ReadWritePaths", []) for path in value.split()]
    written += [
        value for key, value in environment(unit).items() if key in ("PROMETHEUS_MULTIPROC_DIR", "XDG_RUNTIME_DIR")
    ]

    assert written
    for path in written:
        # A missing ReadWritePaths= directory fails the start (226/NAMESPACE); /run is emptied at boot.
        assert made_by_unit(unit, path) or made_by_deployment_md(path), (unit.name, path)


def test_units_sharing_a_runtime_directory_never_remove_it_under_each_other():
    by_directory: dict[str, list[Path]] = {}
    for unit in SERVICES:
        for directory in runtime_directories(unit):
            by_directory.setdefault(directory, []).append(unit)

    for directory, units in by_directory.items():
        if len(units) > 1:
            for unit in units:
                # Without it, the unit that stops first deletes the directory (systemd.exec).
                assert directives(unit).get("RuntimeDirectoryPreserve") == ["yes"], (unit.name, directory)


@pytest.mark.parametrize("unit", SERVICES, ids=lambda unit: unit.name)
def test_the_service_runs_as_the_user_and_from_the_checkout_deployment_md_creates(unit):
    found = directives(unit)
    [user] = re.findall(r"^sudo useradd --system .* (\S+)$", DEPLOYMENT, re.M)

    assert found["User"] == [user] and found["Group"] == [user]
    assert f"sudo git clone <repository> {CODE} && cd {CODE}" in DEPLOYMENT
    assert found["WorkingDirectory"] == [CODE]
    assert re.search(r"^sudo python3(\.\d+)? -m venv \.venv$", DEPLOYMENT, re.M)
    for command in found.get("ExecStartPre", []) + found["ExecStart"]:
        program = command.split()[0]
        assert program.startswith(f"{CODE}/.venv/bin/") or program in ("/bin/sh", "/bin/mkdir"), command
