"""A requests adapter that answers from a sandbox cloud instead of the network."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from .cloud import ApiError, SimulatedTimeout


class Cloud(Protocol):
    """Anything that answers API requests like SandboxCloud.handle."""

    def handle(self, method: str, path: str, query: dict[str, list[str]],
               body: dict[str, Any] | None,
               headers: dict[str, str]) -> tuple[int, dict[str, str], dict[str, Any] | None]: ...


class SandboxAdapter(BaseAdapter):
    """Send requests to a sandbox cloud; mount it on the hcloud client's session."""

    def __init__(self, cloud: Cloud) -> None:
        super().__init__()
        self.cloud = cloud

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: Any = None, verify: Any = True, cert: Any = None,
             proxies: Any = None) -> requests.Response:
        """Answer ``request`` from the cloud, or raise the timeout a fault asks for."""
        url = urlsplit(request.url or "")
        path = url.path
        marker = path.find("/v1")
        if marker >= 0:
            path = path[marker + 3:]
        path = path or "/"
        query = parse_qs(url.query, keep_blank_values=True)
        headers = {key: value if isinstance(value, str) else value.decode()
                   for key, value in request.headers.items()}
        try:
            body = _json_body(request.body)  # type: ignore[arg-type]  # requests' union
        except ValueError as error:
            error_body = ApiError("json_error", f"invalid JSON body: {error}").body()
            return self._response(request, 400, {}, error_body)
        try:
            status, response_headers, payload = self.cloud.handle(
                request.method or "GET", path, query, body, headers)
        except SimulatedTimeout as timeout_error:
            if timeout_error.after_effect:
                raise requests.exceptions.ReadTimeout(
                    "sandbox: the response was lost", request=request) from timeout_error
            raise requests.exceptions.ConnectTimeout(
                "sandbox: the request never arrived", request=request) from timeout_error
        return self._response(request, status, response_headers, payload)

    def close(self) -> None:
        """Release nothing: the sandbox holds no connections."""

    @staticmethod
    def _response(request: requests.PreparedRequest, status: int, headers: dict[str, str],
                  payload: dict[str, Any] | None) -> requests.Response:
        response = requests.Response()
        response.status_code = status
        response.headers = CaseInsensitiveDict(headers)
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
