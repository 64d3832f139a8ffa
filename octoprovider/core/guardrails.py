"""Operators' spending limits: what a runaway caller or a leaked token can create at most.

Checked before any Hetzner call, and atomically: the check and the insert of the intent row happen
under one lock, so 20 parallel creates against a limit of 5 create exactly 5. What is slow to
measure (a month of rows, for the budgets) is measured before the lock is taken.
"""

import contextlib
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction

from octoprovider.core.exceptions import LimitReached


def _lock(name: str) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [zlib.crc32(f"octoprovider:{name}".encode())])


@contextlib.contextmanager
def guarded(name: str):
    """Hold a transaction in which limit checks and inserts of kind `name` run one at a time.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: every transaction starts IMMEDIATE
    (settings), which already takes the database's single write lock.
    """
    with transaction.atomic():
        _lock(name)
        yield


def check_region_and_type(*, region: str, location: str, instance_type: str | None = None) -> None:
    allowed_regions = settings.ALLOWED_REGIONS
    if allowed_regions and region.lower() not in allowed_regions and location not in allowed_regions:
        raise LimitReached(
            f"Region {region!r} is not in ALLOWED_REGIONS ({', '.join(allowed_regions)}).", code="region_not_allowed"
        )
    if instance_type is not None and settings.ALLOWED_TYPES and instance_type.upper() not in settings.ALLOWED_TYPES:
        raise LimitReached(
            f"Type {instance_type!r} is not in ALLOWED_TYPES ({', '.join(settings.ALLOWED_TYPES)}).",
            code="type_not_allowed",
        )


def check_count(*, name: str, current: int, limit: int, what: str) -> None:
    if current >= limit:
        raise LimitReached(f"{name} ({limit}) reached: {current} {what} exist already.", code="limit_reached")


# --- budgets in euros -------------------------------------------------------------------------------

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Spend:
    """What the fleet costs, as the budgets see it (in the currency of Hetzner's price list)."""

    per_hour: Decimal  # the burn of what exists now
    day: Decimal  # billed today (UTC), plus the burn of what exists to the day's end
    month: Decimal  # the same for the calendar month
    day_end: datetime
    month_end: datetime
    currency: str = "EUR"
    # How old the slow part of the measure is: what ended since may still be counted in it.
    measured_seconds_ago: float = field(default=0.0, compare=False)


# Set by the operations layer at start-up (it can see instances and static IPs together): given
# Hetzner's prices (and the id of an instance whose create is being priced, left out), say what is
# spent. The layers below only compare. The meter runs under the lock, so it must be quick; `ahead`
# does its slow part beforehand (see measure_spend_ahead), and `meter(prices, fresh=True)` measures
# it again if it is older than a moment.
FRESH_SECONDS = 2.0
_spend_meter: Callable[..., Spend] | None = None
_spend_ahead: Callable[[object], None] | None = None


def offer_spend_meter(meter: Callable[..., Spend], *, ahead: Callable[[object], None] | None = None) -> None:
    global _spend_meter, _spend_ahead
    _spend_meter, _spend_ahead = meter, ahead


def measure_spend_ahead(prices) -> None:
    """Do the slow part of measuring the spend now, before `guarded(...)`: outside every lock.

    Without it the check still holds, but may take the slow part's time under the lock, where
    every create waits for it.
    """
    if prices is not None and budgets_set() and _spend_ahead is not None:
        _spend_ahead(prices)


def budgets_set() -> bool:
    return any(
        limit is not None
        for limit in (settings.MAX_HOURLY_SPEND_EUR, settings.DAILY_BUDGET_EUR, settings.MONTHLY_BUDGET_EUR)
    )


def started_hours(start: datetime, end: datetime) -> int:
    """Count the hours Hetzner bills for something that exists from `start` to `end` (each started hour)."""
    return max(0, math.ceil((end - start) / HOUR))


def check_budgets(
    *,
    prices,
    adding_per_hour: Decimal,
    adding_monthly: Decimal | None,
    what: str,
    now: datetime,
    excluding_instance: str | None = None,
) -> None:
    """Refuse (429) what would take the spend past MAX_HOURLY_SPEND_EUR, DAILY_BUDGET_EUR or MONTHLY_BUDGET_EUR.

    Run inside `guarded(...)`, after `measure_spend_ahead(prices)` outside it: one more lock, shared
    by instances and static IPs, makes every check and insert that spends money take turns, so two
    parallel creates cannot both cross. The meter reads only the rows created lately under it.
    `excluding_instance` is the row of the create being priced, left out of what is spent already.
    """
    if not budgets_set() or _spend_meter is None:
        return
    _lock("spend")
    spend = _spend_meter(prices, excluding_instance=excluding_instance)
    crossed = _crossed(spend, adding_per_hour=adding_per_hour, adding_monthly=adding_monthly, what=what, now=now)
    if crossed is not None and spend.measured_seconds_ago > FRESH_SECONDS:
        # Measured a while ago, the spend may still count what was deleted since: refuse on a fresh one only.
        spend = _spend_meter(prices, fresh=True, excluding_instance=excluding_instance)
        crossed = _crossed(spend, adding_per_hour=adding_per_hour, adding_monthly=adding_monthly, what=what, now=now)
    if crossed is not None:
        raise crossed


def _crossed(
    spend: Spend, *, adding_per_hour: Decimal, adding_monthly: Decimal | None, what: str, now: datetime
) -> LimitReached | None:
    day_cost = adding_per_hour * started_hours(now, spend.day_end)
    month_cost = adding_per_hour * started_hours(now, spend.month_end)
    if adding_monthly is not None:
        month_cost = min(month_cost, adding_monthly)  # Hetzner never bills more than the monthly price
    currency = spend.currency
    for name, limit, current, added, meaning in (
        ("MAX_HOURLY_SPEND_EUR", settings.MAX_HOURLY_SPEND_EUR, spend.per_hour, adding_per_hour, "per hour now"),
        ("DAILY_BUDGET_EUR", settings.DAILY_BUDGET_EUR, spend.day, day_cost, "billed today to midnight UTC"),
        ("MONTHLY_BUDGET_EUR", settings.MONTHLY_BUDGET_EUR, spend.month, month_cost, "billed this month to its end"),
    ):
        if limit is not None and current + added > limit:
            return LimitReached(
                f"{name} ({limit:.2f} {currency}) would be crossed: {current:.4f} {currency} {meaning}, "
                f"and {what} adds {added:.4f}.",
                code="budget_reached",
            )
    return None
