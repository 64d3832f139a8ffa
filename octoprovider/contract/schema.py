"""The contract published as OpenAPI 3 (drf-spectacular), at `/octoperf/openapi.json`.

The shared pieces live here so that every contract view describes itself in a few lines:

    @contract_operation(
        operation_id="static_ip_allocate",
        summary="Allocate a static IP",
        request=contract_body("StaticIpAllocateRequest", region=region_field(), zone=zone_field()),
        responses=value_response("StaticIpId", id_field("ip")),
        errors=(400, 429),
    )
    def post(self, request): ...

`contract_operation` adds the errors every endpoint can answer (401, 503) and the error object.
Only views under `/octoperf/` are published: the admin, the probes and the metrics are not.
"""

from collections.abc import Iterable

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from drf_spectacular.views import SpectacularJSONAPIView
from rest_framework import serializers

DESCRIPTION = """\
octoprovider implements OctoPerf's *Custom HTTP provider* contract on Hetzner Cloud.

**Authentication.** Every contract call needs one of the tokens configured in `OCTOPERF_API_TOKENS`,
either as `Authorization: Bearer <token>` on the paths below, or **in the path**: OctoPerf's UI takes
only a base URL, so `https://host/octoperf/<token>/instances…` is accepted too (the base URL to
enter in OctoPerf is `https://host/octoperf/<token>`). A missing or wrong token answers 401.

**Parameters** are read from the query string and the body together (the body wins). Bodies may be
`application/x-www-form-urlencoded` (OctoPerf's choice), JSON or multipart, on every method.

**Responses** are always `application/json; charset=utf-8`, whatever `Accept` says. Success is always
200: `{"value": ...}` where a value is returned, an empty body otherwise. Errors answer
`{"error": {"code": "...", "message": "..."}}`. A trailing slash is optional; nothing redirects.
"""

# What each error status means on this contract; `contract_operation(errors=...)` picks among them.
ERROR_MEANINGS = {
    400: "Bad input: a parameter is missing or invalid; the message names it.",
    401: "The OctoPerf API token is missing or wrong.",
    404: "No such id was ever issued here.",
    409: "A conflict: the resource is terminated or being deleted, or is in use elsewhere.",
    429: "An operator's guardrail is reached (maximum instances, static IPs...).",
    503: "Hetzner is rate-limited, unavailable, out of capacity or over quota, or rejects the operator's "
    "Hetzner token. Retry after `Retry-After` seconds.",
}
ALWAYS = (401, 503)

# A response header of every 503, declared as extend_schema wants it: a parameter with `response`.
_RETRY_AFTER = OpenApiParameter(
    "Retry-After", OpenApiTypes.INT, location=OpenApiParameter.HEADER, response=[503],
    description="Seconds to wait before trying again.",
)


class ErrorDetail(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable: `invalid_input`, `not_found`, `hetzner_unavailable`...")
    message = serializers.CharField(help_text="For humans.")


class ErrorResponse(serializers.Serializer):
    """The contract's error object."""

    error = ErrorDetail()

    class Meta:
        ref_name = "Error"


def error_responses(statuses: Iterable[int] | dict[int, str]) -> dict[int, OpenApiResponse]:
    """Describe the error object for each status; a dict gives an operation's own meaning of one."""
    meanings = statuses if isinstance(statuses, dict) else {}
    return {
        status: OpenApiResponse(ErrorResponse, description=meanings.get(status) or ERROR_MEANINGS[status])
        for status in sorted(set(statuses))
    }


def value_response(name: str, field: serializers.Field, description: str = "Done.") -> dict[int, OpenApiResponse]:
    """Describe a 200 answering `{"value": <field>}`, as a component called `name`."""
    return {200: OpenApiResponse(inline_serializer(name, {"value": field}), description=description)}


def void_response(description: str = "Done; the body is empty.") -> dict[int, OpenApiResponse]:
    """Describe a 200 with an empty body (still `Content-Type: application/json; charset=utf-8`)."""
    return {200: OpenApiResponse(description=description)}


def contract_body(name: str, **fields: serializers.Field) -> serializers.Serializer:
    """Describe a request body with `fields`, published for every parser (form, JSON, multipart)."""
    return inline_serializer(name, fields)


# Links published on a 200 answer: {operation_id: {link name: link object}}, added after generation.
_LINKS: dict[str, dict[str, dict]] = {}


def link(operation_id: str, **parameters: str) -> dict:
    """Say that another operation takes values from this answer: `link("instance_state", instance_id="$response.body#/value")`."""
    return {"operationId": operation_id, "parameters": parameters}


def contract_operation(
    *,
    operation_id: str,
    summary: str,
    responses: dict[int, OpenApiResponse],
    errors: Iterable[int] | dict[int, str] = (),
    request=None,
    parameters: list[OpenApiParameter] | None = None,
    description: str | None = None,
    tags: list[str] | None = None,
    links: dict[str, dict] | None = None,
):
    """Describe one contract operation, adding the 401 and 503 that every one of them can answer.

    `errors` lists the other error statuses it answers, or maps them to what they mean for it.
    `links` name the operations that take a value from its 200 answer (they let a fuzzer chain calls).
    """
    errors = dict(errors) if isinstance(errors, dict) else {status: "" for status in errors}
    if links:
        _LINKS[operation_id] = links
    return extend_schema(
        operation_id=operation_id,
        summary=summary,
        description=description,
        request=request,
        parameters=[*(parameters or []), _RETRY_AFTER],
        responses={**responses, **error_responses({**{status: "" for status in ALWAYS}, **errors})},
        tags=tags,
    )


# --- fields the contract shares -----------------------------------------------------------------


def region_names() -> list[str]:
    """Every region accepted: the configured Hetzner locations and the operator's aliases."""
    return sorted(set(settings.SERVER_TYPES) | set(settings.REGION_ALIASES))


def region_field(**kwargs) -> serializers.Field:
    return serializers.ChoiceField(
        choices=region_names(),
        help_text="A Hetzner location or an alias set in `REGION_ALIASES` (any case).",
        **kwargs,
    )


# DRF's CharField refuses NUL characters: say so, or a fuzzer's valid string gets a 400.
NO_NUL = r"^[^\u0000]*$"
# ...and, unless blank is allowed, what str.strip() leaves empty (Python's whitespace and ECMA's).
NOT_BLANK = r"^[^\u0000]*[^\s\u0000\u001c-\u001f\u0085\ufeff][^\u0000]*$"


def text_field(**kwargs) -> serializers.Field:
    """A string as DRF's CharField accepts it: anything but NUL characters."""
    return serializers.RegexField(NO_NUL, **kwargs)


def id_input_field(prefix: str, **kwargs) -> serializers.Field:
    """One of our ids as a required parameter: DRF refuses it blank (after stripping whitespace)."""
    return serializers.RegexField(NOT_BLANK, help_text=f"An id issued here, starting with `{prefix}-`.", **kwargs)


def zone_field(**kwargs) -> serializers.Field:
    # A JSON null counts as absent (ContractView.params drops it).
    kwargs.setdefault("required", False)
    kwargs.setdefault("allow_null", True)
    kwargs.setdefault("help_text", "Recorded, not used: Hetzner places servers by location.")
    return text_field(allow_blank=True, **kwargs)


def id_field(prefix: str, **kwargs) -> serializers.Field:
    """One of our opaque ids (`i-…`, `ip-…`, `assoc-…`)."""
    return text_field(help_text=f"An opaque id issued here, starting with `{prefix}-`.", **kwargs)


def query_parameter(
    name: str, description: str, *, required: bool = False, enum: list[str] | None = None, validated: bool = True
) -> OpenApiParameter:
    """A query parameter; `validated=False` for one the endpoint reads but ignores (any string goes)."""
    schema: dict = {"type": "string"}
    if enum:
        schema["enum"] = enum
    elif validated:
        schema["pattern"] = NOT_BLANK if required else NO_NUL
    return OpenApiParameter(
        name, schema, location=OpenApiParameter.QUERY, required=required, description=description
    )


def region_parameter(*, required: bool = False, validated: bool = True) -> OpenApiParameter:
    if not validated:
        return query_parameter("region", "Accepted and ignored.", validated=False)
    return query_parameter(
        "region", "A Hetzner location or an alias (any case).", required=required, enum=region_names()
    )


def zone_parameter(*, required: bool = False, validated: bool = True) -> OpenApiParameter:
    return query_parameter(
        "zone", "Recorded, not used." if validated else "Accepted and ignored.", required=required,
        validated=validated,
    )


# --- how the document is built and served -------------------------------------------------------


class OctoPerfTokenScheme(OpenApiAuthenticationExtension):
    """Publish the OctoPerf token as a Bearer scheme (the path variant is in the description)."""

    target_class = "octoprovider.contract.authentication.OctoPerfTokenAuthentication"
    name = "octoperfToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "One of OCTOPERF_API_TOKENS. It may travel in the path instead: "
            "`/octoperf/<token>/instances…`.",
        }


def only_contract_paths(endpoints, **kwargs):
    """Publish the contract only; drop the optional trailing slash that its URL patterns allow."""
    published = []
    for path, path_regex, method, callback in endpoints:
        if not path.startswith("/octoperf/") or path == "/octoperf/openapi.json":
            continue
        published.append((path.removesuffix("/") if path != "/" else path, path_regex, method, callback))
    return published


class ContractSchemaView(SpectacularJSONAPIView):
    """Serve the document as JSON to anyone: it holds no secret."""

    authentication_classes = []
    permission_classes = []


def describe_contract(result, **kwargs):
    """Add what extend_schema cannot say: the contract's prose, and the links between operations."""
    result["info"]["description"] = DESCRIPTION
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            links = _LINKS.get(operation.get("operationId"))
            if links and "200" in operation.get("responses", {}):
                operation["responses"]["200"]["links"] = links
    return result
