"""The README, docs/deployment.md, docs/runbook.md, deploy/ and .ci/run tell one story: same paths, same
environment file, same schedules, steps that work as written."""

import ast
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
    assert (
        "ExecStart=/opt/octoprovider/.venv/bin/python manage.py cleanup\n"
        in (ROOT / "deploy" / "octoprovider-cleanup.service").read_text()
    )
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

    assert '5432/test"' not in ci and "5432/test " not in ci
    assert "5432/$CI_DATABASE" in ci
    assert "5432/test " not in README


# --- every variable a shipped file reads is in README's settings tables --------------------------------

# Set by `make run` for bin/run-dev, and by manage.py for the settings, not by a person.
INTERNAL_VARIABLES = {"HCLOUD_TOKEN_GIVEN", "OCTOPROVIDER_COMMAND_LOG_LEVEL"}
# Read by Django's createsuperuser, which `make superuser` runs.
READ_BY_DJANGO = {"DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_EMAIL"}


def python_reads(path: Path) -> set[str]:
    """Names read with the settings' readers (read_str("X"), ...), os.environ.get/[...] or os.getenv."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            environ = isinstance(func, ast.Attribute) and ast.unparse(func.value) in ("os.environ", "os")
            if name.startswith("read_") or (environ and name in ("get", "getenv")):
                names.add(node.args[0].value)
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            names.add(ast.literal_eval(node.slice))
    return {name for name in names if isinstance(name, str) and name.isupper()}


def shell_reads(text: str) -> set[str]:
    """Names a shell script takes from its environment: those read with a default, ${NAME:-…}."""
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):?[-=]", text))


def makefile_reads(text: str) -> set[str]:
    """Variables a person may set for make: `NAME ?=`, $(NAME) that make never assigns, and shell reads."""
    assigned = set(re.findall(r"^([A-Z][A-Z0-9_]*) *[:?]?=", text, re.M))
    defaults = set(re.findall(r"^([A-Z][A-Z0-9_]*) *\?=", text, re.M))
    used = set(re.findall(r"\$\((?:origin )?([A-Z][A-Z0-9_]*)\)", text))
    return defaults | (used - assigned) | shell_reads(text.replace("$$", "$"))


def unit_reads(text: str) -> set[str]:
    """Variables a unit or the example environment file sets for the processes to read."""
    return set(re.findall(r"^(?:Environment=)?([A-Z][A-Z0-9_]*)=", text, re.M))


def variables_read_by_shipped_files() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    python = [
        ROOT / "manage.py",
        ROOT / "gunicorn.conf.py",
        *(path for package in ("octoprovider", "instances", "staticips") for path in (ROOT / package).rglob("*.py")),
    ]
    for path in python:
        found[str(path.relative_to(ROOT))] = python_reads(path)
    for path in (ROOT / "bin").iterdir():
        found[f"bin/{path.name}"] = shell_reads(path.read_text())
    for path in (ROOT / "deploy").iterdir():
        found[f"deploy/{path.name}"] = unit_reads(path.read_text())
    found["Makefile"] = makefile_reads((ROOT / "Makefile").read_text())
    return found


def settings_table_names() -> set[str]:
    section = README.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    first_cells = re.findall(r"^\| ([^|]+) \|", section, re.M)
    return {name for cell in first_cells for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cell)}


def test_readme_settings_tables_list_every_variable_a_shipped_file_reads():
    documented = settings_table_names()

    missing = {
        (name, where)
        for where, names in variables_read_by_shipped_files().items()
        for name in names - documented - INTERNAL_VARIABLES
    }

    assert not missing, sorted(missing)


def test_readme_settings_tables_list_no_variable_that_nothing_reads():
    read = set().union(*variables_read_by_shipped_files().values())

    assert settings_table_names() - read - READ_BY_DJANGO == set()


def test_the_collection_finds_what_each_kind_of_file_reads():
    # The guard of the two tests above: each way of reading a variable is seen.
    found = variables_read_by_shipped_files()

    assert {"SECRET_KEY", "SERVER_TYPE_FALLBACKS"} <= found["octoprovider/settings.py"]
    assert {"HOST", "PORT", "WEB_CONCURRENCY", "GUNICORN_TIMEOUT", "FORWARDED_ALLOW_IPS"} <= found["gunicorn.conf.py"]
    assert {"PORT", "DEBUG", "OCTOPROVIDER_REAL_HETZNER"} <= found["bin/run-dev"]
    assert {"PYTHON", "PYTEST_ARGS", "HCLOUD_TOKEN"} <= found["Makefile"]
    assert {"PROMETHEUS_MULTIPROC_DIR", "XDG_RUNTIME_DIR"} <= found["deploy/octoprovider-web.service"]
    assert "WEB_CONCURRENCY" in found["deploy/octoprovider.env.example"]
