"""The README, docs/deployment.md, docs/runbook.md, deploy/ and .ci/run tell one story: same paths, same
environment file, same schedules, steps that work as written."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
DEPLOYMENT = (ROOT / "docs" / "deployment.md").read_text()
RUNBOOK = (ROOT / "docs" / "runbook.md").read_text()
DOCS = {"README.md": README, "docs/deployment.md": DEPLOYMENT, "docs/runbook.md": RUNBOOK}


def shell_lines(text: str) -> list[str]:
    return [line for block in re.findall(r"```(?:sh)?\n(.*?)```", text, re.S) for line in block.splitlines()]


def test_production_paths_are_those_of_deployment_md():
    assert "sudo git clone <repository> /opt/octoprovider" in DEPLOYMENT
    for name, text in DOCS.items():
        assert "/srv/" not in text, name
        for env_file in re.findall(r"EnvironmentFile=(\S+)|\. (/\S+env)\b", text):
            assert "/etc/octoprovider/env" in env_file, (name, env_file)
    for unit in (ROOT / "deploy").glob("*.service"):
        assert "WorkingDirectory=/opt/octoprovider\n" in unit.read_text(), unit.name
        assert "EnvironmentFile=/etc/octoprovider/env\n" in unit.read_text(), unit.name


def test_cleanup_runs_every_15_minutes_everywhere_it_is_described():
    assert "OnCalendar=*:0/15\n" in (ROOT / "deploy" / "octoprovider-cleanup.timer").read_text()
    assert "ExecStart=/opt/octoprovider/.venv/bin/python manage.py cleanup\n" in (
        ROOT / "deploy" / "octoprovider-cleanup.service").read_text()
    [cron] = [line for line in README.splitlines() if "manage.py cleanup" in line and line.lstrip().startswith("*/")]
    assert cron.lstrip().startswith("*/15 * * * * cd /opt/octoprovider && ")
    for name, text in DOCS.items():
        assert "every 15 minutes" in text, name
        assert not re.search(r"cleanup[^\n]*\bhourly\b(?! price)|\bhourly\b[^\n]*cleanup", text, re.I), name
    assert "octoprovider-cleanup.timer" in DEPLOYMENT and "octoprovider-cleanup.timer" in RUNBOOK


def test_the_runbook_and_deployment_md_define_manage_alike():
    [defined] = [line for line in shell_lines(DEPLOYMENT) if line.startswith("manage() {")]

    assert defined in shell_lines(RUNBOOK)


def test_deployment_md_collects_static_files_as_root_who_owns_the_code():
    # The service user cannot write staticfiles/ in a tree root cloned: the admin then answered 500.
    collects = [line for line in shell_lines(DEPLOYMENT) if "collectstatic" in line]

    assert collects
    assert all(line.startswith("sudo sh -c ") for line in collects), collects


def test_every_file_of_deploy_is_described_in_deployment_md():
    for path in (ROOT / "deploy").iterdir():
        assert f"deploy/{path.name}" in DEPLOYMENT, path.name


def test_ci_tests_postgresql_on_a_database_name_of_its_own():
    ci = (ROOT / ".ci" / "run").read_text()

    assert "5432/test\"" not in ci and "5432/test " not in ci
    assert "5432/$CI_DATABASE" in ci
    assert "5432/test " not in README
