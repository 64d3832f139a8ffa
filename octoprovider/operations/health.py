"""Liveness and readiness probes: `/healthz` and `/readyz`, unauthenticated, revealing nothing secret.

`/healthz` answers as long as the process serves requests. `/readyz` also checks that the database
answers, that Hetzner accepts HCLOUD_TOKEN, and that the project has the SSH keys, firewalls and
image every server is created with (a wrong one makes every create fail: the operator's to fix). The
Hetzner check costs one request of the project's budget (3600 an hour, shared with everything else),
so its outcome is kept in Django's cache for
HETZNER_CHECK_TTL seconds: probes every few seconds cost about one Hetzner request a minute per
process.

Only a rejected token makes the service unready. When Hetzner is down or the budget is spent, every
replica is in the same state and taking them all out of the load balancer would turn OctoPerf's
503s with Retry-After into connection errors, so `/readyz` reports it and stays 200.
"""

import logging
import re
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import Error, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import resolve
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from octoprovider import __version__, hetzner
from octoprovider.core.exceptions import HetznerError
from octoprovider.core.http import CONTENT_TYPE

logger = logging.getLogger(__name__)

HETZNER_CHECK_TTL = 60
_CACHE_KEY = "octoprovider:readyz:hetzner"
_SETTINGS_CACHE_KEY = "octoprovider:readyz:server-settings"

# Hetzner error codes that mean the token itself is wrong: only the operator can fix these.
_TOKEN_REJECTED = {"unauthorized", "forbidden", "token_readonly"}

OK = "ok"


def check_database() -> str:
    """Return "ok" if the database answers a trivial query, else what went wrong (no DSN)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Error as exc:  # a connection closed under us raises InterfaceError, which is no DatabaseError
        logger.warning("Readiness: the database does not answer: %s", type(exc).__name__)
        return f"unreachable ({type(exc).__name__})"
    return OK


def _ask_hetzner() -> str:
    try:
        hetzner.check_token()
    except HetznerError as exc:
        if exc.hetzner_code in _TOKEN_REJECTED:
            return f"token rejected (hetzner_{exc.hetzner_code})"
        return f"unavailable (hetzner_{exc.hetzner_code or 'error'})"
    return OK


def check_hetzner() -> str:
    """Return "ok", "token rejected (...)" or "unavailable (...)", asking Hetzner at most once a minute."""
    outcome = cache.get(_CACHE_KEY)
    if outcome is None:
        outcome = _ask_hetzner()
        cache.set(_CACHE_KEY, outcome, HETZNER_CHECK_TTL)
    return outcome


def _ask_about_server_settings() -> str:
    try:
        problems = hetzner.server_settings_problems(
            image=settings.HCLOUD_IMAGE, ssh_keys=settings.HCLOUD_SSH_KEYS, firewalls=settings.HCLOUD_FIREWALLS
        )
    except HetznerError as exc:
        return f"unknown (hetzner_{exc.hetzner_code or 'error'})"
    if not problems:
        return OK
    for problem in problems:
        logger.warning("Readiness: %s", problem)
    # The probe is unauthenticated: name the settings, not their values (the log has those).
    wrong = sorted({problem.split(" ", 1)[0] for problem in problems})
    return f"wrong {', '.join(wrong)} (see the log or manage.py check)"


def check_server_settings() -> str:
    """Return "ok", "wrong <settings> (...)" or "unknown (...)", asking Hetzner at most once a minute."""
    outcome = cache.get(_SETTINGS_CACHE_KEY)
    if outcome is None:
        outcome = _ask_about_server_settings()
        cache.set(_SETTINGS_CACHE_KEY, outcome, HETZNER_CHECK_TTL)
    return outcome


def _json(body: dict, status: int) -> JsonResponse:
    return JsonResponse(body, status=status, content_type=CONTENT_TYPE)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Answer 200 while the process serves requests, with the version it runs (one to quote in a bug report)."""
    return _json({"status": OK, "version": __version__}, 200)


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Answer 200 when the database answers, Hetzner accepts our token and has what servers need, else 503."""
    database = check_database()
    # Hetzner's rate budget is kept in the database: without it, Hetzner cannot be asked.
    checks = {"database": database, "hetzner": check_hetzner() if database == OK else "not checked"}
    if checks["hetzner"] == OK:
        checks["configuration"] = check_server_settings()
    failed = sorted(
        name
        for name, outcome in checks.items()
        if outcome != OK and not outcome.startswith(("unavailable", "unknown", "not checked"))
    )
    if failed:
        return _json({"status": "unavailable", "failed": failed, "checks": checks}, 503)
    return _json({"status": OK, "checks": checks}, 200)


# The paths of the probes and of the metrics (trailing slash tolerated, like their URL patterns).
_LOCAL_PATHS = re.compile(r"^/(?:healthz|readyz|metrics)/?$")


class LocalProbesMiddleware:
    """Serve the probes and the metrics whatever Host header the request carries.

    `curl localhost:8000/readyz` on the host, a load balancer's health check and Prometheus scraping
    an address do not send the public host name. ALLOWED_HOSTS protects what builds URLs from the
    Host header (the admin); these answer the same to every host, so they skip the rest of the stack,
    whose first `request.get_host()` would refuse them with 400.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not _LOCAL_PATHS.match(request.path_info):
            return self.get_response(request)
        match = resolve(request.path_info)
        request.resolver_match = match
        return match.func(request, *match.args, **match.kwargs)
