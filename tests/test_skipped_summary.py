"""`make test` says which tests it skipped for want of PostgreSQL, a browser or nginx, and how to run them."""

from types import SimpleNamespace

from tests.conftest import skipped_summary


def skipped(nodeid: str, reason: str) -> SimpleNamespace:
    """A skipped test's report as pytest hands it to pytest_terminal_summary."""
    return SimpleNamespace(nodeid=nodeid, longrepr=(nodeid.split("::")[0], 1, f"Skipped: {reason}"))


def test_tests_skipped_on_sqlite_are_counted_with_the_command_that_runs_them_on_postgresql():
    reports = [
        skipped("tests/services/test_budget.py::test_a", "parallel connections: PostgreSQL only (CI runs it)"),
        skipped("tests/services/test_budget.py::test_b", "parallel connections: PostgreSQL only (CI runs it)"),
        skipped("tests/commands/test_reconcile.py::test_c", "a server-side disconnect: PostgreSQL only"),
        skipped("tests/api/test_other.py::test_d", "something else"),
    ]

    (said, command) = skipped_summary(reports)

    assert said.startswith("3 tests skipped")
    assert "PostgreSQL" in said
    assert command.strip() == (
        "DATABASE_URL=postgres://postgres@127.0.0.1:5432/octoprovider make test "
        'PYTEST_ARGS="tests/services/test_budget.py tests/commands/test_reconcile.py"'
    )


def test_browser_and_nginx_tests_skipped_say_why_and_how_to_install_what_they_need():
    reports = [
        skipped(
            "tests/admin/test_browser.py::test_login", "no browser at /usr/bin/chromium (apt-get install chromium)"
        ),
        skipped("tests/ops/test_nginx.py::test_site", "no nginx binary: apt-get install nginx-light"),
    ]

    lines = skipped_summary(reports)

    assert len(lines) == 4
    assert "no browser at /usr/bin/chromium" in lines[0]
    assert "apt-get install -y chromium" in lines[1] and "tests/admin/test_browser.py" in lines[1]
    assert "no nginx binary" in lines[2]
    assert "apt-get install -y nginx-light" in lines[3] and "tests/ops/test_nginx.py" in lines[3]


def test_nothing_is_said_when_nothing_was_skipped():
    assert skipped_summary([]) == []
