"""The contract published as OpenAPI 3 (drf-spectacular), at `/octoperf/openapi.json`.

Each input is described once, by the serializer that validates it: a view names its serializer as
the request body (or, for DELETE, as its query parameters) and the document is generated from its
fields. Contract fields are `TextField`s, whose OpenAPI keywords are computed when the document is
served (the regions with the operators' aliases, the byte limit of `userData`...): nothing here, in
the serializers or in the views reads a setting at import. The shared pieces:

    @contract_operation(
        operation_id="static_ip_allocate",
        summary="Allocate a static IP",
        request=serializers.AllocateInput,
        responses=value_response("StaticIpIdValue", id_field("ip")),
        errors=(400, 429),
    )
    def post(self, request): ...

`contract_operation` adds the errors every endpoint can answer (401, 403, 503) and the error object.
Only views under `/octoperf/` are published: the admin, the probes and the metrics are not, nor the
allow-list (`/api/allow-list`): it is for customers' scripts, with a read-only token that the contract
refuses, and answers text by default; `bin/schemathesis` fuzzes the contract with OctoPerf's token.
"""

import re
from collections.abc import Iterable

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from drf_spectacular.views import SpectacularJSONAPIView
from rest_framework import serializers

DESCRIPTION = """\
octoprovider implements OctoPerf's *Custom HTTP provider* contract on Hetzner Cloud.

**Authentication.** Every contract call needs a token, one of `OCTOPERF_API_TOKENS` or one created in
the admin, either as `Authorization: Bearer <token>` on the paths below, or **in the path**: OctoPerf's
UI takes only a base URL, so `https://host/octoperf/<token>/instances…` is accepted too (the base URL
to enter in OctoPerf is `https://host/octoperf/<token>`). A missing or wrong token answers 401; a
read-only token (made in the admin for the allow-list, `GET /api/allow-list`, which is not part of this
contract) answers 403.

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
    403: "The token is read-only (made for the allow-list): it may not call the contract.",
    404: "No such id was ever issued here.",
    409: "A conflict: the resource is terminated or being deleted, or is in use elsewhere.",
    429: "An operator's guardrail is reached (maximum instances, static IPs...).",
    503: "Hetzner is rate-limited, unavailable, out of capacity or over quota, or rejects the operator's "
    "Hetzner token, cannot be reached (`hetzner_unreachable`), does not answer in time (`hetzner_timeout`) "
    "or answers what cannot be read (`hetzner_bad_answer`), or octoprovider's database is unreachable. "
    "Retry after `Retry-After` seconds.",
}
ALWAYS = (401, 403, 503)

# A response header of every 503, declared as extend_schema wants it: a parameter with `response`.
_RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    OpenApiTypes.INT,
    location=OpenApiParameter.HEADER,
    response=[503],
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


# Links published on a 200 answer: {operation_id: {link name: link object}}, added after generation.
_LINKS: dict[str, dict[str, dict]] = {}


def link(operation_id: str, **parameters: str) -> dict:
    """Say that another operation takes values from this answer.

    `link("instance_state", instance_id="$response.body#/value")`
    """
    return {"operationId": operation_id, "parameters": parameters}


def contract_operation(
    *,
    operation_id: str,
    summary: str,
    responses: dict[int, OpenApiResponse],
    errors: Iterable[int] | dict[int, str] = (),
    request: type[serializers.Serializer] | None = None,
    parameters: list[OpenApiParameter | type[serializers.Serializer]] | None = None,
    description: str | None = None,
    tags: list[str] | None = None,
    links: dict[str, dict] | None = None,
):
    """Describe one contract operation, adding the 401, 403 and 503 that every one of them can answer.

    `request` is the serializer that validates the body, published for every parser (form, JSON,
    multipart); a serializer among `parameters` publishes its fields as query parameters.
    `errors` lists the other error statuses it answers, or maps them to what they mean for it.
    `links` name the operations that take a value from its 200 answer (they let a fuzzer chain calls).
    """
    errors = dict(errors) if isinstance(errors, dict) else dict.fromkeys(errors, "")
    if links:
        _LINKS[operation_id] = links
    return extend_schema(
        operation_id=operation_id,
        summary=summary,
        description=description,
        request=request,
        parameters=[*(parameters or []), _RETRY_AFTER],
        responses={**responses, **error_responses({**dict.fromkeys(ALWAYS, ""), **errors})},
        tags=tags,
    )


# --- fields the contract shares -----------------------------------------------------------------

# DRF's CharField refuses NUL characters: say so, or a fuzzer's valid string gets a 400.
NO_NUL = r"^[^\u0000]*$"
# ...and, unless blank is allowed, what str.strip() leaves empty (Python's whitespace and ECMA's).
NOT_BLANK = r"^[^\u0000]*[^\s\u0000\u001c-\u001f\u0085\ufeff][^\u0000]*$"


class TextField(serializers.CharField):
    """A text parameter of the contract (every one is text), published as it is validated.

    The document says what DRF's CharField refuses (NUL characters; blank unless `allow_blank`) and
    the length limit. A subclass adds what `describe` computes when the document is served, from the
    settings and the database of that moment.
    """

    def describe(self) -> dict:
        """Return OpenAPI keywords that add to or replace the generated ones (`description`, `pattern`...)."""
        return {}


class TextFieldSchema(OpenApiSerializerFieldExtension):
    """Publish a `TextField` with its pattern and what its `describe` says now."""

    target_class = TextField
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        field = self.target
        schema = auto_schema._map_serializer_field(field, direction, bypass_extensions=True)
        schema["pattern"] = NO_NUL if field.allow_blank else NOT_BLANK
        schema.update(field.describe())
        return schema


def any_case(names: Iterable[str]) -> str:
    """Return a pattern matching exactly one of `names`, in any letter case (JSON Schema has no flag for it)."""

    def letter(char: str) -> str:
        lower, upper = char.lower(), char.upper()
        if lower != upper and len(lower) == len(upper) == 1:
            return f"[{lower}{upper}]"
        return "\\" + char if char in r"\^$.|?*+()[]{}/" else char

    return "^(?:" + "|".join("".join(letter(char) for char in name) for name in names) + ")$"


def listed(names: Iterable[str]) -> str:
    """Say `names` in a description: `a`, `b`, `c`."""
    return ", ".join(f"`{name}`" for name in names)


def id_field(prefix: str, **kwargs) -> serializers.Field:
    """One of our opaque ids (`i-…`, `ip-…`, `assoc-…`), as an answer gives it."""
    return TextField(help_text=f"An opaque id issued here, starting with `{prefix}-`.", **kwargs)


def ignored_query_parameter(name: str) -> OpenApiParameter:
    """A query parameter OctoPerf sends and the endpoint ignores: any string goes."""
    return OpenApiParameter(
        name, {"type": "string"}, location=OpenApiParameter.QUERY, description="Accepted and ignored."
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


def merge_blank_alternatives(result, **kwargs):
    """Drop the `oneOf` alternative "" that drf-spectacular adds to a blank-allowed field with a pattern.

    Where the pattern admits "" already, "" matches both alternatives, which `oneOf` forbids: the
    document would call a blank zone invalid, and a fuzzer proves the service wrong.
    """

    def visit(node):
        if isinstance(node, dict):
            one_of = node.get("oneOf")
            if (
                isinstance(one_of, list)
                and len(one_of) == 2
                and one_of[1] == {"type": "string", "maxLength": 0}
                and isinstance(one_of[0], dict)
                and not one_of[0].get("minLength")
                and re.search(one_of[0].get("pattern", ""), "")
            ):
                node.update(node.pop("oneOf")[0])
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(result)
    return result
