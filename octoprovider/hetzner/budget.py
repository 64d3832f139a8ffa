"""Hetzner's rate budget, shared by every process of a deployment through the database.

Hetzner gives a project 3600 requests an hour, refilled at one a second, and says in every answer
how many are left (`RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`). The gateway records
every answer here (`observe`, a response hook) and asks here before every call (`admit`):

- refreshes and listings (the reconciler's reads) wait while the estimate is below the reserve kept
  for mutations (HCLOUD_RATE_RESERVE), so that a big fleet's refreshes never starve OctoPerf's
  creates and deletes;
- mutations (create, delete, power and IP actions, and the look-ups they need) go through unless the
  estimate says Hetzner would answer 429 anyway: then they are refused here, with the 503 and
  Retry-After that Hetzner's 429 would have become.

The estimate is the last observation plus what Hetzner has refilled since (limit / 3600 a second),
capped at the limit. The observation is one row (`models.HetznerRateBudget`) written with a
compare-and-set on its time, so that an answer arriving late never overwrites a newer one, and the
web workers, the reconcilers and the commands all see the same figure.
"""

import contextlib
import contextvars
import logging
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import requests
from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q

from octoprovider.core import clock
from octoprovider.core.exceptions import HetznerUnavailable
from octoprovider.hetzner.models import HetznerRateBudget

logger = logging.getLogger(__name__)

_ROW = 1
# Hetzner refills the bucket evenly over an hour: 3600 an hour is one a second.
_REFILL_PERIOD = 3600.0
_DEFAULT_LIMIT = 3600

_observer: contextvars.ContextVar[str | None] = contextvars.ContextVar("octoprovider_budget_observer", default=None)


@dataclass(frozen=True)
class Budget:
    """The shared observation, and what it says now."""

    limit: int
    remaining: int
    observed_at: datetime | None
    observed_by: str
    reset_at: datetime | None
    deferred_refreshes: int
    last_deferred_at: datetime | None
    refused_mutations: int
    full_listing_at: datetime | None

    @property
    def refill_per_second(self) -> float:
        return self.limit / _REFILL_PERIOD

    def estimate(self, now: datetime | None = None) -> float:
        """Estimate how many requests Hetzner would accept now: observed, plus refilled since."""
        if self.observed_at is None:
            return float(self.limit)
        elapsed = max(0.0, ((now or clock.now()) - self.observed_at).total_seconds())
        return min(float(self.limit), self.remaining + elapsed * self.refill_per_second)

    @property
    def reserve(self) -> int:
        return reserve_for(self.limit)

    def seconds_until(self, requests_needed: float, now: datetime | None = None) -> int:
        """Return how long until the estimate reaches `requests_needed` (0 if it already has)."""
        missing = requests_needed - self.estimate(now)
        return max(0, math.ceil(missing / self.refill_per_second)) if missing > 0 else 0


def reserve_for(limit: int) -> int:
    """Return how many requests HCLOUD_RATE_RESERVE keeps for mutations, out of `limit`."""
    value = settings.HCLOUD_RATE_RESERVE
    if value.endswith("%"):
        return math.ceil(limit * int(value[:-1]) / 100)
    return int(value)


def current() -> Budget | None:
    """Return the shared observation, or None before any Hetzner answer was recorded."""
    row = HetznerRateBudget.objects.filter(pk=_ROW).first()
    if row is None:
        return None
    return Budget(
        limit=row.limit,
        remaining=row.remaining,
        observed_at=row.observed_at,
        observed_by=row.observed_by,
        reset_at=row.reset_at,
        deferred_refreshes=row.deferred_refreshes,
        last_deferred_at=row.last_deferred_at,
        refused_mutations=row.refused_mutations,
        full_listing_at=row.full_listing_at,
    )


# --- recording Hetzner's answers -------------------------------------------------------------------


@contextlib.contextmanager
def observing_as(name: str) -> Iterator[None]:
    """Label the observations made inside (the dashboard says who saw Hetzner's latest answer)."""
    token = _observer.set(name)
    try:
        yield
    finally:
        _observer.reset(token)


def _observer_name() -> str:
    name = _observer.get()
    if name is not None:
        return name
    if len(sys.argv) > 1 and sys.argv[0].endswith("manage.py") and sys.argv[1] != "runserver":
        return f"manage.py {sys.argv[1]}"
    return "a web process"


def observe(response: requests.Response, *args, **kwargs) -> requests.Response:
    """Record the rate-limit headers of a Hetzner answer in the shared row (a requests response hook).

    A failure to record never fails the Hetzner call: the budget is advice, Hetzner's 429 the rule.
    """
    limit = _header_int(response, "RateLimit-Limit")
    remaining = _header_int(response, "RateLimit-Remaining")
    if limit is None or remaining is None:
        return response
    reset = _header_int(response, "RateLimit-Reset")
    try:
        record(
            limit=limit,
            remaining=remaining,
            reset_at=datetime.fromtimestamp(reset, tz=UTC) if reset is not None else None,
        )
    except DatabaseError as exc:
        logger.warning("Could not record Hetzner's rate budget: %s", exc)
    return response


def _header_int(response: requests.Response, name: str) -> int | None:
    value = response.headers.get(name)
    return int(value) if value is not None and value.isdigit() else None


def record(*, limit: int, remaining: int, reset_at: datetime | None = None, at: datetime | None = None) -> None:
    """Record one observation, unless a newer one is already recorded (compare-and-set on its time)."""
    now = at or clock.now()
    fields = {
        "limit": limit,
        "remaining": remaining,
        "reset_at": reset_at,
        "observed_at": now,
        "observed_by": _observer_name()[:64],
    }
    newer_or_equal = Q(observed_at__isnull=True) | Q(observed_at__lte=now)
    if HetznerRateBudget.objects.filter(newer_or_equal, pk=_ROW).update(**fields):
        return
    _create_row(**fields)


def _create_row(**fields) -> None:
    """Create the shared row if no process has yet; a process that lost the race has nothing to do."""
    if HetznerRateBudget.objects.filter(pk=_ROW).exists():
        return
    try:
        with transaction.atomic():
            HetznerRateBudget.objects.create(pk=_ROW, **fields)
    except IntegrityError:
        pass


# --- deciding before a call ------------------------------------------------------------------------


def admit(*, refresh: bool, what: str) -> None:
    """Let a Hetzner call go, or refuse it here with a 503 and Retry-After.

    `refresh` calls (listings and look-ups that only keep the database fresh) are refused while the
    estimate is below the reserve; mutations only when Hetzner would refuse them itself.
    """
    budget = current()
    if budget is None:
        return
    now = clock.now()
    estimate = budget.estimate(now)
    if refresh and estimate < budget.reserve:
        raise HetznerUnavailable(
            f"Hetzner's rate budget is estimated at {int(estimate)} of {budget.limit} requests, below the "
            f"{budget.reserve} kept for mutations (HCLOUD_RATE_RESERVE); {what} waits.",
            retry_after=max(1, budget.seconds_until(budget.reserve, now)),
            code="hetzner_rate_reserve",
            hetzner_code="rate_reserve",
        )
    if estimate < 1:
        HetznerRateBudget.objects.filter(pk=_ROW).update(refused_mutations=F("refused_mutations") + 1)
        retry_after = max(1, budget.seconds_until(1, now))
        logger.warning("Refused %s locally: Hetzner's rate budget is exhausted for %s s", what, retry_after)
        raise HetznerUnavailable(
            f"Hetzner's API rate limit is exhausted; try again shortly. ({what}: refused before calling "
            f"Hetzner, which would answer rate_limit_exceeded for about {retry_after} s)",
            retry_after=retry_after,
            code="hetzner_rate_limit_exceeded",
            hetzner_code="rate_limit_exceeded",
        )


def refresh_deferral(*, what: str) -> str | None:
    """Tell why a reconcile pass must wait (counting it), or None when the budget allows refreshes."""
    budget = current()
    if budget is None:
        return None
    now = clock.now()
    estimate = budget.estimate(now)
    if estimate >= budget.reserve:
        return None
    HetznerRateBudget.objects.filter(pk=_ROW).update(
        deferred_refreshes=F("deferred_refreshes") + 1, last_deferred_at=now
    )
    return (
        f"{what} deferred: Hetzner's rate budget is estimated at {int(estimate)} of {budget.limit} requests, "
        f"below the {budget.reserve} kept for mutations (HCLOUD_RATE_RESERVE); refreshes resume in about "
        f"{budget.seconds_until(budget.reserve, now)} s."
    )


# --- the full listing's schedule ---------------------------------------------------------------------


def claim_full_listing(*, interval: float) -> bool:
    """Claim the fleet's full listing if none was made in the last `interval` seconds (one reconciler wins)."""
    now = clock.now()
    budget = current()
    if budget is None:
        _create_row(limit=_DEFAULT_LIMIT, remaining=_DEFAULT_LIMIT, observed_by="")
        budget = current()
    last = budget.full_listing_at
    if last is not None and last > now - timedelta(seconds=interval):
        return False
    return HetznerRateBudget.objects.filter(pk=_ROW, full_listing_at=last).update(full_listing_at=now) == 1


def full_listing_done() -> None:
    """Record a full listing made outside the schedule (the sweep found a disagreement)."""
    HetznerRateBudget.objects.filter(pk=_ROW).update(full_listing_at=clock.now())


def snapshot() -> dict | None:
    """Return the shared figure for display: the estimate now, the limit, who saw Hetzner's answer and when."""
    budget = current()
    if budget is None or budget.observed_at is None:
        return None
    now = clock.now()
    estimate = int(budget.estimate(now))
    return {
        "remaining": estimate,
        "limit": budget.limit,
        "at": budget.observed_at,
        "by": budget.observed_by or "a process of this deployment",
        "observed_remaining": budget.remaining,
        "reserve": budget.reserve,
        "refreshes_deferred": estimate < budget.reserve,
        "deferred_refreshes": budget.deferred_refreshes,
        "refused_mutations": budget.refused_mutations,
    }
