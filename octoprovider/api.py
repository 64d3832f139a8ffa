"""What every contract endpoint shares: always JSON in UTF-8, one error shape, parameters from anywhere.

OctoPerf's contract (DESIGN §1) wants `application/json; charset=utf-8` on every response, whatever
`Accept` says (Java sends `text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2`), errors as
`{"error": {"code": ..., "message": ...}}`, and 200 for every success.
"""

import logging

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from octoprovider import audit
from octoprovider.exceptions import ServiceError

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/json; charset=utf-8"


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
        response = Response(error_body(exc.code, exc.message), status=exc.status_code)
        if exc.retry_after is not None:
            response["Retry-After"] = str(exc.retry_after)
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


def _is_contract_path(request) -> bool:
    return request.path.startswith("/octoperf/") or request.path == "/octoperf"


def not_found(request, exception=None):
    """Answer JSON under /octoperf/, and Django's own page elsewhere (the admin)."""
    if _is_contract_path(request):
        return JsonResponse(
            error_body("not_found", f"No contract endpoint at {request.path}."),
            status=404,
            content_type=CONTENT_TYPE,
        )
    return defaults.page_not_found(request, exception)


def server_error(request):
    """Answer JSON under /octoperf/; the error itself was logged by Django."""
    if _is_contract_path(request):
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
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not _is_contract_path(request):
            return None
        logger.error("Internal Server Error: %s", request.path, exc_info=exception)
        return server_error(request)


class ContractView(APIView):
    """Base for the contract's endpoints: parameters read from the query string and the body together."""

    def params(self) -> dict[str, str]:
        """Merge query-string and body parameters; the body wins where both name one."""
        merged = {key: self.request.query_params.get(key) for key in self.request.query_params}
        data = self.request.data
        if hasattr(data, "dict"):
            data = data.dict()
        if isinstance(data, dict):
            merged.update({key: value for key, value in data.items() if value is not None})
        elif data:
            raise drf_exceptions.ParseError("The request body must be a form or a JSON object.")
        return merged

    def validated(self, serializer_class):
        params = self.params()
        # Every parameter of the contract is text; DRF would quietly turn a JSON 0 into "0".
        # Unknown parameters are ignored, whatever their type.
        for name in serializer_class().fields:
            if name in params and not isinstance(params[name], str):
                raise drf_exceptions.ValidationError({name: ["Must be a string."]})
        serializer = serializer_class(data=params)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def value(self, value: str) -> Response:
        return Response({"value": value}, status=200)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        audit.record_contract_call(request, response, kwargs)
        return response

    def void(self) -> HttpResponse:
        # DRF drops Content-Type from an empty Response; the contract wants it on every answer.
        return HttpResponse(b"", status=200, content_type=CONTENT_TYPE)
