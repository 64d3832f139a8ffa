"""OctoPerf's shared secret: in the path (`/octoperf/<token>/instances…`) or as a Bearer header.

OctoPerf's UI takes only a base URL, so the token usually travels in the path. It must then never
reach a log: the middleware strips it from the path before anything else sees the request, and a
logging filter masks it in whatever was logged from the raw request line (runserver, gunicorn).
"""

import functools
import hashlib
import hmac
import re
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest
from rest_framework import authentication, exceptions, permissions

from octoprovider.contract import tokens
from octoprovider.contract.models import ApiToken
from octoprovider.core.http import bearer_token
from octoprovider.core.logmask import RESOURCES

# The token comes right after /octoperf/ and before a contract resource.
_TOKEN_IN_PATH = re.compile(rf"^/octoperf/(?P<token>[^/]+)(?P<rest>/{RESOURCES}(?:/.*)?)$")


class PathTokenMiddleware:
    """Move a token found in the path onto the request, so URLs, logs and errors never carry it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        match = _TOKEN_IN_PATH.match(request.path_info)
        if match:
            request.octoperf_path_token = match["token"]
            stripped = "/octoperf" + match["rest"]
            request.path_info = stripped
            request.path = request.META.get("SCRIPT_NAME", "").rstrip("/") + stripped
        return self.get_response(request)


@dataclass(frozen=True)
class ApiClient:
    """Who called: OctoPerf, through a configured token (`env-token-<n>`) or an admin-made one (its name).

    `scope` says what the token may do: call the contract (every configured token), or only read the
    allow-list (a read-only token made in the admin).
    """

    name: str
    is_authenticated: bool = True
    scope: str = ApiToken.Scope.CONTRACT

    @property
    def may_call_contract(self) -> bool:
        return self.scope == ApiToken.Scope.CONTRACT


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@functools.lru_cache(maxsize=4)
def _configured(tokens: tuple[str, ...]) -> tuple[tuple[bytes, ApiClient], ...]:
    """Digest the configured tokens once (per value of the setting), not on every poll."""
    return tuple((_digest(token), ApiClient(name=f"env-token-{index + 1}")) for index, token in enumerate(tokens))


def token_matches(presented: str) -> ApiClient | None:
    """Compare `presented` with every configured token in constant time, then with the admin's tokens."""
    presented_digest = _digest(presented)
    found = None
    for digest, client in _configured(tuple(settings.OCTOPERF_API_TOKENS)):
        # No early exit: the time taken does not tell which token matched, nor how much of it.
        if hmac.compare_digest(presented_digest, digest):
            found = client
    if found is None:
        stored = tokens.api_token_authenticate(presented)
        if stored is not None:
            found = ApiClient(name=stored.name, scope=stored.scope)
    return found


def presented_token(request: HttpRequest) -> str | None:
    """Return the token the caller presented: in the path (moved aside by the middleware), or as Bearer."""
    token = getattr(request, "octoperf_path_token", None)
    if token is None:
        # WSGI gives header values as latin-1 text, as DRF's get_authorization_header decodes them.
        token = bearer_token(request.META.get("HTTP_AUTHORIZATION", ""))
    return token


def authenticated_client(request: HttpRequest) -> ApiClient | None:
    """Return who called if the token presented is good; None if it is missing or wrong."""
    token = presented_token(request)
    return token_matches(token) if token is not None else None


class MayCallContract(permissions.BasePermission):
    """Let in a token that may call the contract; a read-only one answers 403 (it authenticated, and is refused)."""

    message = (
        "This API token is read-only: it may read the allow-list (GET /api/allow-list), not call OctoPerf's "
        "contract. Give OctoPerf a token made for it."
    )

    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, ApiClient) and request.user.may_call_contract


class MayReadAllowList(permissions.BasePermission):
    """Let in a read-only token only: a contract token may create servers, and belongs in OctoPerf alone.

    Scripts keep their token where it is easily copied (Terraform's state, an Ansible inventory, a
    crontab): a contract token found there could spend money; a read-only one reveals the addresses.
    """

    message = (
        "This API token is OctoPerf's (it can create servers): the allow-list wants a read-only token, "
        "made in the console (API tokens, scope read-only)."
    )

    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, ApiClient) and request.user.scope == ApiToken.Scope.READ


class OctoPerfTokenAuthentication(authentication.BaseAuthentication):
    """Authenticate OctoPerf by the token in the path or in `Authorization: Bearer`."""

    def authenticate(self, request):
        token = presented_token(request._request)
        if token is None:
            return None
        client = token_matches(token)
        if client is None:
            raise exceptions.AuthenticationFailed("Invalid OctoPerf API token.")
        return (client, None)

    def authenticate_header(self, request):
        return 'Bearer realm="octoprovider"'
