"""The contract's one error path: every failure under /octoperf/ answers `{"error": {"code", "message"}}`.

OctoPerf's contract (DESIGN §1) wants `application/json; charset=utf-8` on every response, whatever
`Accept` says (Java sends `text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2`), errors as
`{"error": {"code": ..., "message": ...}}`, and 200 for every success.
"""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response

from octoprovider.core.exceptions import ServiceError
from octoprovider.core.http import CONTENT_TYPE, is_contract_path

logger = logging.getLogger(__name__)


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


_DRF_CODES = {
    status.HTTP_400_BAD_REQUEST: "invalid_input",
    status.HTTP_401_UNAUTHORIZED: "unauthorized",
    status.HTTP_403_FORBIDDEN: "forbidden",
    status.HTTP_404_NOT_FOUND: "not_found",
    status.HTTP_405_METHOD_NOT_ALLOWED: "method_not_allowed",
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: "unsupported_media_type",
}


def _validation_message(detail) -> str:
    """Flatten DRF's nested validation errors into one readable sentence."""
    if isinstance(detail, dict):
        return "; ".join(
            f"{field}: {_validation_message(errors)}" if field != "non_field_errors" else _validation_message(errors)
            for field, errors in detail.items()
        )
    if isinstance(detail, list):
        return " ".join(_validation_message(item) for item in detail)
    return str(detail)


def exception_handler(exc, context):
    """Map domain and DRF exceptions to the contract's error shape; leave the rest a logged 500."""
    if isinstance(exc, ServiceError):
        response = Response(error_body(exc.code, exc.public_message), status=exc.status_code)
        if exc.retry_after is not None:
            response["Retry-After"] = str(exc.retry_after)
        return response
    refused = refused_request(exc)
    if refused is not None:
        response = Response(error_body(refused.code, refused.message), status=refused.status)
        if refused.retry_after is not None:
            response["Retry-After"] = str(refused.retry_after)
        return response
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    if isinstance(exc, drf_exceptions.NotAuthenticated):
        auth_header = getattr(exc, "auth_header", None)
        exc = drf_exceptions.NotAuthenticated(
            "Missing OctoPerf API token: put it in the path (/octoperf/<token>/...) or send Authorization: Bearer."
        )
        exc.auth_header = auth_header
    if isinstance(exc, drf_exceptions.APIException):
        code = _DRF_CODES.get(exc.status_code, exc.default_code)
        response = Response(error_body(code, _validation_message(exc.detail)), status=exc.status_code)
        if getattr(exc, "auth_header", None):
            response["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            response["Retry-After"] = str(int(exc.wait))
        return response
    return None


# Never the path: a base URL typed with a trailing slash or a typo after the token still carries it.
_NO_ENDPOINT = (
    "No contract endpoint here. The base URL must be https://<host>/octoperf/<token> with no trailing "
    "slash; the contract's paths start with /instances or /static-ips."
)


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    message: str
    retry_after: int | None = None


# Seconds OctoPerf is asked to wait while the database is unreachable (a restart, a failover).
DATABASE_RETRY_AFTER = 10


def refused_request(exc: BaseException) -> Refusal | None:
    """Say how to answer what is not a bug of ours: a request too large to read, a database gone away."""
    if isinstance(exc, RequestDataTooBig):
        return Refusal(
            413,
            "request_too_large",
            f"The request body is over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes; userData may be 32 KiB at most.",
        )
    if isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        return Refusal(400, "too_many_fields", "The request has too many parameters; the contract has at most five.")
    if isinstance(exc, (OperationalError, InterfaceError)):
        # Django closes the broken connection when the request ends; the next one reconnects.
        logger.warning("The database is unavailable: %s", type(exc).__name__)
        return Refusal(
            503,
            "database_unavailable",
            "octoprovider's database is unavailable; try again shortly.",
            retry_after=DATABASE_RETRY_AFTER,
        )
    return None


@csrf_exempt  # a POST to a mistyped path must get this JSON 404, not Django's HTML CSRF page
def not_found(request, exception=None):
    """Answer JSON under /octoperf/, and Django's own page elsewhere (the admin)."""
    if is_contract_path(request.path):
        return JsonResponse(error_body("not_found", _NO_ENDPOINT), status=404, content_type=CONTENT_TYPE)
    return defaults.page_not_found(request, exception)


def server_error(request):
    """Answer JSON under /octoperf/; the error itself was logged by Django."""
    if is_contract_path(request.path):
        return JsonResponse(
            error_body("internal_error", "octoprovider failed to handle this request; the error was logged."),
            status=500,
            content_type=CONTENT_TYPE,
        )
    return defaults.server_error(request)


class ContractErrorMiddleware:
    """Answer an unexpected error under /octoperf/ in the contract's JSON, even with DEBUG on.

    Django's DEBUG page is HTML, and OctoPerf must get JSON whatever happens. The error is logged
    with its traceback, as Django would.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.META.get("QUERY_STRING"):
            # A query string over DATA_UPLOAD_MAX_NUMBER_FIELDS is refused as such a body is, and here,
            # where the refusal is answered in JSON, whichever view would have read it (or none).
            try:
                request.GET  # noqa: B018 (parses it)
            except TooManyFieldsSent as exc:
                return self.process_exception(request, exc)
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_contract_path(request.path):
            return None
        refused = refused_request(exception)
        if refused is not None:
            response = JsonResponse(
                error_body(refused.code, refused.message), status=refused.status, content_type=CONTENT_TYPE
            )
            if refused.retry_after is not None:
                response["Retry-After"] = str(refused.retry_after)
            return response
        logger.error("Internal Server Error: %s", request.path, exc_info=exception)
        return server_error(request)
