"""One log line per contract request and per Hetzner call, tied together by a request id.

The request id comes from `X-Request-ID` when the client sent a sane one, else it is generated; it is
echoed in the response and carried by a context variable into every log line of that request,
including the lines of the Hetzner calls the request made. `LOG_FORMAT=json` turns every line into
one JSON object.

Nothing here logs a body: `userData` (the agent's secret) travels in the body of `POST /instances`
and of Hetzner's `POST /servers`. The formatters (`octoprovider.core.logs`) mask path tokens.
"""

import logging
import random
import re
import time
from collections.abc import Callable

import requests
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from octoprovider.core.http import is_contract_path
from octoprovider.core.logs import request_id
from octoprovider.operations import metrics

request_logger = logging.getLogger("octoprovider.requests")
hetzner_logger = logging.getLogger("octoprovider.hetzner.calls")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_META = "HTTP_X_REQUEST_ID"
# Long enough for a UUID or a trace id, short and plain enough to be safe in any log line.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")

# Probes and scrapes every few seconds would drown the lines that matter.
_NOT_LOGGED = frozenset({"healthz", "readyz", "metrics"})
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def new_request_id() -> str:
    """Return a fresh request id: 32 hex digits, like a UUID's."""
    # Unique, not secret: Python's generator (reseeded in every forked worker) rather than uuid4,
    # whose os.urandom lets go of the GIL, and a threaded worker then waits for it to come back.
    return f"{random.getrandbits(128):032x}"


def incoming_request_id(value: str | None) -> str | None:
    """Return the client's request id if it is sane enough to log, else None."""
    if value and _SANE_REQUEST_ID.match(value):
        return value
    return None


def route_name(request: HttpRequest) -> str:
    """Name the route that served `request` (never its raw path, which carries ids and maybe a token)."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    return match.view_name or "unnamed"


class RequestLogMiddleware:
    """Give each request an id, log every request but the probes in one line, and count the contract's.

    It sits first in MIDDLEWARE so that the duration covers the whole stack and every response,
    redirects and errors included, carries the id.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # META, not request.headers: that builds a dict of every header first.
        rid = incoming_request_id(request.META.get(_REQUEST_ID_META)) or new_request_id()
        request.request_id = rid
        reset_token = request_id.set(rid)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = rid
            seconds = time.perf_counter() - started
            self._record(request, response, seconds)
            return response
        finally:
            request_id.reset(reset_token)

    def _record(self, request: HttpRequest, response: HttpResponse, seconds: float) -> None:
        route = route_name(request)
        if route in _NOT_LOGGED:
            return
        if is_contract_path(request.path) and route != "openapi":
            # Anyone may send any method: an unbounded label would grow the metrics without end.
            method = request.method if request.method in _KNOWN_METHODS else "other"
            metrics.observe_contract_request(
                endpoint=route, method=method, status=response.status_code, seconds=seconds
            )
        level = logging.WARNING if response.status_code >= 500 else logging.INFO
        if route == "instance-state" and response.status_code == 200 and not settings.LOG_STATE_POLLS:
            # OctoPerf polls every instance every few seconds: at INFO those lines would drown the
            # log (and cost a fifth of the poll). They are counted in the metrics all the same.
            level = logging.DEBUG
        if not request_logger.isEnabledFor(level):
            return
        fields = {
            "method": request.method,
            "route": route,
            "status": response.status_code,
            "duration_ms": round(seconds * 1000, 1),
        }
        request_logger.log(
            level,
            "%s %s %s %.1fms",
            request.method,
            route,
            response.status_code,
            fields["duration_ms"],
            extra=fields,
        )


# --- Hetzner calls -------------------------------------------------------------------------------

# A path segment made of lower-case words is part of Hetzner's API; anything else is an id or a name.
_API_WORD = re.compile(r"^[a-z][a-z_-]*$")


def hetzner_endpoint(url: str) -> str:
    """Template a Hetzner URL: `https://…/v1/servers/42/actions/reboot?x=1` → `/servers/{id}/actions/reboot`."""
    path = url.split("?", 1)[0].split("#", 1)[0]
    marker = path.find("/v1/")
    path = path[marker + 3 :] if marker >= 0 else "/" + path.split("://", 1)[-1].partition("/")[2]
    segments = [segment if _API_WORD.match(segment) else "{id}" for segment in path.strip("/").split("/") if segment]
    return "/" + "/".join(segments)


def _error_code(response: requests.Response) -> str:
    """Return "ok", or Hetzner's error code (`rate_limit_exceeded`...), or the bare HTTP status."""
    if response.status_code < 400:
        return "ok"
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return str(response.status_code)
    return code if isinstance(code, str) and _API_WORD.match(code) else str(response.status_code)


def _log_hetzner_call(method: str, endpoint: str, status: int | str, code: str, seconds: float) -> None:
    duration_ms = round(seconds * 1000, 1)
    hetzner_logger.info(
        "Hetzner %s %s %s %s %.1fms",
        method,
        endpoint,
        status,
        code,
        duration_ms,
        extra={
            "hetzner_method": method,
            "hetzner_endpoint": endpoint,
            "hetzner_status": status,
            "hetzner_code": code,
            "duration_ms": duration_ms,
        },
    )


def on_hetzner_response(response: requests.Response) -> None:
    """Log and count one answer of Hetzner's."""
    method = response.request.method or ""
    endpoint = hetzner_endpoint(response.request.url or "")
    code = _error_code(response)
    seconds = response.elapsed.total_seconds()
    metrics.observe_hetzner_call(
        method=method,
        endpoint=endpoint,
        code=code,
        seconds=seconds,
        remaining=response.headers.get("RateLimit-Remaining"),
        limit=response.headers.get("RateLimit-Limit"),
    )
    _log_hetzner_call(method, endpoint, response.status_code, code, seconds)


def on_hetzner_failure(request: requests.PreparedRequest, exc: requests.RequestException, seconds: float) -> None:
    """Log and count a Hetzner request that got no answer (a timeout, a refused connection)."""
    code = "timeout" if isinstance(exc, requests.Timeout) else "connection"
    method, endpoint = request.method or "", hetzner_endpoint(request.url or "")
    metrics.observe_hetzner_call(method=method, endpoint=endpoint, code=code, seconds=seconds)
    _log_hetzner_call(method, endpoint, "-", code, seconds)
