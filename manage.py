#!/usr/bin/env python
import json
import os
import sys


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _json_logs() -> bool:
    return os.environ.get("LOG_FORMAT", "").strip().lower() == "json"


def _fail(message: str) -> None:
    if _json_logs():
        message = json.dumps({"level": "ERROR", "logger": "octoprovider", "message": message})
    print(message, file=sys.__stderr__)
    sys.exit(1)


def _print_version() -> None:
    import platform

    import django

    from octoprovider import __version__

    print(f"octoprovider {__version__} (Django {django.get_version()}, Python {platform.python_version()})")


# The commands whose log is what they are for: the others' output is their answer (`costs`,
# `static-ips`, `createsuperuser`), and the INFO lines of what they did inside would only bury it.
_LOGGING_COMMANDS = {"runserver", "reconcile"}


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "octoprovider.settings")
    if len(sys.argv) > 1 and sys.argv[1] not in _LOGGING_COMMANDS:
        # LOG_LEVEL, when set (environment or .env), still wins: settings read this as its default.
        os.environ.setdefault("OCTOPROVIDER_COMMAND_LOG_LEVEL", "WARNING")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line
    from django.db import OperationalError

    if _json_logs():
        # Every line a log shipper reads must be JSON, what commands print included.
        from octoprovider.core.logs import JsonLines

        command = f"manage.py {sys.argv[1]}" if len(sys.argv) > 1 else "manage.py"
        sys.stdout = JsonLines(sys.stdout, level="INFO", logger=command)
        sys.stderr = JsonLines(sys.stderr, level="WARNING", logger=command)
    if sys.argv[1:] == ["version"]:
        # Django answers `version` with its own; octoprovider's is the one a bug report needs, and it
        # must print before any setting is right.
        _print_version()
        sys.exit(0)
    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A wrong or missing setting: say which, without a traceback to dig through.
        _fail(f"octoprovider: configuration error: {exc}")
    except OperationalError as exc:
        # A database that does not exist, refuses the login or does not answer is the operator's to
        # fix, and the 90 lines of Django's and psycopg's stack would only hide the one that matters.
        # The driver's message names host, user and database, never the password.
        hint = " (has `manage.py migrate` run?)" if "no such table" in str(exc) else ""
        _fail(f"octoprovider: the database of DATABASE_URL cannot be used: {_one_line(exc)}{hint}")
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
