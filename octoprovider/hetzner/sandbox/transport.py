"""A requests adapter that answers from a sandbox cloud instead of the network."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qs, urljoin, urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from .cloud import ApiError, SimulatedTimeout


class Cloud(Protocol):
    """Anything that answers API requests like SandboxCloud.handle."""

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any] | None, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], dict[str, Any] | None]: ...


@dataclass(frozen=True)
class Exchange:
    """One request that passed the transport, and the answer it got (None: a timeout)."""

    method: str
    path: str  # what follows /v1
    query: dict[str, list[str]]
    body: Any  # the JSON the client sent, None without a body
    request_headers: dict[str, str]
    status: int | None
    headers: dict[str, str]
    payload: Any  # the JSON answered, None for an empty answer or a timeout


Observer = Callable[[Exchange], None]

_observers: list[Observer] = []
_observers_lock = threading.Lock()


def add_observer(observer: Observer) -> None:
    """Show every exchange of every SandboxAdapter to ``observer`` (a test recorder)."""
    with _observers_lock:
        _observers.append(observer)


def remove_observer(observer: Observer) -> None:
    """Stop showing exchanges to ``observer``."""
    with _observers_lock:
        if observer in _observers:
            _observers.remove(observer)


class SandboxAdapter(BaseAdapter):
    """Send requests to a sandbox cloud; mount it on the hcloud client's session.

    ``observer`` (and any observer added with :func:`add_observer`) sees every exchange.
    """

    def __init__(self, cloud: Cloud, *, observer: Observer | None = None) -> None:
        super().__init__()
        self.cloud = cloud
        self.observer = observer

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        """Answer ``request`` from the cloud, or raise the timeout a fault asks for."""
        url = urlsplit(request.url or "")
        path = url.path
        marker = path.find("/v1")
        if marker >= 0:
            path = path[marker + 3 :]
        path = path or "/"
        query = parse_qs(url.query, keep_blank_values=True)
        headers = {key: value if isinstance(value, str) else value.decode() for key, value in request.headers.items()}
        method = (request.method or "GET").upper()
        try:
            body = _json_body(request.body)  # type: ignore[arg-type]  # requests' union
        except ValueError as error:
            error_body = ApiError("json_error", f"invalid JSON body: {error}").body()
            self._observe(Exchange(method, path, query, request.body, headers, 400, {}, error_body))
            return self._response(request, 400, {}, error_body)
        try:
            status, response_headers, payload = self.cloud.handle(method, path, query, body, headers)
            # The answer was decided when the request arrived; it reaches the client this much later
            # (the cloud's lock is not held meanwhile, so other requests go on).
            delay = getattr(self.cloud, "latency_for", lambda *_: 0.0)(method, path)
            if delay > 0:
                time.sleep(delay)
        except SimulatedTimeout as timeout_error:
            self._observe(Exchange(method, path, query, body, headers, None, {}, None))
            if timeout_error.after_effect:
                raise requests.exceptions.ReadTimeout(
                    "sandbox: the response was lost", request=request
                ) from timeout_error
            raise requests.exceptions.ConnectTimeout(
                "sandbox: the request never arrived", request=request
            ) from timeout_error
        response = self._response(request, status, response_headers, payload)
        self._observe(Exchange(method, path, query, body, headers, status, dict(response.headers), payload))
        return response

    def _observe(self, exchange: Exchange) -> None:
        with _observers_lock:
            observers = [*_observers, *([self.observer] if self.observer else [])]
        for observer in observers:
            observer(exchange)

    def close(self) -> None:
        """Release nothing: the sandbox holds no connections."""

    @staticmethod
    def _response(
        request: requests.PreparedRequest, status: int, headers: dict[str, str], payload: dict[str, Any] | None
    ) -> requests.Response:
        response = requests.Response()
        response.status_code = status
        response.headers = CaseInsensitiveDict(headers)
        if "Link" in response.headers:
            # The cloud knows only the path after /v1; like Hetzner's, the links a client
            # follows are absolute, so resolve them against the URL it called.
            response.headers["Link"] = _absolute_links(response.headers["Link"], request.url or "")
        response._content = b"" if payload is None else json.dumps(payload).encode()
        if payload is not None:
            response.headers.setdefault("Content-Type", "application/json")
        response.headers.setdefault("X-Correlation-Id", "sandbox")
        response.encoding = "utf-8"
        response.url = request.url or ""
        response.request = request
        try:
            response.reason = HTTPStatus(status).phrase
        except ValueError:
            response.reason = "Unknown"
        return response


def _json_body(raw: bytes | str | None) -> dict[str, Any] | None:
    if raw is None or raw in (b"", ""):
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    body: dict[str, Any] | None = json.loads(text)
    return body


def _absolute_links(header: str, base: str) -> str:
    links = []
    for link in header.split(","):
        target, _, params = link.strip().partition(">")
        links.append(f"<{urljoin(base, target.lstrip('<'))}>{params}")
    return ", ".join(links)
