"""Check every exchange with the simulated Hetzner against Hetzner's published OpenAPI description.

A pytest plugin (activated from tests/conftest.py). Through the sandbox transport's observer it sees
every request the gateway sends and every answer the sandbox gives during the session, and checks:

- the method and path match an operation of the description;
- the gateway's query parameters are known to that operation and valid for it;
- the gateway's request bodies validate against the operation's request schema, unknown fields refused;
- the sandbox's answers validate against the response schema of their status (``4xx``/``5xx`` too),
  unknown fields refused: the sandbox must not answer what Hetzner does not.

Requests that tests send on purpose (the sandbox's own tests probe it with bad input) are not the
gateway's: only requests whose User-Agent names octoprovider are held to the description; every
answer is. The description is ``../shared/hetzner/hcloud-openapi.json`` next to the repository root;
when it is absent (a user's clone), the check is skipped and says so.

Violations make the session fail, listed by operation and rule in the terminal summary.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

SPEC_RELATIVE_PATH = Path("..") / "shared" / "hetzner" / "hcloud-openapi.json"
GATEWAY_USER_AGENT = "octoprovider/"
_NAME = "urn:hcloud-openapi"


# --- the description as Hetzner answers today ----------------------------------------------------


@dataclass(frozen=True)
class SpecChange:
    """A change Hetzner announced after the description was published (shared/hetzner/README.md)."""

    name: str
    since: str
    apply: Callable[[dict], None]


def _schemas(doc: dict) -> dict:
    return doc["components"]["schemas"]


def _primary_ip_schemas(doc: dict) -> Iterable[dict]:
    schemas = _schemas(doc)
    yield schemas["create_primary_ip_response"]["properties"]["primary_ip"]
    yield schemas["get_primary_ip_response"]["properties"]["primary_ip"]
    yield schemas["replace_primary_ip_response"]["properties"]["primary_ip"]
    yield schemas["list_primary_ips_response"]["properties"]["primary_ips"]["items"]


def _drop_datacenter(doc: dict) -> None:
    for schema in [_schemas(doc)["server"], *_primary_ip_schemas(doc)]:
        schema["properties"].pop("datacenter", None)
        schema["required"] = [name for name in schema.get("required", []) if name != "datacenter"]
    for name in ("create_server_request", "create_primary_ip_request"):
        _schemas(doc)[name]["properties"].pop("datacenter", None)


def _assignee_type_optional(doc: dict) -> None:
    request = _schemas(doc)["create_primary_ip_request"]
    request["required"] = [name for name in request.get("required", []) if name != "assignee_type"]


def _assignee_type_unassigned(doc: dict) -> None:
    for schema in _primary_ip_schemas(doc):
        assignee_type = schema["properties"]["assignee_type"]
        if "unassigned" not in assignee_type.get("enum", ["unassigned"]):
            assignee_type["enum"] = [*assignee_type["enum"], "unassigned"]


def _datacenters_gone(doc: dict) -> None:
    for path in ("/datacenters", "/datacenters/{id}"):
        operation = doc["paths"].get(path, {}).get("get")
        if operation is not None:
            operation["responses"]["410"] = operation["responses"]["4xx"]


def _server_type_location_availability(doc: dict) -> None:
    properties = _schemas(doc)["server_type_location"]["properties"]
    for name in ("available", "recommended"):
        properties.setdefault(name, {"type": "boolean", "description": f"{name} in this Location"})


# The only places where this check knowingly departs from the description: what Hetzner changed
# after February 2026 (shared/hetzner/README.md), and one field the description never listed.
SPEC_CHANGES: list[SpecChange] = [
    SpecChange("datacenter removed from servers and Primary IPs", "2026-07-01", _drop_datacenter),
    SpecChange(
        "assignee_type optional when creating a Primary IP in a location", "2026-08-01", _assignee_type_optional
    ),
    SpecChange("an unassigned Primary IP reports assignee_type 'unassigned'", "2026-08-01", _assignee_type_unassigned),
    SpecChange("GET /datacenters answers 410", "2026-10-01", _datacenters_gone),
    # DESIGN.md §3: the live API tells per location whether a type can be ordered; hcloud-python
    # 2.27 reads it (ServerTypeLocation.available/recommended) and so does the gateway.
    SpecChange(
        "server type locations report available and recommended",
        "live API, hcloud 2.27",
        _server_type_location_availability,
    ),
]

# Requests the gateway sends that the description refuses. Each entry is (operation id, rule,
# substring of the message): the finding is reported as expected instead of failing the session.
# The gateway fix is pending (octoprovider/hetzner.py is not the sandbox's to change).
EXPECTED_GATEWAY_VIOLATIONS: list[tuple[str, str, str]] = []


# Tests outside the sandbox that fail since the sandbox answers like Hetzner, and that only a change
# of the gateway or of the test itself (not the sandbox's to make) can make pass again. Marked as
# strict expected failures: an XPASS means the fix landed and the entry must go.
# Tests that fail for a reason outside the sandbox (marked strict: remove an entry once it passes).
EXPECTED_SUITE_FAILURES: dict[str, str] = {}


def _to_json_schema(node: Any, *, strict: bool) -> Any:
    """Turn OpenAPI 3.0 schema dialect into JSON Schema; ``strict`` refuses unknown properties."""
    if isinstance(node, list):
        return [_to_json_schema(item, strict=strict) for item in node]
    if not isinstance(node, dict):
        return node
    node = {
        key: _to_json_schema(value, strict=strict)
        for key, value in node.items()
        if key not in ("example", "examples", "x-codeSamples")
    }
    if "$ref" in node:
        node["$ref"] = _NAME + node["$ref"]
    # The description wraps references as a one-item allOf to describe them; it composes nothing.
    if isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
        node.update(node.pop("allOf")[0])
    if strict and isinstance(node.get("properties"), dict) and "additionalProperties" not in node:
        node["additionalProperties"] = False
    if node.pop("nullable", False):
        if isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
            if "enum" in node:
                node["enum"] = [*node["enum"], None]
        else:
            inner = {key: value for key, value in node.items() if key != "description"}
            node = {"anyOf": [inner, {"type": "null"}]}
    return node


@dataclass
class Operation:
    """One operation of the description."""

    id: str
    method: str
    template: str
    pattern: re.Pattern[str]
    literal_segments: int
    path_params: dict[str, dict]
    query_params: dict[str, dict]
    request_schema: dict | None
    responses: dict[str, dict | None]  # status or "4xx" -> body schema (None: no body)


@dataclass(frozen=True)
class Violation:
    """One way an exchange departed from the description."""

    operation: str
    rule: str
    message: str

    def expected(self) -> bool:
        return any(
            self.operation == operation and self.rule == rule and needle in self.message
            for operation, rule, needle in EXPECTED_GATEWAY_VIOLATIONS
        )


class HetznerSpec:
    """Hetzner's OpenAPI description, with the announced changes, ready to check exchanges."""

    def __init__(self, raw: dict) -> None:
        from jsonschema import Draft202012Validator
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012

        raw = copy.deepcopy(raw)
        for change in SPEC_CHANGES:
            change.apply(raw)
        self.raw = raw
        self._validator_class = Draft202012Validator
        self._registries = {
            strict: Registry().with_resource(
                _NAME,
                Resource.from_contents(
                    {"components": _to_json_schema(raw["components"], strict=strict)}, default_specification=DRAFT202012
                ),
            )
            for strict in (True, False)
        }
        self._validators: dict[tuple[str, bool], Any] = {}
        self.operations = self._operations(raw)

    @classmethod
    def load(cls, path: Path) -> HetznerSpec:
        return cls(json.loads(path.read_text(encoding="utf-8")))

    def _operations(self, raw: dict) -> list[Operation]:
        operations = []
        for template, item in raw["paths"].items():
            shared = item.get("parameters", [])
            for method, op in item.items():
                if method not in ("get", "post", "put", "delete", "patch"):
                    continue
                params = [*shared, *op.get("parameters", [])]
                regex = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(template))
                body = op.get("requestBody", {}).get("content", {}).get("application/json")
                responses = {}
                for status, response in op.get("responses", {}).items():
                    content = response.get("content", {}).get("application/json")
                    responses[status] = content["schema"] if content else None
                operations.append(
                    Operation(
                        id=op.get("operationId", f"{method} {template}"),
                        method=method.upper(),
                        template=template,
                        pattern=re.compile(regex),
                        literal_segments=sum(1 for part in template.split("/") if part and not part.startswith("{")),
                        path_params={p["name"]: p["schema"] for p in params if p["in"] == "path"},
                        query_params={p["name"]: p["schema"] for p in params if p["in"] == "query"},
                        request_schema=body["schema"] if body else None,
                        responses=responses,
                    )
                )
        # A literal segment beats a parameter: /servers/actions is not /servers/{id}.
        operations.sort(key=lambda op: -op.literal_segments)
        return operations

    def match(self, method: str, path: str) -> tuple[Operation | None, dict[str, str]]:
        """Return the operation serving ``method`` on ``path``, and the path's parameters."""
        for operation in self.operations:
            found = operation.pattern.fullmatch(path)
            if found and operation.method == method:
                return operation, found.groupdict()
        return None, {}

    def errors(self, schema: dict, instance: Any, *, strict: bool) -> list[str]:
        """Validate ``instance``; return one readable line per error."""
        key = (json.dumps(schema, sort_keys=True), strict)
        validator = self._validators.get(key)
        if validator is None:
            converted = _to_json_schema(schema, strict=strict)
            validator = self._validator_class(converted, registry=self._registries[strict])
            self._validators[key] = validator
        return sorted({_render(error) for error in validator.iter_errors(instance)})

    # --- the rules ---------------------------------------------------------------------------------

    def check_request(
        self, operation: Operation, path_params: dict[str, str], query: dict[str, list[str]], body: Any
    ) -> list[Violation]:
        """Check what the client sent: path parameters, query parameters, body."""
        found = []
        for name, raw in path_params.items():
            schema = operation.path_params.get(name, {})
            for error in self.errors(schema, _coerce(raw, schema), strict=False):
                found.append(Violation(operation.id, "path parameter", f"{name}={raw!r}: {error}"))
        for name, values in query.items():
            schema = operation.query_params.get(name)
            if schema is None:
                found.append(
                    Violation(
                        operation.id,
                        "unknown query parameter",
                        f"{name} (known: {', '.join(sorted(operation.query_params))})",
                    )
                )
                continue
            if schema.get("type") == "array":
                value: Any = [_coerce(item, schema.get("items", {})) for item in values]
            elif len(values) > 1:
                found.append(Violation(operation.id, "query parameter", f"{name} given {len(values)} times"))
                continue
            else:
                value = _coerce(values[0], schema)
            for error in self.errors(schema, value, strict=False):
                found.append(Violation(operation.id, "query parameter", f"{name}: {error}"))
        if operation.request_schema is None:
            if body not in (None, {}):
                found.append(Violation(operation.id, "request body", "a body where none is accepted"))
        elif body is None:
            found.append(Violation(operation.id, "request body", "no body where one is required"))
        else:
            for error in self.errors(operation.request_schema, body, strict=True):
                found.append(Violation(operation.id, "request body", error))
        return found

    def check_response(self, operation: Operation, status: int, payload: Any) -> list[Violation]:
        """Check what the sandbox answered against the schema of its status."""
        key = str(status) if str(status) in operation.responses else f"{str(status)[0]}xx"
        if key not in operation.responses:
            return [
                Violation(
                    operation.id, "response status", f"{status} (documented: {', '.join(sorted(operation.responses))})"
                )
            ]
        schema = operation.responses[key]
        if schema is None:
            if payload is not None:
                return [Violation(operation.id, "response body", f"{status} carries a body, documented empty")]
            return []
        if payload is None:
            return [Violation(operation.id, "response body", f"{status} is empty, documented with a body")]
        return [
            Violation(operation.id, f"response body {key}", error)
            for error in self.errors(schema, payload, strict=True)
        ]


def _render(error: Any) -> str:
    """Say where and why, the innermost reason of an anyOf, list indices as ``*``."""
    from jsonschema.exceptions import best_match

    while error.context:
        # A nullable value failed its real schema, not "is not null": say why.
        reasons = [e for e in error.context if e.validator_value != "null"] or error.context
        error = best_match(reasons)
    where = "/".join("*" if isinstance(part, int) else str(part) for part in error.absolute_path)
    message = error.message if len(error.message) <= 160 else error.message[:157] + "..."
    return f"{where or '(root)'}: {message}"


def _coerce(raw: str, schema: dict) -> Any:
    """Read a path or query string as the type its schema declares (leave it when it does not parse)."""
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            return float(raw)
    except ValueError:
        return raw
    if kind == "boolean" and raw in ("true", "false"):
        return raw == "true"
    return raw


def shape(value: Any) -> Any:
    """Reduce a JSON value to what a schema can tell apart: types, keys, enum-like words."""
    if isinstance(value, dict):
        return tuple(sorted((key, shape(item)) for key, item in value.items()))
    if isinstance(value, list):
        return ("[]", tuple(sorted({shape(item) for item in value}, key=repr)))
    if isinstance(value, str):
        # Short lowercase words are enum values (a status, a type); other strings vary freely.
        return value if len(value) <= 24 and re.fullmatch(r"[a-z0-9_]+", value) else "<str>"
    if isinstance(value, bool) or value is None:
        return value
    return type(value).__name__


# --- the recorder --------------------------------------------------------------------------------


@dataclass
class Recorder:
    """Check each exchange once per distinct (operation, status, shape); keep the violations."""

    spec: HetznerSpec
    exchanges: int = 0
    checked: int = 0
    violations: dict[Violation, int] = field(default_factory=dict)
    _seen: set = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, exchange: Any) -> None:
        with self._lock:
            self.exchanges += 1
            for violation in self.check(exchange):
                self.violations[violation] = self.violations.get(violation, 0) + 1

    def check(self, exchange: Any) -> list[Violation]:
        """Return the violations of one exchange (none when an equal one was checked already)."""
        agent = {k.lower(): v for k, v in exchange.request_headers.items()}.get("user-agent", "")
        from_gateway = agent.startswith(GATEWAY_USER_AGENT)
        operation, path_params = self.spec.match(exchange.method, exchange.path)
        key = (
            exchange.method,
            operation.id if operation else exchange.path,
            from_gateway,
            shape(exchange.query) if from_gateway else None,
            shape(exchange.body) if from_gateway else None,
            exchange.status,
            shape(exchange.payload),
        )
        if key in self._seen:
            return []
        self._seen.add(key)
        self.checked += 1
        if operation is None:
            if from_gateway:
                return [
                    Violation(
                        f"{exchange.method} {exchange.path}",
                        "unknown operation",
                        "no operation of the description serves this method and path",
                    )
                ]
            return []
        found = []
        if from_gateway:
            found += self.spec.check_request(operation, path_params, exchange.query, exchange.body)
        if exchange.status is not None:
            found += self.spec.check_response(operation, exchange.status, exchange.payload)
        return found

    def report(self) -> list[str]:
        """Render the violations grouped by operation and rule, expected ones apart."""
        lines = []
        for title, expected in (("violations", False), ("expected gateway violations (fix pending)", True)):
            grouped: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
            for violation, count in self.violations.items():
                if violation.expected() == expected:
                    grouped[(violation.operation, violation.rule)].append((violation.message, count))
            if not grouped:
                continue
            lines.append(f"Hetzner OpenAPI {title}:")
            for (operation, rule), messages in sorted(grouped.items()):
                lines.append(f"  {operation} — {rule}:")
                lines.extend(f"    {message}  (×{count})" for message, count in sorted(messages))
        return lines

    def unexpected(self) -> list[Violation]:
        return [violation for violation in self.violations if not violation.expected()]


# --- the plugin ----------------------------------------------------------------------------------


def spec_path(rootdir: Path) -> Path:
    """Find the description beside the repository root (the folder holding manage.py)."""
    root = rootdir
    while not (root / "manage.py").exists() and root.parent != root:
        root = root.parent
    return (root / SPEC_RELATIVE_PATH).resolve()


class HetznerSpecPlugin:
    """Record the session's exchanges with the sandbox and fail the session on violations."""

    def __init__(self, config: pytest.Config) -> None:
        self.path = spec_path(Path(str(config.rootpath)))
        self.recorder: Recorder | None = None
        self.skip_reason: str | None = None
        if not self.path.exists():
            self.skip_reason = f"Hetzner OpenAPI check skipped: {self.path} is absent"
            return
        try:
            import jsonschema  # noqa: F401
        except ImportError:
            self.skip_reason = "Hetzner OpenAPI check skipped: jsonschema is not installed"
            return
        self.recorder = Recorder(HetznerSpec.load(self.path))

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            reason = EXPECTED_SUITE_FAILURES.get(item.nodeid)
            if reason is not None:
                item.add_marker(pytest.mark.xfail(reason=reason, strict=True))

    @pytest.hookimpl
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.recorder is not None:
            from octoprovider.hetzner.sandbox import add_observer

            add_observer(self.recorder)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.recorder is None:
            return
        from octoprovider.hetzner.sandbox import remove_observer

        remove_observer(self.recorder)
        if self.recorder.unexpected() and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.recorder is None:
            terminalreporter.write_line(self.skip_reason or "")
            return
        recorder = self.recorder
        lines = recorder.report()
        if lines:
            terminalreporter.section("Hetzner OpenAPI check", red=bool(recorder.unexpected()))
            for line in lines:
                terminalreporter.write_line(line)
        terminalreporter.write_line(
            f"Hetzner OpenAPI check: {recorder.exchanges} exchanges, {recorder.checked} distinct "
            f"checked, {len(recorder.unexpected())} violations, "
            f"{len(recorder.violations) - len(recorder.unexpected())} expected"
        )


def register(config: pytest.Config) -> None:
    """Activate the check for this session (call from pytest_configure)."""
    if not config.pluginmanager.has_plugin("hetzner-spec"):
        config.pluginmanager.register(HetznerSpecPlugin(config), "hetzner-spec")
