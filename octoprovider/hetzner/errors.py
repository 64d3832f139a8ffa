"""Translate hcloud's and requests' exceptions into ours, and tell refusals from outcomes unknown.

Refusals are told apart by Hetzner's error `code` and the fields its `details.fields` names, never
by the English `message`, which Hetzner may reword at any time.
"""

import contextlib
import logging

import requests
from hcloud import APIException

from octoprovider.core.exceptions import (
    HetznerBadAnswer,
    HetznerConflict,
    HetznerError,
    HetznerLocked,
    HetznerNoCapacity,
    HetznerNotFound,
    HetznerPrimaryIPRefused,
    HetznerRejected,
    HetznerTimeout,
    HetznerUnavailable,
    HetznerUnreachable,
)
from octoprovider.hetzner import budget
from octoprovider.hetzner.connection import NEVER_SENT, never_sent, recording_answers

logger = logging.getLogger("octoprovider.hetzner")

# Hetzner cannot serve the request now, for reasons of its own or of the operator's: OctoPerf gets
# 503 with Retry-After (seconds) and tries again later, never a 502 that reads as our fault.
_UNAVAILABLE = {
    "rate_limit_exceeded": ("Hetzner's API rate limit is exhausted; try again shortly.", 60),
    "unavailable": ("Hetzner's API is unavailable.", 30),
    "maintenance": ("Hetzner's API is in maintenance.", 60),
    "timeout": ("Hetzner's API timed out.", 15),
    "bad_gateway": ("Hetzner's API answered bad gateway.", 15),
    "server_error": ("Hetzner's API had an internal error.", 15),
    "service_error": ("A service behind Hetzner's API failed.", 30),
    "resource_unavailable": ("Hetzner has no capacity for this server type in this location right now.", 300),
    "placement_error": ("Hetzner could not place the server right now.", 120),
    "resource_limit_exceeded": ("The Hetzner project's resource quota is reached; ask Hetzner to raise it.", 600),
    "unauthorized": ("Hetzner rejected HCLOUD_TOKEN (unauthorized): the operator must fix the Hetzner token.", 300),
    "token_readonly": ("HCLOUD_TOKEN is read-only: the operator must configure a read & write Hetzner token.", 300),
    "forbidden": ("Hetzner refused HCLOUD_TOKEN (forbidden): the operator must check the Hetzner token.", 300),
}
_CONFLICT = {"uniqueness_error", "conflict", "server_not_stopped", "must_be_unassigned", "protected"}


@contextlib.contextmanager
def translated(what: str, *, refresh: bool = False):
    """Ask the rate budget, then turn hcloud's and requests' exceptions into ours, naming what we were doing.

    `refresh` marks calls that only keep the database fresh (listings): they wait while the budget
    is below the reserve kept for mutations. The message names `what` (with Hetzner's ids) for the
    logs; the public message OctoPerf gets does not.
    """
    budget.admit(refresh=refresh, what=what)
    with recording_answers() as answers:
        try:
            yield
        except APIException as exc:
            cause, error = exc, _translate_api_error(exc, what)
        except requests.RequestException as exc:
            cause, error = exc, _no_answer(exc, what)
        except UNREADABLE as exc:
            cause, error = exc, bad_answer(what, exc)
        else:
            return
    # hcloud retried the call: a try before the last one that got no answer (or a 5xx) may have
    # done what was asked, whatever the last try heard (a 429, a `locked`, a refused connection).
    error.earlier_answer_lost = any(
        status is None or (status != NEVER_SENT and status >= 500) for status in answers[:-1]
    )
    raise error from cause


# What hcloud (or our reading of its records) raises on an answer that lacks what it reads: a 200
# without `servers`, a list where an object belongs.
UNREADABLE = (KeyError, IndexError, TypeError, AttributeError, ValueError)


def bad_answer(what: str, exc: Exception) -> HetznerBadAnswer:
    logger.warning("Hetzner %s: unreadable answer (%s: %s)", what, type(exc).__name__, exc)
    return HetznerBadAnswer(
        f"Hetzner's answer could not be read ({what}: {type(exc).__name__} {exc}).",
        public="Hetzner's answer could not be read.",
    )


@contextlib.contextmanager
def reading(what: str):
    """Turn an answer that lacks what is read from it into HetznerBadAnswer: Hetzner's fault, not a crash."""
    try:
        yield
    except UNREADABLE as exc:
        raise bad_answer(what, exc) from exc


def _no_answer(exc: requests.RequestException, what: str) -> HetznerError:
    """Translate a request that got no answer: never sent (certainly not carried out), or lost on its way."""
    if isinstance(exc, requests.ConnectTimeout):
        logger.warning("Hetzner %s: no connection in time", what)
        return HetznerTimeout(
            f"Hetzner did not answer in time ({what}: no connection was made).",
            retry_after=15,
            hetzner_code="connect_timeout",
            public="Hetzner did not answer in time.",
        )
    if never_sent(exc):
        # Connection refused or no DNS answer: not a timeout, and nothing reached Hetzner.
        logger.warning("Hetzner %s: unreachable (%s)", what, type(exc.args[0]).__name__ if exc.args else "")
        return HetznerUnreachable(
            f"Hetzner could not be reached ({what}).",
            retry_after=30,
            hetzner_code="unreachable",
            public="Hetzner could not be reached.",
        )
    if isinstance(exc, requests.Timeout):
        logger.warning("Hetzner %s timed out", what)
        return HetznerTimeout(
            f"Hetzner did not answer in time ({what}).",
            retry_after=15,
            hetzner_code="timeout",
            public="Hetzner did not answer in time.",
        )
    logger.warning("Hetzner %s failed: %s", what, type(exc).__name__)
    return HetznerTimeout(
        f"Hetzner's answer was lost ({what}).",
        retry_after=15,
        hetzner_code="connection",
        public="Hetzner's answer was lost.",
    )


def _translate_api_error(exc: APIException, what: str) -> HetznerError:
    code = exc.code if isinstance(exc.code, str) else str(exc.code)
    logger.warning("Hetzner %s failed: %s (%s)", what, exc.message, code)
    error = _typed_api_error(exc, code, what)
    error.fields = _field_names(exc.details)
    return error


def _field_names(details) -> tuple[str, ...]:
    """Read the names in Hetzner's `details.fields`: `[{"name": "public_net.ipv4", "messages": [...]}]`."""
    fields = details.get("fields") if isinstance(details, dict) else None
    if not isinstance(fields, list):
        return ()
    return tuple(field["name"] for field in fields if isinstance(field, dict) and isinstance(field.get("name"), str))


def _typed_api_error(exc: APIException, code: str, what: str) -> HetznerError:
    if code in _UNAVAILABLE:
        message, retry_after = _UNAVAILABLE[code]
        unavailable = HetznerNoCapacity if code == "resource_unavailable" else HetznerUnavailable
        return unavailable(
            f"{message} ({what}: {exc.message})",
            retry_after=retry_after,
            code=f"hetzner_{code}",
            hetzner_code=code,
            public=message,
        )
    if code.isdigit() and int(code) < 400:
        # A success whose body is not JSON: whatever was asked may have been done.
        return HetznerBadAnswer(
            f"Hetzner answered HTTP {code} with a body that is not JSON ({what}).",
            public="Hetzner's answer could not be read.",
        )
    if code.isdigit() and int(code) >= 500:
        return HetznerTimeout(
            f"Hetzner answered HTTP {code} ({what}).",
            retry_after=15,
            hetzner_code=code,
            public=f"Hetzner answered HTTP {code}.",
        )
    if code == "not_found":
        return HetznerNotFound(f"{what}: not found at Hetzner.", hetzner_code=code, public="Not found at Hetzner.")
    if code == "locked":
        return HetznerLocked(
            f"{what}: another action is running on it.",
            hetzner_code=code,
            public="Another Hetzner action is running on it; try again shortly.",
        )
    if code in _CONFLICT:
        return HetznerConflict(f"{what}: {exc.message}", hetzner_code=code, public=f"Hetzner refused ({code}).")
    if code in ("invalid_input", "json_error", "invalid_server_type"):
        return HetznerRejected(
            f"{what}: {exc.message}", hetzner_code=code, public=f"Hetzner rejected the request ({code})."
        )
    return HetznerError(
        f"{what}: Hetzner answered {code}: {exc.message}", hetzner_code=code, public=f"Hetzner answered {code}."
    )


# POST /servers's own error codes about the Primary IP given as `public_net.ipv4` (Hetzner's API
# description lists them with the create): assigned to another server, in another location, IPv6.
_PRIMARY_IP_CODES = {"primary_ip_assigned", "primary_ip_datacenter_mismatch", "primary_ip_version_mismatch"}


def primary_ip_refusal(error: HetznerError) -> HetznerPrimaryIPRefused | None:
    """Tell whether a create given a Primary IP was refused because of that IP: return the typed refusal, or None.

    Recognised from the codes above, `not_found` (the IP is the one resource the create names by an id
    that can vanish: it was deleted meanwhile), and `invalid_input` naming a `public_net` field.
    """
    about_the_ip = (
        error.hetzner_code in _PRIMARY_IP_CODES
        or error.hetzner_code == "not_found"
        or (error.hetzner_code == "invalid_input" and any(_is_public_net(name) for name in error.fields))
    )
    return retyped(error, HetznerPrimaryIPRefused) if about_the_ip else None


def _is_public_net(field: str) -> bool:
    return field == "public_net" or field.startswith("public_net.")


def retyped(error: HetznerError, kind: type[HetznerError]) -> HetznerError:
    """Return `error` as a `kind`, keeping what Hetzner said (code, fields, whether an earlier try was lost)."""
    typed = kind(error.message, retry_after=error.retry_after, hetzner_code=error.hetzner_code, public=error.public)
    typed.fields, typed.earlier_answer_lost = error.fields, error.earlier_answer_lost
    return typed


# Hetzner answered these before doing anything: a create that met one of them created nothing.
# Anything else (an outage, a 5xx, `server_error`, `service_error`, a timeout) may have come after the effect.
_REFUSALS = {
    "invalid_input",
    "json_error",
    "invalid_server_type",
    "uniqueness_error",
    "rate_limit_exceeded",
    "resource_unavailable",
    "resource_limit_exceeded",
    "placement_error",
    "unauthorized",
    "forbidden",
    "token_readonly",
    "locked",
    "conflict",
    "server_not_stopped",
    "must_be_unassigned",
    "configuration",
    "maintenance",
    # No connection was ever made (refused, no DNS answer, connect timeout): the request never left.
    "unreachable",
    "connect_timeout",
}


def refused_without_effect(exc: HetznerError) -> bool:
    """Tell whether Hetzner certainly did nothing for the request that raised `exc`.

    A refusal heard by a retry proves nothing when an earlier try's answer was lost (a 504, then a
    429: the 504 may have created the resource).
    """
    return exc.hetzner_code in _REFUSALS and not exc.earlier_answer_lost


def all_pages(what: str, get_list, **filters) -> tuple[list, int]:
    """Follow Hetzner's pagination (50 a page, its maximum); return every item and the requests it took."""
    items, page, calls = [], 1, 0
    while page:
        with translated(what, refresh=True):
            result = get_list(**filters, page=page, per_page=50)
        calls += 1
        with reading(what):
            items.extend(result[0])  # hcloud answers a named tuple: the page's items, then meta
            page = result.meta.pagination.next_page if result.meta and result.meta.pagination else None
    return items, calls
