"""The audit log: every contract call that changes something, every console action, and every mutation
sent to Hetzner (named after the operator whose console action caused it, if one did).

What is written is picked field by field, never copied: bodies carry `userData` (the agent's secret)
and Hetzner's create answers may carry a root password; the path may carry OctoPerf's token.
Recording never fails the call it records: an audit row that cannot be written is logged instead.
"""

import logging
import re

import requests
from django.db import transaction
from django.http import HttpResponseBase

from instances.models import Instance
from octoprovider.contract.authentication import ApiClient
from octoprovider.core import clock
from octoprovider.core.logs import request_id
from octoprovider.core.operators import acting_operator
from octoprovider.hetzner import LABEL_ID
from octoprovider.operations import requestlog
from octoprovider.operations.models import AuditEvent
from staticips.models import StaticIP

logger = logging.getLogger(__name__)

_OUR_ID = re.compile(r"^(?:i|ip|assoc)-[0-9a-f]{1,32}$")
_ID_PARAMS = ("instance_id", "instanceId", "id", "associationId")
_HETZNER_ID = re.compile(r"/v1/(servers|primary_ips)/(\d+)")


def _record(**fields) -> None:
    try:
        # A savepoint: a failed insert must not break the caller's transaction.
        with transaction.atomic():
            AuditEvent.objects.create(at=clock.now(), request_id=request_id.get(), **fields)
    except Exception:
        logger.exception("Could not write an audit event (%s %s)", fields.get("method"), fields.get("route"))


# --- contract calls ---------------------------------------------------------------------------------


def record_contract_call(request, response: HttpResponseBase, view_kwargs: dict, **signal) -> None:
    """Record a contract call answered by a `ContractView` (DRF request), unless it was a plain read.

    State polls come for every instance every few seconds and change nothing: a successful GET is
    left to the request log and the metrics, or the audit table would grow by millions a day.
    """
    if request.method == "GET" and response.status_code < 400:
        return
    client = getattr(request, "_user", None)  # never authenticate again here: it may have failed
    ids = [str(value) for value in view_kwargs.values()]
    ids += [request.query_params.get(name, "") for name in _ID_PARAMS]
    data = getattr(request, "_full_data", None)
    if isinstance(data, dict) or hasattr(data, "get"):
        ids += [data.get(name, "") for name in _ID_PARAMS]
    body = getattr(response, "data", None)
    outcome = "ok" if response.status_code < 400 else str(response.status_code)
    if isinstance(body, dict):
        ids.append(body.get("value", ""))
        if isinstance(body.get("error"), dict):
            outcome = str(body["error"].get("code", outcome))
    _record(
        kind=AuditEvent.Kind.CONTRACT,
        actor=client.name if isinstance(client, ApiClient) else "",
        method=request.method or "",
        route=requestlog.route_name(request._request),
        our_ids=_ids(ids),
        status=response.status_code,
        outcome=outcome[:64],
    )


def _ids(candidates: list) -> str:
    """Keep what looks like one of our ids, once each, in order."""
    seen = []
    for candidate in candidates:
        if isinstance(candidate, str) and _OUR_ID.match(candidate) and candidate not in seen:
            seen.append(candidate)
    return " ".join(seen)[:300]


# --- static IP swaps ---------------------------------------------------------------------------------


def record_static_ip_swap(sender, *, first: str, second: str, instance_id: str, **signal) -> None:
    """Record that two ipIds exchanged the addresses they stand for (bookkeeping, no Hetzner call)."""
    _record(
        kind=AuditEvent.Kind.SWAP,
        method="",
        route="static-ip swap",
        our_ids=_ids([first, second, instance_id]),
        outcome="ok",
    )


# --- console actions -----------------------------------------------------------------------------------


def record_console_action(sender, *, username: str, action: str, target: str, outcome: str, **signal) -> None:
    """Record an operator's action in the console: who, which action, on what, and how it went."""
    _record(
        kind=AuditEvent.Kind.CONSOLE,
        actor=username[:100],
        method="",
        route=action[:200],
        our_ids=target[:300],
        outcome=outcome[:64],
    )


# --- Hetzner mutations --------------------------------------------------------------------------------


def on_hetzner_failure(request: requests.PreparedRequest, exc: requests.RequestException, seconds: float) -> None:
    """Record a mutation that got no answer: it may or may not have happened."""
    if request.method != "GET":
        outcome = "timeout" if isinstance(exc, requests.Timeout) else "connection"
        _record_hetzner(request.method or "", request.url or "", status=None, outcome=outcome)


def on_hetzner_response(response: requests.Response) -> None:
    """Record a mutation Hetzner answered, with its action id and outcome."""
    if response.request.method == "GET":
        return
    action_id, our_id, outcome = None, "", "ok" if response.status_code < 400 else str(response.status_code)
    try:
        body = response.json() if response.content else {}
    except ValueError:
        body = {}
    if isinstance(body, dict):
        action = body.get("action")
        if isinstance(action, dict) and isinstance(action.get("id"), int):
            action_id = action["id"]
        for resource in ("server", "primary_ip"):
            if isinstance(body.get(resource), dict):
                our_id = str((body[resource].get("labels") or {}).get(LABEL_ID, ""))
        if response.status_code >= 400 and isinstance(body.get("error"), dict):
            outcome = str(body["error"].get("code", outcome))
    _record_hetzner(
        response.request.method or "",
        response.request.url or "",
        status=response.status_code,
        outcome=outcome,
        action_id=action_id,
        our_id=our_id,
    )


def _record_hetzner(
    method: str, url: str, *, status: int | None, outcome: str, action_id: int | None = None, our_id: str = ""
) -> None:
    hetzner_id = None
    if match := _HETZNER_ID.search(url.split("?", 1)[0]):
        hetzner_id = int(match.group(2))
        if not our_id:
            model = Instance if match.group(1) == "servers" else StaticIP
            try:
                our_id = model.objects.filter(hetzner_id=hetzner_id).values_list("pk", flat=True).first() or ""
            except Exception:
                our_id = ""
    _record(
        kind=AuditEvent.Kind.HETZNER,
        actor=acting_operator()[:100],
        method=method,
        route=requestlog.hetzner_endpoint(url),
        our_ids=_ids([our_id]),
        hetzner_id=hetzner_id,
        hetzner_action_id=action_id,
        status=status,
        outcome=outcome[:64],
    )
