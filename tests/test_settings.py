"""Start-up refuses bad configuration, naming the variable, and runs with none at all in DEBUG."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from octoprovider import config

ROOT = Path(__file__).resolve().parent.parent


def manage_check(**env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    clean.update({"DJANGO_SETTINGS_MODULE": "octoprovider.settings", "DATABASE_URL": "sqlite:///:memory:"})
    clean.update(env)
    command = ["check"]
    if clean.pop("DJANGO_CHECK_COMMAND", None) == "shell":
        command = ["shell", "-c", "from octoprovider import hetzner; print(hetzner.is_sandbox())"]
    return subprocess.run(
        [sys.executable, "manage.py", *command], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


def test_debug_with_no_other_variable_runs_on_the_sandbox():
    result = manage_check(DEBUG="true")

    assert result.returncode == 0, result.stderr
    # `make run` announces it once (tests/dev/test_make_run.py), not every command's system checks.
    assert "simulated" not in result.stdout + result.stderr
    sandbox = manage_check(DEBUG="true", DJANGO_CHECK_COMMAND="shell")
    assert sandbox.stdout.strip().endswith("True"), sandbox.stdout + sandbox.stderr


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "SECRET_KEY"),
        ({"SECRET_KEY": "x" * 50}, "HCLOUD_TOKEN"),
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"DEBUG": "true", "HCLOUD_TIMEOUT": "soon"}, "HCLOUD_TIMEOUT"),
        ({"DEBUG": "true", "SERVER_TYPES": "{oops"}, "SERVER_TYPES"),
        ({"DEBUG": "true", "SERVER_TYPES": '{"fsn1": {"HUGE": "cx23"}}'}, "SERVER_TYPES"),
        ({"DEBUG": "true", "REGION_ALIASES": "eu-central=mars1"}, "REGION_ALIASES"),
        ({"DEBUG": "true", "OCTOPERF_API_TOKENS": "a/b"}, "OCTOPERF_API_TOKENS"),
        ({"DEBUG": "true", "OCTOPROVIDER_DEPLOYMENT": "no spaces"}, "OCTOPROVIDER_DEPLOYMENT"),
        ({"DEBUG": "true", "DATABASE_URL": "mysql://db/x"}, "DATABASE_URL"),
        ({"DEBUG": "true", "MAX_HOURLY_SPEND_EUR": "lots"}, "MAX_HOURLY_SPEND_EUR"),
        ({"DEBUG": "true", "DAILY_BUDGET_EUR": "-5"}, "DAILY_BUDGET_EUR"),
        ({"DEBUG": "true", "MONTHLY_BUDGET_EUR": "1,50"}, "MONTHLY_BUDGET_EUR"),
        ({"DEBUG": "true", "BUDGETS_INCLUDE_VAT": "sometimes"}, "BUDGETS_INCLUDE_VAT"),
        ({"DEBUG": "true", "RUN_GAP": "0"}, "RUN_GAP"),
        ({"DEBUG": "true", "LOCATION_FALLBACKS": "fsn1:mars1"}, "LOCATION_FALLBACKS"),
        ({"DEBUG": "true", "LOCATION_FALLBACKS": "fsn1"}, "LOCATION_FALLBACKS"),
        ({"DEBUG": "true", "SERVER_TYPE_CANDIDATES": '{"HUGE": ["cx23"]}'}, "SERVER_TYPE_CANDIDATES"),
        ({"DEBUG": "true", "SERVER_ARCHITECTURES": "riscv"}, "SERVER_ARCHITECTURES"),
    ],
)
def test_a_bad_or_missing_setting_stops_start_up_naming_it(env, named):
    result = manage_check(**env)

    assert result.returncode != 0
    assert "configuration error" in result.stderr
    assert named in result.stderr
    assert "Traceback" not in result.stderr


def test_production_settings_start_with_a_token_and_warn_without_ssh_keys():
    result = manage_check(SECRET_KEY="x" * 50, HCLOUD_TOKEN="h" * 64, OCTOPERF_API_TOKENS="t" * 40)

    assert result.returncode == 0, result.stderr
    assert "HCLOUD_SSH_KEYS" in result.stdout + result.stderr


def test_budgets_runs_and_fallbacks_start_with_good_values():
    result = manage_check(
        DEBUG="true",
        MAX_HOURLY_SPEND_EUR="2.50",
        DAILY_BUDGET_EUR="40",
        MONTHLY_BUDGET_EUR="600",
        BUDGETS_INCLUDE_VAT="false",
        RUN_GAP="600",
        LOCATION_FALLBACKS="fsn1:nbg1,hel1;ash:hil",
        SERVER_TYPE_CANDIDATES='{"SMALL": ["cpx22", "cx23"]}',
        SERVER_ARCHITECTURES="x86,arm",
    )

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", ["SERVER_TYPES", "SERVER_TYPE_FALLBACKS"])
@pytest.mark.parametrize("order", ["star first", "star last"])
def test_a_location_own_pins_win_over_the_star_whatever_the_order(monkeypatch, name, order):
    lists = name == "SERVER_TYPE_FALLBACKS"
    star, own = ({"SMALL": ["cx23"]}, {"SMALL": ["cpx22"]}) if lists else ({"SMALL": "cx23"}, {"SMALL": "cpx22"})
    given = {"*": star, "ash": own} if order == "star first" else {"ash": own, "*": star}
    monkeypatch.setenv(name, json.dumps(given))

    read = config.read_per_location(name, locations=["fsn1", "ash"], sizes=["SMALL", "LARGE"], lists=lists)

    assert read == {"fsn1": star, "ash": own}


def test_a_location_not_known_is_added_without_the_star(monkeypatch):
    monkeypatch.setenv("SERVER_TYPES", '{"*": {"SMALL": "cx23"}, "fsn9": {"LARGE": "cx43"}}')

    read = config.read_per_location("SERVER_TYPES", locations=["fsn1"], sizes=["SMALL", "LARGE"])

    assert read == {"fsn1": {"SMALL": "cx23"}, "fsn9": {"LARGE": "cx43"}}
