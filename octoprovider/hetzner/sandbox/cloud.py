"""A stateful, in-memory Hetzner Cloud API that enforces Hetzner's rules.

Every state change is computed lazily from the clock: a server created at ``t`` is
``initializing`` until ``t+5``, ``starting`` until ``t+15`` and ``running`` after, without a
thread or a sleep. Tests move a :class:`FakeClock`; ``make run`` uses the wall clock.
"""

from __future__ import annotations

import copy
import ipaddress
import math
import re
import secrets
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

from . import catalog
from .clock import Clock, FakeClock, SystemClock
from .labels import LabelSelectorError, matches, parse_selector, validate_labels

JSON = dict[str, Any]
Query = dict[str, list[str]]
Answer = tuple[int, JSON | None]

# The error table of Hetzner's API reference, and the operation specific errors of its Primary
# IP and server operations (422 where the reference gives a status).
ERROR_STATUS: dict[str, int] = {
    "json_error": 400,
    "unauthorized": 401,
    "token_readonly": 401,
    "forbidden": 403,
    "maintenance": 403,
    "resource_limit_exceeded": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "uniqueness_error": 409,
    "conflict": 409,
    "deprecated_api_endpoint": 410,
    "resource_unavailable": 412,
    "placement_error": 412,
    "invalid_input": 422,
    "service_error": 422,
    "unsupported_error": 422,
    "server_not_stopped": 422,
    "must_be_unassigned": 422,
    "primary_ip_already_assigned": 422,
    "server_has_ipv4": 422,
    "server_has_ipv6": 422,
    "primary_ip_assigned": 422,
    "primary_ip_datacenter_mismatch": 422,
    "primary_ip_version_mismatch": 422,
    "locked": 423,
    "protected": 423,
    "rate_limit_exceeded": 429,
    "server_error": 500,
    "bad_gateway": 502,
    "unavailable": 503,
    "timeout": 504,
}

_DEFAULT_MESSAGES: dict[str, str] = {
    "unavailable": "service temporarily unavailable",
    "timeout": "request timed out",
    "conflict": "resource has changed during the request, please retry",
    "rate_limit_exceeded": "limit of requests per hour reached",
    "server_error": "internal server error",
    "bad_gateway": "bad gateway",
}

SERVER_STATUSES = (
    "running",
    "initializing",
    "starting",
    "stopping",
    "off",
    "deleting",
    "migrating",
    "rebuilding",
    "unknown",
)
_FIRST_IPV4 = ipaddress.IPv4Address("198.18.0.0")  # benchmark range: never routable
_FIRST_IPV6 = ipaddress.IPv6Network("2001:db8::/64")  # documentation range: never routable
_ACTION_RETENTION = 24 * 3600.0
_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_USER_DATA_LIMIT = 32 * 1024


class ApiError(Exception):
    """An error answer of the API, rendered as Hetzner renders it."""

    def __init__(self, code: str, message: str, *, status: int | None = None, details: JSON | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status if status is not None else ERROR_STATUS.get(code, 400)
        self.details = details if details is not None else {}

    def body(self) -> JSON:
        """Return the JSON error body."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def invalid_input(field_name: str, message: str) -> ApiError:
    """Build Hetzner's ``invalid_input`` error for one field."""
    return ApiError(
        "invalid_input",
        f"invalid input in field '{field_name}': {message}",
        details={"fields": [{"name": field_name, "messages": [message]}]},
    )


def reject_unknown_fields(body: JSON, known: Iterable[str], prefix: str = "") -> None:
    """Answer ``invalid_input`` for a field the operation does not know, as Hetzner does."""
    for name in body:
        if name not in known:
            raise invalid_input(f"{prefix}{name}", "unknown field")


class SimulatedTimeout(Exception):
    """The client should see a network timeout instead of an answer."""

    def __init__(self, *, after_effect: bool) -> None:
        super().__init__("read timeout" if after_effect else "connect timeout")
        self.after_effect = after_effect


@dataclass(frozen=True)
class RequestRecord:
    """One request that reached the sandbox, and what it answered."""

    method: str
    path: str
    query: Query
    body: JSON | None
    status: int | None  # None when the client saw a timeout instead of an answer
    at: float
    timeout: str | None = None  # "connect" or "read"


@dataclass
class _Fault:
    method: str
    pattern: re.Pattern[str]
    code: str
    status: int
    times: int
    after: bool
    timeout: bool
    message: str
    details: JSON | None = None

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and bool(self.pattern.fullmatch(path))


@dataclass
class _Slow:
    method: str
    pattern: re.Pattern[str]
    seconds: float
    times: int | None


@dataclass
class _Route:
    pattern: re.Pattern[str]
    handlers: dict[str, str] = field(default_factory=dict)


def _routes(*table: tuple[str, dict[str, str]]) -> list[_Route]:
    return [_Route(re.compile(pattern), handlers) for pattern, handlers in table]


def iso(timestamp: float) -> str:
    """Render epoch seconds as Hetzner does: ISO 8601 in UTC."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


class SandboxCloud:
    """Simulate one Hetzner Cloud project behind the ``/v1`` API."""

    DEFAULT_TIMINGS: ClassVar[dict[str, float]] = {
        "create_initializing": 5.0,  # initializing, then starting
        "create_running": 15.0,  # running, and the create_server action finishes
        "poweroff": 3.0,
        "poweron": 8.0,
        "shutdown_action": 1.0,
        "shutdown_off": 20.0,  # ACPI: the server reaches off long after the action
        "reboot": 5.0,
        "reset": 5.0,
        "delete": 3.0,
        "rebuild": 10.0,  # rebuilding (the disk rewritten), then running with the new user_data
        "primary_ip_assign": 1.0,
        "primary_ip_unassign": 1.0,
        "primary_ip_release_lag": 2.0,  # a deleted server's IP still looks assigned
    }
    MAX_RECORDS: ClassVar[int] = 10_000

    _ROUTES: ClassVar[list[_Route]] = _routes(
        (r"/servers", {"GET": "_list_servers", "POST": "_create_server"}),
        (r"/servers/(\d+)", {"GET": "_get_server", "PUT": "_update_server", "DELETE": "_delete_server"}),
        (r"/servers/(\d+)/actions/(poweroff|poweron|shutdown|reboot|reset)", {"POST": "_server_action"}),
        (r"/servers/(\d+)/actions/rebuild", {"POST": "_rebuild_server"}),
        (r"/servers/(\d+)/actions", {"GET": "_list_server_actions"}),
        (r"/servers/(\d+)/actions/(\d+)", {"GET": "_get_resource_action"}),
        (r"/servers/actions/(\d+)", {"GET": "_get_action"}),
        (r"/actions", {"GET": "_list_actions"}),
        (r"/actions/(\d+)", {"GET": "_get_action"}),
        (r"/primary_ips", {"GET": "_list_primary_ips", "POST": "_create_primary_ip"}),
        (
            r"/primary_ips/(\d+)",
            {"GET": "_get_primary_ip", "PUT": "_update_primary_ip", "DELETE": "_delete_primary_ip"},
        ),
        (r"/primary_ips/(\d+)/actions/(assign|unassign)", {"POST": "_primary_ip_action"}),
        (r"/primary_ips/(\d+)/actions", {"GET": "_list_primary_ip_actions"}),
        (r"/primary_ips/(\d+)/actions/(\d+)", {"GET": "_get_resource_action"}),
        (r"/primary_ips/actions/(\d+)", {"GET": "_get_action"}),
        (r"/server_types", {"GET": "_list_server_types"}),
        (r"/server_types/(\d+)", {"GET": "_get_server_type"}),
        (r"/locations", {"GET": "_list_locations"}),
        (r"/locations/(\d+)", {"GET": "_get_location"}),
        (r"/images", {"GET": "_list_images"}),
        (r"/images/(\d+)", {"GET": "_get_image"}),
        (r"/ssh_keys", {"GET": "_list_ssh_keys"}),
        (r"/ssh_keys/(\d+)", {"GET": "_get_ssh_key"}),
        (r"/firewalls", {"GET": "_list_firewalls"}),
        (r"/firewalls/(\d+)", {"GET": "_get_firewall"}),
        (r"/pricing", {"GET": "_get_pricing"}),
        (r"/datacenters(?:/\d+)?", {"GET": "_datacenters_gone"}),
    )

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        token: str | None = None,
        rate_limit: int = 3600,
        rate_refill_per_second: float = 1.0,
    ) -> None:
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.token = token
        self.rate_limit = rate_limit
        self.rate_refill_per_second = rate_refill_per_second
        self.timings: dict[str, float] = dict(self.DEFAULT_TIMINGS)
        self.requests: list[RequestRecord] = []
        self._lock = threading.RLock()
        self._faults: list[_Fault] = []
        # Seconds every answer takes to come back, and slower answers for some paths (see latency()).
        self.latency: float = 0.0
        self._latencies: list[_Slow] = []  # per endpoint, instead of `latency` (see set_latency())
        self._slow: list[_Slow] = []
        self._user_data: dict[int, str] = {}
        self.rebuild_leaves_off = False
        self._now = self.clock.now()
        self._reply_headers: dict[str, str] = {}
        self._request_path: str = "/"
        self._request_query: Query = {}
        self.from_state({})

    # ------------------------------------------------------------------ state

    def to_state(self) -> JSON:
        """Return everything worth persisting, as JSON-compatible data (no user_data)."""
        with self._lock:
            return copy.deepcopy(
                {
                    "version": 1,
                    "next_ids": self._next_ids,
                    "servers": {str(k): v for k, v in self._servers.items()},
                    "primary_ips": {str(k): v for k, v in self._primary_ips.items()},
                    "actions": {str(k): v for k, v in self._actions.items()},
                    "ssh_keys": {str(k): v for k, v in self._ssh_keys.items()},
                    "firewalls": {str(k): v for k, v in self._firewalls.items()},
                    "bucket": self._bucket,
                    "request_count": self.request_count,
                    "quota": self._quota,
                    "unavailable": sorted([list(pair) for pair in self._unavailable]),
                }
            )

    def from_state(self, state: JSON) -> None:
        """Replace the cloud's state by ``state`` (``{}`` is an empty project)."""
        state = copy.deepcopy(state)
        with self._lock:
            now = self.clock.now()
            self._next_ids: dict[str, int] = {
                "server": 60_000_001,
                "primary_ip": 80_000_001,
                "action": 1_000_000_001,
                "ssh_key": 20_000_001,
                "firewall": 1_500_001,
                "ipv4": 10,
                "ipv6": 1,
                **state.get("next_ids", {}),
            }
            self._servers: dict[int, JSON] = _int_keys(state.get("servers", {}))
            self._primary_ips: dict[int, JSON] = _int_keys(state.get("primary_ips", {}))
            self._actions: dict[int, JSON] = _int_keys(state.get("actions", {}))
            self._ssh_keys: dict[int, JSON] = _int_keys(state.get("ssh_keys", {}))
            self._firewalls: dict[int, JSON] = _int_keys(state.get("firewalls", {}))
            self._bucket: JSON = state.get("bucket") or {"tokens": float(self.rate_limit), "updated": now}
            self.request_count: int = state.get("request_count", 0)
            self._quota: dict[str, int | None] = state.get("quota", {"servers": None, "primary_ips": None})
            self._unavailable: set[tuple[str, str]] = {(pair[0], pair[1]) for pair in state.get("unavailable", [])}
            self._user_data = {k: v for k, v in self._user_data.items() if k in self._servers}

    # ------------------------------------------------------- test steering

    def inject_fault(
        self,
        method: str,
        path_regex: str,
        *,
        code: str = "unavailable",
        status: int = 503,
        times: int = 1,
        after: bool = False,
        timeout: bool = False,
        message: str | None = None,
        details: JSON | None = None,
    ) -> None:
        """Make the next ``times`` requests matching ``method`` and ``path_regex`` fail.

        ``path_regex`` must match the whole path after ``/v1`` (``"*"`` as method matches
        any). ``after=False`` fails before any effect; ``after=True`` carries the request
        out and then answers the error (the response was lost). ``timeout=True`` makes the
        client time out instead: before the effect (connect) or after it (read). ``details`` is
        the error's ``details`` (``{"fields": [{"name": ..., "messages": [...]}]}``), ``{}`` by default.
        """
        with self._lock:
            self._faults.append(
                _Fault(
                    method=method.upper(),
                    pattern=re.compile(path_regex),
                    code=code,
                    status=status,
                    times=times,
                    after=after,
                    timeout=timeout,
                    message=message or _DEFAULT_MESSAGES.get(code, code.replace("_", " ")),
                    details=details,
                )
            )

    def slow_down(self, method: str, path_regex: str, *, seconds: float, times: int | None = None) -> None:
        """Make the answers to matching requests arrive ``seconds`` late (all of them by default).

        The answer is what the cloud held when the request arrived: whatever changes during the
        delay is not in it, as with a slow listing at Hetzner.
        """
        with self._lock:
            self._slow.append(
                _Slow(method=method.upper(), pattern=re.compile(path_regex), seconds=seconds, times=times)
            )

    def calm(self) -> None:
        """Drop every injected fault and delay: Hetzner answers at once and without error again."""
        with self._lock:
            self._faults.clear()
            self._slow.clear()
            self._latencies.clear()
            self.latency = 0.0

    def set_latency(self, spec: str | float) -> None:
        """Set how long answers travel, for every endpoint or per endpoint (the SANDBOX_LATENCY setting).

        ``spec`` is seconds (``0.05``: every answer), or comma-separated ``METHOD[ PATH]=seconds``
        items with an optional bare default: ``"POST /servers=1.5,GET=0.2"`` makes server creates
        take 1.5 s and every read 0.2 s (Hetzner's own figures, roughly), other answers none. PATH
        is a regular expression for the whole path after /v1; the first matching item wins.
        """
        latency, rules = 0.0, []
        for item in str(spec).split(","):
            item = item.strip()
            if not item:
                continue
            endpoint, equals, seconds = item.rpartition("=")
            if not equals:
                latency = float(seconds)
                continue
            method, _, path = endpoint.strip().partition(" ")
            rules.append(
                _Slow(
                    method=method.upper(), pattern=re.compile(path.strip() or ".*"), seconds=float(seconds), times=None
                )
            )
        with self._lock:
            self.latency, self._latencies = latency, rules

    def latency_for(self, method: str, path: str) -> float:
        """Return how long the answer to this request travels (wall-clock seconds): see slow_down()."""
        with self._lock:
            delay = next(
                (
                    rule.seconds
                    for rule in self._latencies
                    if rule.method in ("*", method.upper()) and rule.pattern.fullmatch(path)
                ),
                self.latency,
            )
            for slow in list(self._slow):
                if slow.method in ("*", method.upper()) and slow.pattern.fullmatch(path):
                    delay += slow.seconds
                    if slow.times is not None:
                        slow.times -= 1
                        if slow.times <= 0:
                            self._slow.remove(slow)
            return delay

    def set_quota(self, *, servers: int | None = None, primary_ips: int | None = None) -> None:
        """Limit how many servers and Primary IPs the project may hold (None: no limit)."""
        with self._lock:
            self._quota = {"servers": servers, "primary_ips": primary_ips}

    def set_availability(self, server_type: str, location: str, available: bool) -> None:
        """Make a server type orderable, or sold out, in one location."""
        with self._lock:
            if available:
                self._unavailable.discard((server_type, location))
            else:
                self._unavailable.add((server_type, location))

    def add_ssh_key(self, name: str, *, labels: dict[str, str] | None = None) -> int:
        """Register an SSH key in the project and return its id."""
        with self._lock:
            key_id = self._new_id("ssh_key")
            self._ssh_keys[key_id] = {
                "id": key_id,
                "name": name,
                "fingerprint": ":".join(f"{b:02x}" for b in key_id.to_bytes(16, "big")),
                "public_key": f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{key_id} {name}",
                "labels": dict(labels or {}),
                "created": iso(self.clock.now()),
            }
            return key_id

    def add_firewall(self, name: str, *, labels: dict[str, str] | None = None) -> int:
        """Register a firewall in the project and return its id."""
        with self._lock:
            firewall_id = self._new_id("firewall")
            self._firewalls[firewall_id] = {
                "id": firewall_id,
                "name": name,
                "labels": dict(labels or {}),
                "rules": [],
                "created": iso(self.clock.now()),
            }
            return firewall_id

    def advance(self, seconds: float) -> None:
        """Move the FakeClock forward by ``seconds``."""
        self._fake_clock().advance(seconds)

    def settle(self) -> None:
        """Advance the FakeClock until every action, transition and delete has finished."""
        with self._lock:
            now = self.clock.now()
            horizon = now
            for action in self._actions.values():
                horizon = max(horizon, action["finish_at"])
            for server in self._servers.values():
                horizon = max(horizon, *(at for at, _ in server["phases"]))
                if server["deleted_at"] is not None:
                    horizon = max(horizon, server["deleted_at"] + self.timings["primary_ip_release_lag"])
            for ip in self._primary_ips.values():
                if ip["released_at"] is not None:
                    horizon = max(horizon, ip["released_at"])
            if horizon > now:
                self.advance(horizon - now)

    @property
    def rate_limit_remaining(self) -> int:
        """Return how many requests the bucket would accept now."""
        with self._lock:
            return int(self._refilled_tokens(self.clock.now()))

    def user_data(self, server_id: int) -> str | None:
        """Return the user_data the create call sent for a server (kept in memory only)."""
        with self._lock:
            return self._user_data.get(server_id)

    @property
    def servers(self) -> dict[int, JSON]:
        """Return every server as ``GET /servers/{id}`` would."""
        with self._lock:
            self._refresh()
            return {sid: self._server_json(rec) for sid, rec in self._servers.items()}

    @property
    def primary_ips(self) -> dict[int, JSON]:
        """Return every Primary IP as ``GET /primary_ips/{id}`` would."""
        with self._lock:
            self._refresh()
            return {ip_id: self._primary_ip_json(rec) for ip_id, rec in self._primary_ips.items()}

    @property
    def actions(self) -> dict[int, JSON]:
        """Return every action as ``GET /actions/{id}`` would."""
        with self._lock:
            self._refresh()
            return {aid: self._action_json(rec) for aid, rec in self._actions.items()}

    def mutation_requests(self) -> list[RequestRecord]:
        """Return the recorded requests that were not GETs."""
        with self._lock:
            return [record for record in self.requests if record.method != "GET"]

    # ---------------------------------------------------------------- entry

    def handle(
        self, method: str, path: str, query: Query, body: JSON | None, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], JSON | None]:
        """Answer one API request: ``path`` is what follows ``/v1``.

        Raises SimulatedTimeout when an injected fault wants the client to time out.
        """
        with self._lock:
            self._refresh()
            method = method.upper()
            self.request_count += 1
            response_headers = {"X-Correlation-Id": uuid.uuid4().hex[:16]}
            self._reply_headers: dict[str, str] = {}
            self._request_path, self._request_query = path, query
            try:
                self._authenticate(headers)
            except ApiError as error:
                # Hetzner sends its rate-limit headers on every answer; a refused token spends none.
                self._bucket = {"tokens": self._refilled_tokens(self._now), "updated": self._now}
                response_headers.update(self._rate_headers())
                return self._answer(method, path, query, body, response_headers, error.status, error.body())

            fault = next((f for f in self._faults if f.matches(method, path)), None)
            if fault is not None and fault.timeout and not fault.after:
                self._consume(fault)
                self._record(method, path, query, body, None, timeout="connect")
                raise SimulatedTimeout(after_effect=False)

            allowed = self._take_token()
            response_headers.update(self._rate_headers())
            if not allowed:
                limited = ApiError("rate_limit_exceeded", f"limit of {self.rate_limit} requests per hour reached")
                return self._answer(method, path, query, body, response_headers, limited.status, limited.body())

            if fault is not None:
                self._consume(fault)
                if not fault.after:
                    return self._answer(method, path, query, body, response_headers, fault.status, _fault_body(fault))

            try:
                status, payload = self._dispatch(method, path, query, body)
                response_headers.update(self._reply_headers)
            except ApiError as error:
                status, payload = error.status, error.body()

            if fault is not None:
                if fault.timeout:
                    self._record(method, path, query, body, None, timeout="read")
                    raise SimulatedTimeout(after_effect=True)
                status, payload = fault.status, _fault_body(fault)
            return self._answer(method, path, query, body, response_headers, status, payload)

    def _answer(
        self,
        method: str,
        path: str,
        query: Query,
        body: JSON | None,
        headers: dict[str, str],
        status: int,
        payload: JSON | None,
    ) -> tuple[int, dict[str, str], JSON | None]:
        self._record(method, path, query, body, status)
        if payload is not None:
            headers["Content-Type"] = "application/json"
        return status, headers, payload

    def _record(
        self, method: str, path: str, query: Query, body: JSON | None, status: int | None, *, timeout: str | None = None
    ) -> None:
        self.requests.append(
            RequestRecord(
                method=method,
                path=path,
                query=copy.deepcopy(query),
                body=copy.deepcopy(body),
                status=status,
                at=self._now,
                timeout=timeout,
            )
        )
        if len(self.requests) > self.MAX_RECORDS:
            del self.requests[: len(self.requests) - self.MAX_RECORDS]

    def _authenticate(self, headers: dict[str, str]) -> None:
        lowered = {key.lower(): value for key, value in headers.items()}
        scheme, _, token = lowered.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or (self.token is not None and token != self.token):
            raise ApiError("unauthorized", "unable to authenticate")

    def _consume(self, fault: _Fault) -> None:
        fault.times -= 1
        if fault.times <= 0:
            self._faults.remove(fault)

    def _dispatch(self, method: str, path: str, query: Query, body: JSON | None) -> Answer:
        for route in self._ROUTES:
            match = route.pattern.fullmatch(path)
            if match is None:
                continue
            handler_name = route.handlers.get(method)
            if handler_name is None:
                raise ApiError("method_not_allowed", f"method {method} not allowed on {path}", status=405)
            handler: Callable[[tuple[str, ...], Query, JSON], Answer] = getattr(self, handler_name)
            if body is not None and not isinstance(body, dict):
                raise ApiError("json_error", "request body must be a JSON object")
            return handler(match.groups(), query, body or {})
        raise ApiError("not_found", f"route {path} not found")

    # --------------------------------------------------------- rate limit

    def _refilled_tokens(self, now: float) -> float:
        elapsed = max(0.0, now - float(self._bucket["updated"]))
        tokens = float(self._bucket["tokens"]) + elapsed * self.rate_refill_per_second
        return min(float(self.rate_limit), tokens)

    def _take_token(self) -> bool:
        tokens = self._refilled_tokens(self._now)
        allowed = tokens >= 1
        self._bucket = {"tokens": tokens - 1 if allowed else tokens, "updated": self._now}
        return allowed

    def _rate_headers(self) -> dict[str, str]:
        tokens = self._bucket["tokens"]
        missing = self.rate_limit - tokens
        reset = self._now + (missing / self.rate_refill_per_second if missing > 0 else 0)
        return {
            "RateLimit-Limit": str(self.rate_limit),
            "RateLimit-Remaining": str(max(0, int(tokens))),
            "RateLimit-Reset": str(math.ceil(reset)),
        }

    # ---------------------------------------------------- time and state

    def _fake_clock(self) -> FakeClock:
        if not isinstance(self.clock, FakeClock):
            raise TypeError("advancing time needs a FakeClock")
        return self.clock

    def _refresh(self) -> None:
        """Carry out what the clock says has happened: finished deletes, released IPs."""
        self._now = now = self.clock.now()
        for sid, server in list(self._servers.items()):
            if server["deleted_at"] is None or server["deleted_at"] > now:
                continue
            del self._servers[sid]
            self._user_data.pop(sid, None)
            for ip_id, ip in list(self._primary_ips.items()):
                if ip["assignee_id"] != sid:
                    continue
                if ip["auto_delete"]:
                    del self._primary_ips[ip_id]
                else:
                    ip["released_at"] = server["deleted_at"] + self.timings["primary_ip_release_lag"]
        for ip in self._primary_ips.values():
            if ip["released_at"] is not None and ip["released_at"] <= now:
                ip["assignee_id"] = None
                ip["released_at"] = None
        for action_id, action in list(self._actions.items()):
            if action["finish_at"] + _ACTION_RETENTION < now:
                del self._actions[action_id]

    def _new_id(self, kind: str) -> int:
        value = self._next_ids[kind]
        self._next_ids[kind] = value + 1
        return value

    def _server_status(self, server: JSON) -> str:
        if server["deleted_at"] is not None:
            return "deleting"
        status: str = server["phases"][0][1]
        for at, phase in server["phases"]:
            if at <= self._now:
                status = phase
        return status

    def _set_phases(self, server: JSON, *upcoming: tuple[float, str]) -> None:
        """Forget the server's planned transitions and plan ``upcoming`` ones from now."""
        current = self._server_status(server)
        server["phases"] = [[self._now, current], *([at, s] for at, s in upcoming)]

    def _start_action(self, command: str, duration: float, resources: Iterable[tuple[int, str]]) -> JSON:
        action_id = self._new_id("action")
        action = {
            "id": action_id,
            "command": command,
            "started": self._now,
            "finish_at": self._now + duration,
            "error": None,
            "resources": [{"id": rid, "type": rtype} for rid, rtype in resources],
        }
        self._actions[action_id] = action
        return action

    def _action_status(self, action: JSON) -> str:
        if self._now < action["finish_at"]:
            return "running"
        return "error" if action["error"] else "success"

    def _running_actions_on(self, resource_type: str, resource_id: int) -> list[JSON]:
        return [
            action
            for action in self._actions.values()
            if self._action_status(action) == "running"
            and {"id": resource_id, "type": resource_type} in action["resources"]
        ]

    def _ensure_unlocked(self, server_id: int) -> None:
        # Hetzner runs one action at a time per server; a second one is refused.
        if self._running_actions_on("server", server_id):
            raise ApiError("locked", "server is locked by another running action")

    def _server_ip(self, server_id: int, ip_type: str) -> JSON | None:
        return next(
            (ip for ip in self._primary_ips.values() if ip["assignee_id"] == server_id and ip["type"] == ip_type), None
        )

    def _check_quota(self, kind: str, count: int, adding: int = 1) -> None:
        limit = self._quota.get(kind)
        if limit is not None and count + adding > limit:
            label = "server" if kind == "servers" else "primary_ip"
            raise ApiError("resource_limit_exceeded", f"{label} limit exceeded", details={"limit": limit})

    def _available(self, spec: catalog.ServerTypeSpec, location: str) -> bool:
        return not spec.deprecated and location in spec.locations and (spec.name, location) not in self._unavailable

    # ------------------------------------------------------------ rendering

    def _action_json(self, action: JSON) -> JSON:
        status = self._action_status(action)
        if status == "running":
            span = action["finish_at"] - action["started"]
            progress = min(99, int(100 * (self._now - action["started"]) / span)) if span else 0
        else:
            progress = 100
        return {
            "id": action["id"],
            "command": action["command"],
            "status": status,
            "progress": progress,
            "started": iso(action["started"]),
            "finished": None if status == "running" else iso(action["finish_at"]),
            "resources": copy.deepcopy(action["resources"]),
            "error": copy.deepcopy(action["error"]) if status == "error" else None,
        }

    def _location_json(self, name: str) -> JSON:
        return dict(catalog.LOCATIONS_BY_NAME[name])

    def _server_type_json(self, spec: catalog.ServerTypeSpec) -> JSON:
        deprecation = dict(catalog.DEPRECATION) if spec.deprecated else None
        return {
            "id": spec.id,
            "name": spec.name,
            "description": spec.name.upper(),
            "category": spec.category,
            "cores": spec.cores,
            "memory": spec.memory,
            "disk": spec.disk,
            "storage_type": "local",
            "cpu_type": "shared",
            "architecture": "x86",
            "deprecated": spec.deprecated,
            "deprecation": deprecation,
            "prices": catalog.server_type_prices(spec),
            "locations": [
                {
                    "id": catalog.LOCATIONS_BY_NAME[loc]["id"],
                    "name": loc,
                    "deprecation": copy.deepcopy(deprecation),
                    "available": self._available(spec, loc),
                    "recommended": self._available(spec, loc),
                }
                for loc in spec.locations
            ],
        }

    def _server_json(self, server: JSON) -> JSON:
        ipv4 = self._server_ip(server["id"], "ipv4")
        ipv6 = self._server_ip(server["id"], "ipv6")
        spec = catalog.SERVER_TYPES_BY_NAME[server["server_type"]]
        return {
            "id": server["id"],
            "name": server["name"],
            "status": self._server_status(server),
            "created": iso(server["created"]),
            "public_net": {
                "ipv4": None
                if ipv4 is None
                else {"id": ipv4["id"], "ip": ipv4["ip"], "blocked": False, "dns_ptr": _dns_ptr(ipv4["ip"])},
                "ipv6": None if ipv6 is None else {"id": ipv6["id"], "ip": ipv6["ip"], "blocked": False, "dns_ptr": []},
                "floating_ips": [],
                "firewalls": [{"id": fid, "status": "applied"} for fid in server["firewalls"]],
            },
            "private_net": [],
            "server_type": self._server_type_json(spec),
            "location": self._location_json(server["location"]),
            "image": catalog.image_json(catalog.IMAGES_BY_NAME[server["image"]]),
            "iso": None,
            "rescue_enabled": False,
            "locked": False,
            "backup_window": None,
            "outgoing_traffic": 0,
            "ingoing_traffic": 0,
            "included_traffic": (
                catalog.TRAFFIC_EU if server["location"] in catalog.EU_LOCATIONS else catalog.TRAFFIC_ELSEWHERE
            ),
            "protection": {"delete": False, "rebuild": False},
            "labels": dict(server["labels"]),
            "volumes": [],
            "load_balancers": [],
            "primary_disk_size": spec.disk,
            "placement_group": None,
        }

    def _primary_ip_json(self, ip: JSON) -> JSON:
        return {
            "id": ip["id"],
            "name": ip["name"],
            "ip": ip["ip"],
            "type": ip["type"],
            "dns_ptr": ([{"ip": ip["ip"], "dns_ptr": _dns_ptr(ip["ip"])}] if ip["type"] == "ipv4" else []),
            "location": self._location_json(ip["location"]),
            "blocked": False,
            "protection": {"delete": False},
            "labels": dict(ip["labels"]),
            "created": iso(ip["created"]),
            "assignee_id": ip["assignee_id"],
            # Since 2026-08-01 an unassigned Primary IP no longer claims to belong to a server.
            "assignee_type": "server" if ip["assignee_id"] is not None else "unassigned",
            "auto_delete": ip["auto_delete"],
        }

    def _firewall_json(self, firewall: JSON) -> JSON:
        applied = [
            {"type": "server", "server": {"id": sid}}
            for sid, server in self._servers.items()
            if firewall["id"] in server["firewalls"]
        ]
        return {**copy.deepcopy(firewall), "applied_to": applied}

    # ------------------------------------------------------------ listing

    def _page(self, query: Query, key: str, items: list[JSON]) -> Answer:
        page = _int_param(query, "page", 1)
        # Hetzner caps per_page at 50 rather than refusing more.
        per_page = min(_int_param(query, "per_page", 25), 50)
        total = len(items)
        last_page = max(1, math.ceil(total / per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        links = {
            "prev": page - 1 if page > 1 else None,
            "next": page + 1 if page < last_page else None,
            "last": last_page,
        }
        self._reply_headers["Link"] = ", ".join(
            f'<{self._page_url(number, per_page)}>; rel="{rel}"' for rel, number in links.items() if number is not None
        )
        return 200, {
            key: chunk,
            "meta": {
                "pagination": {
                    "page": page,
                    "per_page": per_page,
                    "previous_page": page - 1 if page > 1 else None,
                    "next_page": page + 1 if page < last_page else None,
                    "last_page": last_page,
                    "total_entries": total,
                }
            },
        }

    def _page_url(self, page: int, per_page: int) -> str:
        """Return a page's URL relative to the one called (the transport makes it absolute)."""
        query = {name: values for name, values in self._request_query.items() if name not in ("page", "per_page")}
        query.update({"page": [str(page)], "per_page": [str(per_page)]})
        return f"{self._request_path.rsplit('/', 1)[-1]}?{urlencode(query, doseq=True)}"

    def _filtered(
        self,
        query: Query,
        items: list[JSON],
        *,
        sortable: Iterable[str] = ("id",),
        extra: dict[str, Callable[[JSON, str], bool]] | None = None,
    ) -> list[JSON]:
        """Apply the ``name``, ``label_selector``, extra filters and ``sort`` of a list call."""
        if (name := _one(query, "name")) is not None:
            items = [item for item in items if item.get("name") == name]
        if selector := _one(query, "label_selector"):
            try:
                parse_selector(selector)
            except LabelSelectorError as error:
                raise invalid_input("label_selector", str(error)) from error
            items = [item for item in items if matches(selector, item.get("labels", {}))]
        for param, keep in (extra or {}).items():
            if (value := _one(query, param)) is not None:
                items = [item for item in items if keep(item, value)]
        return _sorted(items, query.get("sort", []), tuple(sortable))

    # --------------------------------------------------------------- servers

    def _server_or_404(self, server_id: str | int) -> JSON:
        server = self._servers.get(int(server_id))
        if server is None:
            raise ApiError("not_found", f"server with ID '{server_id}' not found")
        return server

    def _list_servers(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        statuses = query.get("status", [])
        for status in statuses:
            if status not in SERVER_STATUSES:
                raise invalid_input("status", f"unknown server status {status!r}")
        items = [self._server_json(server) for server in self._servers.values()]
        if statuses:
            items = [item for item in items if item["status"] in statuses]
        items = self._filtered(query, items, sortable=("id", "name", "created"))
        return self._page(query, "servers", items)

    def _get_server(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        return 200, {"server": self._server_json(self._server_or_404(args[0]))}

    _CREATE_SERVER_FIELDS = (
        "automount",
        "datacenter",
        "firewalls",
        "image",
        "labels",
        "location",
        "name",
        "networks",
        "placement_group",
        "public_net",
        "server_type",
        "ssh_keys",
        "start_after_create",
        "user_data",
        "volumes",
    )
    _PUBLIC_NET_FIELDS = ("enable_ipv4", "enable_ipv6", "ipv4", "ipv6")

    def _create_server(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        reject_unknown_fields(body, self._CREATE_SERVER_FIELDS)
        name = body.get("name")
        if not isinstance(name, str) or not _HOSTNAME_RE.match(name):
            raise invalid_input("name", "must be a valid hostname (RFC 1123)")
        if "datacenter" in body:
            # Hetzner removed datacenters from its API on 2026-07-01.
            raise invalid_input("datacenter", "datacenters are no longer supported")
        spec = _lookup_server_type(body.get("server_type"))
        image = _lookup(catalog.IMAGES_BY_NAME, catalog.IMAGES_BY_ID, body.get("image"), "image")
        ssh_key_ids = [self._lookup_ssh_key(ref) for ref in body.get("ssh_keys") or []]
        firewall_ids = [self._lookup_firewall(item) for item in body.get("firewalls") or []]
        for unsupported in ("volumes", "networks", "placement_group"):
            if body.get(unsupported):
                raise invalid_input(unsupported, "not supported by the sandbox")
        try:
            labels = validate_labels(body.get("labels") or {})
        except LabelSelectorError as error:
            raise invalid_input("labels", str(error)) from error
        user_data = body.get("user_data")
        if user_data is not None and (not isinstance(user_data, str) or len(user_data.encode()) > _USER_DATA_LIMIT):
            raise invalid_input("user_data", "must be a string of at most 32 KiB")

        public_net = body.get("public_net") or {}
        if not isinstance(public_net, dict):
            raise invalid_input("public_net", "must be an object")
        reject_unknown_fields(public_net, self._PUBLIC_NET_FIELDS, "public_net.")
        enable_ipv4 = public_net.get("enable_ipv4", True) is not False
        enable_ipv6 = public_net.get("enable_ipv6", True) is not False
        static_ipv4 = self._given_primary_ip(public_net, "ipv4", enable_ipv4)
        static_ipv6 = self._given_primary_ip(public_net, "ipv6", enable_ipv6)
        if not enable_ipv4 and not enable_ipv6:
            raise invalid_input("public_net", "a server without public IPs needs a network")

        location = self._create_location(body.get("location"), spec, static_ipv4 or static_ipv6)
        if location not in spec.locations:
            # As Hetzner answers it: a rule, not a field's validation, so no `details.fields` (`details: {}`).
            raise ApiError("invalid_input", "unsupported location for server type")
        if not self._available(spec, location):
            raise ApiError("resource_unavailable", f"server type {spec.name} is unavailable in {location}")
        if any(server["name"] == name for server in self._servers.values()):
            raise ApiError("uniqueness_error", "server name is already used", details={"fields": [{"name": "name"}]})
        for given in (static_ipv4, static_ipv6):
            if given is None:
                continue
            if given["assignee_id"] is not None:
                raise ApiError("primary_ip_assigned", f"primary IP {given['id']} is already assigned to a server")
            if given["location"] != location:
                # Hetzner still names the error after datacenters, which it removed.
                raise ApiError(
                    "primary_ip_datacenter_mismatch",
                    f"primary IP {given['id']} is in {given['location']}, not in {location}",
                )
        self._check_quota("servers", len(self._servers))
        new_ips = (enable_ipv4 and static_ipv4 is None) + (enable_ipv6 and static_ipv6 is None)
        if new_ips:
            self._check_quota("primary_ips", len(self._primary_ips), new_ips)

        server_id = self._new_id("server")
        start = body.get("start_after_create") is not False
        t = self.timings
        phases = [[self._now, "initializing"]]
        phases += (
            [[self._now + t["create_initializing"], "starting"], [self._now + t["create_running"], "running"]]
            if start
            else [[self._now + t["create_initializing"], "off"]]
        )
        server = {
            "id": server_id,
            "name": name,
            "server_type": spec.name,
            "image": image["name"],
            "location": location,
            "labels": labels,
            "created": self._now,
            "phases": phases,
            "deleted_at": None,
            "ssh_keys": ssh_key_ids,
            "firewalls": firewall_ids,
        }
        self._servers[server_id] = server
        if user_data is not None:
            self._user_data[server_id] = user_data
        for version, given, enabled in (("ipv4", static_ipv4, enable_ipv4), ("ipv6", static_ipv6, enable_ipv6)):
            if given is not None:
                given["assignee_id"] = server_id
            elif enabled:
                self._new_primary_ip(
                    name=None, ip_type=version, location=location, labels={}, auto_delete=True, assignee_id=server_id
                )
        action = self._start_action("create_server", t["create_initializing"], [(server_id, "server")])
        next_actions = []
        if start:
            # start_after_create is a start_server action of its own, listed in next_actions;
            # the server stays locked until it finishes.
            next_actions.append(self._start_action("start_server", t["create_running"], [(server_id, "server")]))
        return 201, {
            "server": self._server_json(server),
            "action": self._action_json(action),
            "next_actions": [self._action_json(next_) for next_ in next_actions],
            "root_password": None if ssh_key_ids else secrets.token_urlsafe(12),
        }

    def _given_primary_ip(self, public_net: JSON, version: str, enabled: bool) -> JSON | None:
        """Return the existing Primary IP that ``public_net.<version>`` names, if any."""
        ref = public_net.get(version)
        if ref is None:
            return None
        if not enabled:
            raise invalid_input(f"public_net.{version}", f"given while enable_{version} is false")
        ip = self._primary_ips.get(_as_int(ref, f"public_net.{version}"))
        if ip is None:
            raise ApiError("not_found", f"primary_ip with ID '{ref}' not found")
        if ip["type"] != version:
            raise ApiError(
                "primary_ip_version_mismatch", f"primary IP {ref} is an {ip['type']} Primary IP, not {version}"
            )
        return ip

    def _create_location(self, ref: Any, spec: catalog.ServerTypeSpec, static_ipv4: JSON | None) -> str:
        if ref is not None:
            return str(
                _lookup(catalog.LOCATIONS_BY_NAME, {loc["id"]: loc for loc in catalog.LOCATIONS}, ref, "location")[
                    "name"
                ]
            )
        if static_ipv4 is not None:
            return str(static_ipv4["location"])
        # Without a location Hetzner picks one where the type can be ordered.
        for location in spec.locations:
            if self._available(spec, location):
                return location
        return spec.locations[0]

    def _lookup_ssh_key(self, ref: Any) -> int:
        for key in self._ssh_keys.values():
            if ref in (key["id"], key["name"]) or (isinstance(ref, str) and ref == str(key["id"])):
                return int(key["id"])
        raise invalid_input("ssh_keys", f"SSH key {ref!r} not found")

    def _lookup_firewall(self, item: Any) -> int:
        ref = item.get("firewall") if isinstance(item, dict) else None
        for firewall in self._firewalls.values():
            if ref == firewall["id"]:
                return int(firewall["id"])
        raise invalid_input("firewalls", f"firewall {ref!r} not found")

    def _update_server(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        server = self._server_or_404(args[0])
        reject_unknown_fields(body, ("name", "labels"))
        if "name" in body:
            name = body["name"]
            if not isinstance(name, str) or not _HOSTNAME_RE.match(name):
                raise invalid_input("name", "must be a valid hostname (RFC 1123)")
            if any(other["name"] == name and other["id"] != server["id"] for other in self._servers.values()):
                raise ApiError("uniqueness_error", "server name is already used")
            server["name"] = name
        if "labels" in body:
            try:
                server["labels"] = validate_labels(body["labels"])
            except LabelSelectorError as error:
                raise invalid_input("labels", str(error)) from error
        return 200, {"server": self._server_json(server)}

    def _delete_server(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        server = self._server_or_404(args[0])
        if server["deleted_at"] is not None:
            return 200, {"action": self._action_json(self._actions[server["delete_action"]])}
        # Like any other action, a delete waits for the running one (its create, its start,
        # a reboot, a power cycle): Hetzner answers locked meanwhile.
        self._ensure_unlocked(server["id"])
        action = self._start_action("delete_server", self.timings["delete"], [(server["id"], "server")])
        server["phases"] = [[self._now, "deleting"]]
        server["deleted_at"] = self._now + self.timings["delete"]
        server["delete_action"] = action["id"]
        return 200, {"action": self._action_json(action)}

    def _server_action(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        server = self._server_or_404(args[0])
        reject_unknown_fields(body, ())  # power and reboot actions take no fields
        command = args[1]
        self._ensure_unlocked(server["id"])
        status = self._server_status(server)
        t = self.timings
        now = self._now
        duration = 0.0  # asking for the state the server is already in succeeds at once
        if command == "poweroff" and status != "off":
            self._set_phases(server, (now, "stopping"), (now + t["poweroff"], "off"))
            duration = t["poweroff"]
        elif command == "poweron" and status != "running":
            self._set_phases(server, (now, "starting"), (now + t["poweron"], "running"))
            duration = t["poweron"]
        elif command == "shutdown" and status != "off":
            # An ACPI request: the action ends once it is sent, not when the server is off.
            self._set_phases(server, (now + t["shutdown_off"], "off"))
            duration = t["shutdown_action"]
        elif command == "reset":
            if status == "off":
                self._set_phases(server, (now, "starting"), (now + t["reset"], "running"))
            duration = t["reset"]
        elif command == "reboot" and status != "off":
            duration = t["reboot"]
        name = {
            "poweroff": "stop_server",
            "poweron": "start_server",
            "shutdown": "shutdown_server",
            "reboot": "reboot_server",
            "reset": "reset_server",
        }[command]
        action = self._start_action(name, duration, [(server["id"], "server")])
        return 201, {"action": self._action_json(action)}

    def _rebuild_server(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        """Rewrite the server's disk from an image: powered off first, `rebuilding`, then booted anew.

        As Hetzner does: `user_data` (optional) replaces the one of the create; the server keeps its
        id, name, labels and IPs; it is locked while the rebuild runs. `rebuild_leaves_off` makes
        the server end `off` instead of running, for tests of a caller that powers it on.
        """
        server = self._server_or_404(args[0])
        reject_unknown_fields(body, ("image", "user_data"))
        image = _lookup(catalog.IMAGES_BY_NAME, catalog.IMAGES_BY_ID, body.get("image"), "image")
        user_data = body.get("user_data")
        if user_data is not None and (not isinstance(user_data, str) or len(user_data.encode()) > _USER_DATA_LIMIT):
            raise invalid_input("user_data", "must be a string of at most 32 KiB")
        if server["deleted_at"] is not None:
            raise ApiError("locked", "server is locked by another running action")
        self._ensure_unlocked(server["id"])
        duration = self.timings["rebuild"]
        self._set_phases(
            server, (self._now, "rebuilding"), (self._now + duration, "off" if self.rebuild_leaves_off else "running")
        )
        server["image"] = image["name"]
        if user_data is not None:
            self._user_data[server["id"]] = user_data
        action = self._start_action("rebuild_server", duration, [(server["id"], "server")])
        return 201, {"action": self._action_json(action), "root_password": None if server["ssh_keys"] else "sandbox"}

    def _list_server_actions(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        server_id = int(args[0])
        if server_id not in self._servers:
            raise ApiError("not_found", f"server with ID '{server_id}' not found")
        return self._list_actions_of(query, "server", server_id)

    # ------------------------------------------------------------ actions

    def _list_actions_of(self, query: Query, resource_type: str, resource_id: int) -> Answer:
        items = [
            action
            for action in self._actions.values()
            if {"id": resource_id, "type": resource_type} in action["resources"]
        ]
        return self._page(query, "actions", self._action_items(query, items))

    def _action_items(self, query: Query, actions: list[JSON]) -> list[JSON]:
        statuses = query.get("status", [])
        for status in statuses:
            if status not in ("running", "success", "error"):
                raise invalid_input("status", f"unknown action status {status!r}")
        items = [self._action_json(action) for action in actions]
        if statuses:
            items = [item for item in items if item["status"] in statuses]
        return _sorted(items, query.get("sort", []), ("id", "command", "status", "started", "finished"))

    def _list_actions(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        ids = [_as_int(value, "id") for value in query.get("id", [])]
        if not ids:
            # Listing every action of a project was removed from the API in January 2025.
            raise invalid_input("id", "at least one action id is required")
        wanted = set(ids)
        actions = [action for aid, action in self._actions.items() if aid in wanted]
        return self._page(query, "actions", self._action_items(query, actions))

    def _get_action(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        action = self._actions.get(int(args[-1]))
        if action is None:
            raise ApiError("not_found", f"action with ID '{args[-1]}' not found")
        return 200, {"action": self._action_json(action)}

    def _get_resource_action(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        return self._get_action(args, query, body)

    # --------------------------------------------------------- primary IPs

    def _primary_ip_or_404(self, ip_id: str | int) -> JSON:
        ip = self._primary_ips.get(int(ip_id))
        if ip is None:
            raise ApiError("not_found", f"primary_ip with ID '{ip_id}' not found")
        return ip

    def _new_primary_ip(
        self,
        *,
        name: str | None,
        ip_type: str = "ipv4",
        location: str,
        labels: dict[str, str],
        auto_delete: bool,
        assignee_id: int | None,
    ) -> JSON:
        ip_id = self._new_id("primary_ip")
        if ip_type == "ipv4":
            address = str(_FIRST_IPV4 + self._new_id("ipv4"))
        else:  # an IPv6 Primary IP is a /64 network
            offset = self._new_id("ipv6") << 64
            address = str(ipaddress.IPv6Network((int(_FIRST_IPV6.network_address) + offset, 64)))
        ip = {
            "id": ip_id,
            "name": name or f"primary_ip-{ip_id}",
            "ip": address,
            "type": ip_type,
            "location": location,
            "labels": labels,
            "created": self._now,
            "auto_delete": auto_delete,
            "assignee_id": assignee_id,
            "released_at": None,
        }
        self._primary_ips[ip_id] = ip
        return ip

    def _list_primary_ips(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        items = [self._primary_ip_json(ip) for ip in self._primary_ips.values()]
        items = self._filtered(
            query, items, sortable=("id", "created"), extra={"ip": lambda item, value: item["ip"] == value}
        )
        return self._page(query, "primary_ips", items)

    def _get_primary_ip(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        return 200, {"primary_ip": self._primary_ip_json(self._primary_ip_or_404(args[0]))}

    def _create_primary_ip(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        reject_unknown_fields(
            body, ("assignee_id", "assignee_type", "auto_delete", "datacenter", "labels", "location", "name", "type")
        )
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise invalid_input("name", "is required")
        ip_type = body.get("type")
        if ip_type not in ("ipv4", "ipv6"):
            raise invalid_input("type", "must be ipv4 or ipv6")
        try:
            labels = validate_labels(body.get("labels") or {})
        except LabelSelectorError as error:
            raise invalid_input("labels", str(error)) from error
        assignee_id = body.get("assignee_id")
        location_ref = body.get("location")
        if "datacenter" in body:
            raise invalid_input("datacenter", "datacenters are no longer supported")
        if (assignee_id is None) == (location_ref is None):
            raise invalid_input("location", "give exactly one of location and assignee_id")
        server = None
        if assignee_id is not None:
            if body.get("assignee_type", "server") != "server":
                raise invalid_input("assignee_type", "must be server")
            server = self._server_or_404(_as_int(assignee_id, "assignee_id"))
            location = server["location"]
        else:
            location = _lookup(
                catalog.LOCATIONS_BY_NAME, {loc["id"]: loc for loc in catalog.LOCATIONS}, location_ref, "location"
            )["name"]
        if any(ip["name"] == name for ip in self._primary_ips.values()):
            raise ApiError(
                "uniqueness_error", "primary_ip name is already used", details={"fields": [{"name": "name"}]}
            )
        if server is not None:
            self._check_assignable(server, ip_type)
        self._check_quota("primary_ips", len(self._primary_ips))
        ip = self._new_primary_ip(
            name=name,
            ip_type=ip_type,
            location=location,
            labels=labels,
            auto_delete=bool(body.get("auto_delete", False)),
            assignee_id=None if server is None else server["id"],
        )
        resources = [(ip["id"], "primary_ip")]
        duration = 0.0
        if server is not None:
            resources.append((server["id"], "server"))
            duration = self.timings["primary_ip_assign"]
        action = self._start_action("create_primary_ip", duration, resources)
        return 201, {"primary_ip": self._primary_ip_json(ip), "action": self._action_json(action)}

    def _check_assignable(self, server: JSON, ip_type: str) -> None:
        self._ensure_unlocked(server["id"])
        # Hetzner assigns and unassigns Primary IPs only on powered-off servers.
        if self._server_status(server) != "off":
            raise ApiError("server_not_stopped", "server must be stopped")
        if self._server_ip(server["id"], ip_type) is not None:
            raise ApiError(f"server_has_{ip_type}", f"server already has an {ip_type.replace('ipv', 'IPv')} address")

    def _update_primary_ip(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        ip = self._primary_ip_or_404(args[0])
        reject_unknown_fields(body, ("name", "labels", "auto_delete"))
        if "name" in body:
            if any(other["name"] == body["name"] and other["id"] != ip["id"] for other in self._primary_ips.values()):
                raise ApiError("uniqueness_error", "primary_ip name is already used")
            ip["name"] = body["name"]
        if "labels" in body:
            try:
                ip["labels"] = validate_labels(body["labels"])
            except LabelSelectorError as error:
                raise invalid_input("labels", str(error)) from error
        if "auto_delete" in body:
            ip["auto_delete"] = bool(body["auto_delete"])
        return 200, {"primary_ip": self._primary_ip_json(ip)}

    def _delete_primary_ip(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        ip = self._primary_ip_or_404(args[0])
        if ip["assignee_id"] is not None:
            raise ApiError("must_be_unassigned", "primary IP must be unassigned")
        del self._primary_ips[ip["id"]]
        return 204, None

    def _primary_ip_action(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        ip = self._primary_ip_or_404(args[0])
        reject_unknown_fields(body, ("assignee_id", "assignee_type") if args[1] == "assign" else ())
        if args[1] == "assign":
            if body.get("assignee_type", "server") != "server":
                raise invalid_input("assignee_type", "must be server")
            server = self._server_or_404(_as_int(body.get("assignee_id"), "assignee_id"))
            if ip["assignee_id"] is not None:
                raise ApiError("primary_ip_already_assigned", "primary IP is already assigned to a server")
            if ip["location"] != server["location"]:
                raise invalid_input("assignee_id", "server and primary IP must be in the same location")
            self._check_assignable(server, ip["type"])
            ip["assignee_id"] = server["id"]
            action = self._start_action(
                "assign_primary_ip",
                self.timings["primary_ip_assign"],
                [(ip["id"], "primary_ip"), (server["id"], "server")],
            )
            return 201, {"action": self._action_json(action)}

        assigned_to = self._servers.get(ip["assignee_id"]) if ip["assignee_id"] else None
        if assigned_to is None:
            # Unassigned already, or its server is gone and the release is pending.
            ip["assignee_id"] = None
            ip["released_at"] = None
            action = self._start_action("unassign_primary_ip", 0.0, [(ip["id"], "primary_ip")])
            return 201, {"action": self._action_json(action)}
        self._ensure_unlocked(assigned_to["id"])
        if self._server_status(assigned_to) != "off":
            raise ApiError("server_not_stopped", "server must be stopped")
        ip["assignee_id"] = None
        action = self._start_action(
            "unassign_primary_ip",
            self.timings["primary_ip_unassign"],
            [(ip["id"], "primary_ip"), (assigned_to["id"], "server")],
        )
        return 201, {"action": self._action_json(action)}

    def _list_primary_ip_actions(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        self._primary_ip_or_404(args[0])
        return self._list_actions_of(query, "primary_ip", int(args[0]))

    # ------------------------------------------------------------ catalog

    def _list_server_types(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        items = [self._server_type_json(spec) for spec in catalog.SERVER_TYPES]
        return self._page(query, "server_types", self._filtered(query, items))

    def _get_server_type(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        spec = catalog.SERVER_TYPES_BY_ID.get(int(args[0]))
        if spec is None:
            raise ApiError("not_found", f"server_type with ID '{args[0]}' not found")
        return 200, {"server_type": self._server_type_json(spec)}

    def _list_locations(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        items = [dict(location) for location in catalog.LOCATIONS]
        return self._page(query, "locations", self._filtered(query, items, sortable=("id", "name")))

    def _get_location(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        for location in catalog.LOCATIONS:
            if location["id"] == int(args[0]):
                return 200, {"location": dict(location)}
        raise ApiError("not_found", f"location with ID '{args[0]}' not found")

    def _list_images(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        items = [catalog.image_json(image) for image in catalog.IMAGES]
        items = self._filtered(
            query,
            items,
            sortable=("id", "name", "created"),
            extra={
                "type": lambda item, value: item["type"] == value,
                "architecture": lambda item, value: item["architecture"] == value,
            },
        )
        return self._page(query, "images", items)

    def _get_image(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        image = catalog.IMAGES_BY_ID.get(int(args[0]))
        if image is None:
            raise ApiError("not_found", f"image with ID '{args[0]}' not found")
        return 200, {"image": catalog.image_json(image)}

    def _list_ssh_keys(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        items = [dict(key) for key in self._ssh_keys.values()]
        items = self._filtered(
            query,
            items,
            sortable=("id", "name"),
            extra={"fingerprint": lambda item, value: item["fingerprint"] == value},
        )
        return self._page(query, "ssh_keys", items)

    def _get_ssh_key(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        key = self._ssh_keys.get(int(args[0]))
        if key is None:
            raise ApiError("not_found", f"ssh_key with ID '{args[0]}' not found")
        return 200, {"ssh_key": dict(key)}

    def _list_firewalls(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        items = [self._firewall_json(firewall) for firewall in self._firewalls.values()]
        items = self._filtered(query, items, sortable=("id", "name"))
        return self._page(query, "firewalls", items)

    def _get_firewall(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        firewall = self._firewalls.get(int(args[0]))
        if firewall is None:
            raise ApiError("not_found", f"firewall with ID '{args[0]}' not found")
        return 200, {"firewall": self._firewall_json(firewall)}

    def _datacenters_gone(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        # Hetzner removed datacenters on 2026-07-01 and its endpoints answer 410 since 2026-10-01.
        raise ApiError("deprecated_api_endpoint", "datacenters were removed from the API; use locations")

    def _get_pricing(self, args: tuple[str, ...], query: Query, body: JSON) -> Answer:
        return 200, {"pricing": catalog.pricing()}


# ------------------------------------------------------------------ helpers


def _int_keys(mapping: dict[str, Any]) -> dict[int, Any]:
    return {int(key): value for key, value in mapping.items()}


def _fault_body(fault: _Fault) -> JSON:
    return ApiError(fault.code, fault.message, status=fault.status, details=fault.details).body()


def _dns_ptr(ip: str) -> str:
    return f"static.{'.'.join(reversed(ip.split('.')))}.clients.your-server.de"


def _one(query: Query, name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _as_int(value: Any, field_name: str) -> int:
    if isinstance(value, bool):
        raise invalid_input(field_name, "must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise invalid_input(field_name, "must be an integer")


def _int_param(query: Query, name: str, default: int) -> int:
    raw = _one(query, name)
    if raw is None:
        return default
    value = _as_int(raw, name)
    if value < 1:
        raise invalid_input(name, "must be at least 1")
    return value


def _sorted(items: list[JSON], sorts: list[str], allowed: tuple[str, ...]) -> list[JSON]:
    items = sorted(items, key=lambda item: item["id"])
    for spec in reversed(sorts):
        key, _, direction = spec.partition(":")
        if key not in allowed or direction not in ("", "asc", "desc"):
            raise invalid_input("sort", f"unsupported sort {spec!r}")
        items = sorted(items, key=lambda item: (item[key] is None, item[key]), reverse=direction == "desc")
    return items


def _lookup(by_name: dict[str, JSON], by_id: dict[int, JSON], ref: Any, field_name: str) -> JSON:
    """Find a catalog entry by name or id, as the API accepts both."""
    if isinstance(ref, str) and ref in by_name:
        return by_name[ref]
    if isinstance(ref, int) and not isinstance(ref, bool) and ref in by_id:
        return by_id[ref]
    if isinstance(ref, str) and ref.isdigit() and int(ref) in by_id:
        return by_id[int(ref)]
    raise invalid_input(field_name, f"{field_name} {ref!r} not found")


def _lookup_server_type(ref: Any) -> catalog.ServerTypeSpec:
    if isinstance(ref, str) and ref in catalog.SERVER_TYPES_BY_NAME:
        return catalog.SERVER_TYPES_BY_NAME[ref]
    if isinstance(ref, (int, str)) and not isinstance(ref, bool):
        if str(ref).isdigit() and int(ref) in catalog.SERVER_TYPES_BY_ID:
            return catalog.SERVER_TYPES_BY_ID[int(ref)]
    raise invalid_input("server_type", f"server type {ref!r} not found")
