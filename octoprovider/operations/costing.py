"""What the fleet costs in euros: the spend the budgets compare, and the cost of each test run.

Hetzner bills everything that exists (servers powered off and unassigned IPs included) per started
hour from its creation, and never more in a calendar month than the monthly price. From our rows:

- a server exists from its row's creation (the create follows within a second) until its delete
  was requested (or, failing that, until it was seen gone); a create Hetzner refused is not billed;
- its own IPv4 lives as long, unless it has none (`Instance.own_ipv4`): created with one of our
  static IPs, or moved onto one by an associate (then the minutes before the move are left out);
- a static IP exists from its allocation until its release was requested;
- a server kept for reuse (instances/reuse.py) is billed to the first instance that used each of its
  hours: an instance that took a parked server is billed from the server's next billed hour on (the
  one it was taken in was paid by the instance that parked it), and a parked server is billed for
  the hours it outlives its deadline (none when deleted in time).

Prices are Hetzner's current ones (`/pricing`), with or without VAT as BUDGETS_INCLUDE_VAT says.
"""

import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db.models import OuterRef, Q, Subquery

from instances.models import Instance, ParkedServer
from instances.reuse import next_billed_hour
from octoprovider import hetzner
from octoprovider.core import clock, guardrails
from octoprovider.core.guardrails import Spend, started_hours
from staticips.models import Association, StaticIP
from staticips.selectors import static_ips_never_used

ZERO = Decimal(0)


@dataclass(frozen=True)
class Billed:
    """One thing Hetzner bills by the hour: from `start` to `end` (None: it still exists)."""

    start: datetime
    end: datetime | None
    hourly: Decimal | None  # None: not in Hetzner's price list
    monthly: Decimal | None

    def hours_in(self, period_start: datetime, period_end: datetime) -> int:
        """Count the started hours billed in the period (those that begin in it); a live one runs to its end."""
        end = min(self.end, period_end) if self.end is not None else period_end
        if end <= period_start or self.start >= period_end:
            return 0
        # Hour k begins at start + k hours; a resource that existed at all is billed its first hour.
        first = started_hours(self.start, period_start)
        last = max(1, started_hours(self.start, end)) if self.end is not None else started_hours(self.start, end)
        return max(0, last - first)

    def cost_in(self, period_start: datetime, period_end: datetime) -> Decimal:
        if self.hourly is None:
            return ZERO
        cost = self.hourly * self.hours_in(period_start, period_end)
        # Hetzner caps each month at the monthly price; the periods measured here lie within a month.
        return min(cost, self.monthly) if self.monthly is not None else cost


def _server_end(instance) -> datetime | None:
    if instance["status"] != Instance.Status.TERMINATED:
        return None
    return instance["delete_requested_at"] or instance["terminated_at"]


def _billed_instances(since: datetime | None = None):
    """Return the instance rows Hetzner bills (or billed), existing at some time after `since`."""
    rows = Instance.objects.exclude(status=Instance.Status.TERMINATED, hetzner_id__isnull=True)
    if since is not None:
        rows = rows.filter(Q(terminated_at__isnull=True) | Q(terminated_at__gt=since))
    taken = ParkedServer.objects.filter(taken_by=OuterRef("pk"), status=ParkedServer.Status.TAKEN)
    rows = rows.annotate(
        took_billed_since=Subquery(taken.values("billed_since")[:1]), took_at=Subquery(taken.values("taken_at")[:1])
    )
    return rows.values(
        "took_billed_since",
        "took_at",
        "id",
        "region",
        "location",
        "server_type",
        "own_ipv4",
        "status",
        "created_at",
        "delete_requested_at",
        "terminated_at",
    )


def _server_and_ipv4(instance: dict, prices: hetzner.Prices) -> tuple[Billed, Billed]:
    """Return what Hetzner bills for an instance: its server, and its own IPv4 (none when it holds a static IP)."""
    end = _server_end(instance)
    start = _billed_from(instance)
    if end is not None and end <= start:  # ended within an hour another instance paid
        return Billed(start=start, end=start, hourly=None, monthly=None), Billed(start, start, None, None)
    location = instance["location"]
    alone = prices.instance(instance["server_type"], location, own_ipv4=False)
    server = Billed(
        start=start,
        end=end,
        hourly=alone.hourly if alone else None,
        monthly=alone.monthly if alone else None,
    )
    if not instance["own_ipv4"]:
        return server, Billed(start=instance["created_at"], end=instance["created_at"], hourly=None, monthly=None)
    ipv4 = Billed(
        start=start,
        end=end,
        hourly=prices.ipv4(location),
        monthly=prices.primary_ipv4_monthly.get(location),
    )
    return server, ipv4


def _billed_from(instance: dict) -> datetime:
    """When Hetzner's bill for an instance starts: its create, or the next billed hour of the parked server it took."""
    if instance.get("took_billed_since") is None:
        return instance["created_at"]
    return next_billed_hour(instance["took_billed_since"], instance["took_at"])


def _billed_parked(prices: hetzner.Prices, since: datetime) -> list[Billed]:
    """Bill the parked servers for the hours they outlive the one their instance paid (none when deleted in time).

    A parked server lives until its deadline, or until its delete is accepted; one still being
    deleted (Hetzner refused the delete so far) is billed as a live server.
    """
    billed = []
    rows = ParkedServer.objects.exclude(status=ParkedServer.Status.TAKEN).filter(
        Q(ended_at__isnull=True) | Q(ended_at__gt=since)
    )
    for row in rows:
        start = next_billed_hour(row.billed_since, row.parked_at)
        end = row.ended_at or (row.deadline if row.status == ParkedServer.Status.PARKED else None)
        if end is not None and end <= start:
            continue
        price = prices.instance(row.server_type, row.location, own_ipv4=True)
        billed.append(
            Billed(
                start=start, end=end, hourly=price.hourly if price else None, monthly=price.monthly if price else None
            )
        )
    return billed


def _billed_static_ips(prices: hetzner.Prices, since: datetime | None = None) -> list[Billed]:
    rows = StaticIP.objects.exclude(status=StaticIP.Status.RELEASED, hetzner_id__isnull=True)
    if since is not None:
        rows = rows.filter(Q(released_at__isnull=True) | Q(released_at__gt=since))
    billed = []
    for location, status, created, release_requested, released in rows.values_list(
        "location", "status", "created_at", "release_requested_at", "released_at"
    ):
        end = None if status in StaticIP.LIVE else (release_requested or released)
        billed.append(
            Billed(
                start=created, end=end, hourly=prices.ipv4(location), monthly=prices.primary_ipv4_monthly.get(location)
            )
        )
    return billed


def periods(now: datetime) -> tuple[datetime, datetime, datetime, datetime]:
    """Return the budgets' periods: today and this calendar month, in UTC (start, end each)."""
    day_start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    month_start = day_start.replace(day=1)
    month_end = (month_start + timedelta(days=32)).replace(day=1)
    return day_start, day_start + timedelta(days=1), month_start, month_end


# The budgets compare the spend under their lock, once per create: summing a month of rows there
# (253 ms at 10,000) made every create of a burst wait for all the others. So the rows created
# before a cutoff are summed beforehand, outside any lock (`measure_spend_ahead`), and the check adds
# only the rows created since, a short indexed read. That sum stays a safe bound as it ages: what a
# row created before the cutoff bills can only fall (it ends, or a static IP replaces its IPv4);
# what can rise (a row being inserted, a create moving to a fallback location or type) happens
# within the minutes a create lasts, and SETTLED keeps those rows on the read-under-the-lock side.
# One change raises a settled row's bill: a dissociate gives a server on a static IP its own IPv4
# back. So live servers without an IPv4 of their own (no more than there are static IPs) are never
# settled: their ids are kept with the sum and read under the lock each time.
SETTLED = timedelta(minutes=10)
# How long a process reuses the sum before measuring it again ahead: what ended meanwhile is still
# counted, which only matters to a create it would refuse, and that one asks for a sum at most
# FRESH_SECONDS old (measured under the lock then, once: the creates after it reuse it).
AHEAD_SECONDS = 30.0
_AHEAD_KEY = "octoprovider:spend-ahead"
_measuring = threading.Lock()


@dataclass(frozen=True)
class _Settled:
    """The spend of the instance rows created before `cutoff`, for one day and month, at one price list."""

    cutoff: datetime
    day_start: datetime
    prices: hetzner.Prices
    measured_at: float  # time.monotonic()
    per_hour: Decimal
    day: Decimal
    month: Decimal
    unsettled: frozenset[str]  # ids created before `cutoff` whose bill may still rise: read under the lock


def measure_spend_ahead(prices: hetzner.Prices, now: datetime | None = None) -> None:
    """Sum the settled rows' spend now, outside the budgets' lock, unless this process did a moment ago."""
    now = now or clock.now()
    settled = _settled_for(prices, now)
    if settled is not None and time.monotonic() - settled.measured_at < AHEAD_SECONDS:
        return
    if _measuring.acquire(blocking=settled is None):  # one thread measures; the others use the last sum
        try:
            settled = _settled_for(prices, now)  # another thread may have measured meanwhile
            if settled is None or time.monotonic() - settled.measured_at >= AHEAD_SECONDS:
                cache.set(_AHEAD_KEY, _measure_settled(prices, now), None)
        finally:
            _measuring.release()


def _settled_for(prices: hetzner.Prices, now: datetime) -> _Settled | None:
    settled = cache.get(_AHEAD_KEY)
    if settled is None or settled.day_start != periods(now)[0] or settled.prices != prices or settled.cutoff > now:
        return None
    return settled


def _measure_settled(prices: hetzner.Prices, now: datetime) -> _Settled:
    day_start, day_end, month_start, month_end = periods(now)
    cutoff = now - SETTLED
    billed: list[Billed] = []
    unsettled = set()
    for instance in _billed_instances(since=month_start).filter(created_at__lt=cutoff):
        if not instance["own_ipv4"] and instance["status"] != Instance.Status.TERMINATED:
            unsettled.add(instance["id"])
        else:
            billed.extend(_server_and_ipv4(instance, prices))
    per_hour, day, month = _add_up(billed, day_start, day_end, month_start, month_end)
    return _Settled(
        cutoff=cutoff,
        day_start=day_start,
        prices=prices,
        measured_at=time.monotonic(),
        per_hour=per_hour,
        day=day,
        month=month,
        unsettled=frozenset(unsettled),
    )


def _add_up(billed: list[Billed], day_start, day_end, month_start, month_end) -> tuple[Decimal, Decimal, Decimal]:
    per_hour, day, month = ZERO, ZERO, ZERO
    for item in billed:
        if item.end is None and item.hourly is not None:
            per_hour += item.hourly
        day += item.cost_in(day_start, day_end)
        month += item.cost_in(month_start, month_end)
    return per_hour, day, month


def spend(prices: hetzner.Prices, now: datetime | None = None, *, excluding_instance: str | None = None) -> Spend:
    """Measure the spend the budgets compare: the burn now, and what today and this month will have cost.

    `excluding_instance` leaves out the row of a create whose budget check prices it apart.
    """
    now = now or clock.now()
    day_start, day_end, month_start, month_end = periods(now)
    billed: list[Billed] = []
    for instance in _billed_instances(since=month_start).exclude(pk=excluding_instance):
        billed.extend(_server_and_ipv4(instance, prices))
    billed.extend(_billed_static_ips(prices, since=month_start))
    billed.extend(_billed_parked(prices, since=month_start))
    per_hour, day, month = _add_up(billed, day_start, day_end, month_start, month_end)
    return Spend(
        per_hour=per_hour, day=day, month=month, day_end=day_end, month_end=month_end, currency=prices.currency
    )


def spend_for_budgets(
    prices: hetzner.Prices, now: datetime | None = None, *, fresh: bool = False, excluding_instance: str | None = None
) -> Spend:
    """Measure what `spend` does, quickly enough for the budgets' lock (it may count what just ended).

    Adds the rows created since the settled sum's cutoff, those it left unsettled, and the static
    IPs (few) to that sum, measured first, under the lock, if this process has none for this day and
    price list, or none younger than AHEAD_SECONDS (FRESH_SECONDS when `fresh`). `excluding_instance`
    is the row of the create being priced, left out.
    """
    now = now or clock.now()
    day_start, day_end, month_start, month_end = periods(now)
    settled = _settled_for(prices, now)
    if settled is None or time.monotonic() - settled.measured_at > (
        guardrails.FRESH_SECONDS if fresh else AHEAD_SECONDS
    ):
        settled = _measure_settled(prices, now)
        cache.set(_AHEAD_KEY, settled, None)
    billed: list[Billed] = []
    recent = _billed_instances(since=month_start).filter(
        Q(created_at__gte=settled.cutoff) | Q(pk__in=settled.unsettled)
    )
    for instance in recent.exclude(pk=excluding_instance):
        billed.extend(_server_and_ipv4(instance, prices))
    billed.extend(_billed_static_ips(prices, since=month_start))
    billed.extend(_billed_parked(prices, since=month_start))  # few: never settled
    per_hour, day, month = _add_up(billed, day_start, day_end, month_start, month_end)
    return Spend(
        per_hour=settled.per_hour + per_hour,
        day=settled.day + day,
        month=settled.month + month,
        day_end=day_end,
        month_end=month_end,
        currency=prices.currency,
        measured_seconds_ago=time.monotonic() - settled.measured_at,
    )


# --- test runs -------------------------------------------------------------------------------------

# How far back the runs page and `costs` look when not told.
RUNS_DEFAULT_DAYS = 7


@dataclass
class Run:
    """One test as OctoPerf ran it: creates in one region, each less than RUN_GAP seconds after the last."""

    region: str
    start: datetime
    end: datetime | None = None  # when its last server was deleted; None while one still exists
    instances: int = 0
    instance_hours: int = 0
    servers_eur: Decimal = ZERO
    ipv4s_eur: Decimal = ZERO
    static_ips_eur: Decimal = ZERO
    unused_seconds: float = 0.0
    saved_by_reuse_eur: Decimal = ZERO  # what its instances that took a parked server did not pay
    locations: set[str] = field(default_factory=set)
    _ids: list[str] = field(default_factory=list, repr=False)
    _last_create: datetime | None = field(default=None, repr=False)
    _live: bool = field(default=False, repr=False)

    @property
    def total_eur(self) -> Decimal:
        return self.servers_eur + self.ipv4s_eur + self.static_ips_eur

    @property
    def unused_minutes(self) -> int:
        """The minutes billed after each server was gone (its last started hour's rest), added up."""
        return round(self.unused_seconds / 60)

    def as_json(self) -> dict:
        data = {key: value for key, value in asdict(self).items() if not key.startswith("_")}
        data.update(
            start=self.start.isoformat(),
            end=self.end.isoformat() if self.end else None,
            locations=sorted(self.locations),
            total_eur=self.total_eur,
            unused_minutes=self.unused_minutes,
        )
        del data["unused_seconds"]
        return {key: str(value) if isinstance(value, Decimal) else value for key, value in data.items()}


def runs(*, since: datetime, until: datetime | None = None, prices: hetzner.Prices | None = None) -> list[Run]:
    """Group the instances created since `since` into test runs and cost each, newest first.

    Static IPs are costed per run for the hours each was associated with one of its instances (they
    exist between runs too: the dashboard's burn counts them whole). Hetzner's prices are asked for
    only when there is a run to price.
    """
    now = clock.now()
    rows = _billed_instances().filter(created_at__gte=since)
    if until is not None:
        rows = rows.filter(created_at__lt=until)
    rows = list(rows)
    if not rows:
        return []
    prices = prices or hetzner.hourly_prices()
    gap = timedelta(seconds=settings.RUN_GAP)
    by_region: dict[str, list[Run]] = {}
    for instance in sorted(rows, key=lambda row: row["created_at"]):
        region_runs = by_region.setdefault(instance["region"].strip().lower(), [])
        run = region_runs[-1] if region_runs else None
        if run is None or instance["created_at"] - run._last_create > gap:
            run = Run(region=instance["region"].strip().lower(), start=instance["created_at"])
            region_runs.append(run)
        run._last_create = instance["created_at"]
        _add_instance(run, instance, prices, now)
    all_runs = [run for region_runs in by_region.values() for run in region_runs]
    _add_static_ips(all_runs, prices, now)
    return sorted(all_runs, key=lambda run: run.start, reverse=True)


def _add_instance(run: Run, instance: dict, prices: hetzner.Prices, now: datetime) -> None:
    server, ipv4 = _server_and_ipv4(instance, prices)
    until = server.end or now
    hours = server.hours_in(server.start, until) if server.end else max(1, started_hours(server.start, now))
    run.instances += 1
    run.instance_hours += hours
    run.servers_eur += (server.hourly or ZERO) * hours
    ipv4_hours = ipv4.hours_in(ipv4.start, ipv4.end or now) if ipv4.end else hours
    run.ipv4s_eur += (ipv4.hourly or ZERO) * ipv4_hours
    if server.end is not None:  # a running server's hour is not over: nothing of it is unused yet
        run.unused_seconds += max(0.0, hours * 3600 - (until - server.start).total_seconds())
    run.saved_by_reuse_eur += _saved_by_reuse(instance, prices, now)
    run.locations.add(instance["location"])
    run._ids.append(instance["id"])
    if server.end is None:
        run.end, run._live = None, True
    elif not run._live:
        run.end = max(run.end, server.end) if run.end else server.end


def _saved_by_reuse(instance: dict, prices: hetzner.Prices, now: datetime) -> Decimal:
    """What an instance that took a parked server did not pay: its bill as a create's, less its bill."""
    if instance.get("took_billed_since") is None:
        return ZERO
    as_created = _server_and_ipv4({**instance, "took_billed_since": None}, prices)
    actual = _server_and_ipv4(instance, prices)
    return sum((item.cost_in(item.start, item.end or now) for item in as_created), ZERO) - sum(
        (item.cost_in(item.start, item.end or now) for item in actual), ZERO
    )


def saved_by_reuse(*, prices: hetzner.Prices, since: datetime | None = None) -> Decimal:
    """Add up what the instances that took a parked server (since `since`) did not pay."""
    rows = _billed_instances().filter(took_at__isnull=False)
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    now = clock.now()
    return sum((_saved_by_reuse(instance, prices, now) for instance in rows), ZERO)


def saved_by_reuse_per_day(all_runs: list[Run]) -> dict[str, Decimal]:
    """Add up what reuse saved, by the day (UTC) each run started."""
    days: dict[str, Decimal] = {}
    for run in all_runs:
        day = run.start.astimezone(UTC).date().isoformat()
        days[day] = days.get(day, ZERO) + run.saved_by_reuse_eur
    return dict(sorted(days.items()))


def _add_static_ips(all_runs: list[Run], prices: hetzner.Prices, now: datetime) -> None:
    run_of = {instance_id: run for run in all_runs for instance_id in run._ids}
    associations = Association.objects.filter(instance_id__in=list(run_of)).values_list(
        "instance_id", "static_ip__location", "created_at", "ended_at"
    )
    for instance_id, location, created, ended in associations:
        hours = max(1, started_hours(created, ended or now))
        run_of[instance_id].static_ips_eur += (prices.ipv4(location) or ZERO) * hours


# --- what nobody used ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unclaimed:
    """Money spent on what OctoPerf never learned of: answers of creates and allocates it never received."""

    instances: int  # created since the date, never claimed (UNCLAIMED_INSTANCE_GRACE ends them)
    instances_eur: Decimal  # what they were billed (their runs count them too)
    static_ips: int  # allocated now, never associated by OctoPerf (`static_ips_never_used`)
    static_ips_eur_per_hour: Decimal

    def as_json(self) -> dict:
        return {key: str(value) if isinstance(value, Decimal) else value for key, value in asdict(self).items()}


def unclaimed(*, since: datetime, prices: hetzner.Prices | None = None) -> Unclaimed:
    """Count and price the never-claimed instances created since `since`, and the never-used static IPs now.

    Hetzner's prices are asked for only when there is something to price.
    """
    now = clock.now()
    cutoff = now - timedelta(seconds=settings.UNCLAIMED_INSTANCE_GRACE)
    never_claimed = list(
        _billed_instances().filter(created_at__gte=since, created_at__lt=cutoff, claimed_at__isnull=True)
    )
    static_ips = list(static_ips_never_used().values_list("location", flat=True))
    if not never_claimed and not static_ips:
        return Unclaimed(instances=0, instances_eur=ZERO, static_ips=0, static_ips_eur_per_hour=ZERO)
    prices = prices or hetzner.hourly_prices()
    instances, instances_eur = 0, ZERO
    for instance in never_claimed:
        instances += 1
        for item in _server_and_ipv4(instance, prices):
            instances_eur += item.cost_in(item.start, item.end or now)
    return Unclaimed(
        instances=instances,
        instances_eur=instances_eur,
        static_ips=len(static_ips),
        static_ips_eur_per_hour=sum((prices.ipv4(location) or ZERO for location in static_ips), ZERO),
    )


# --- what was billed, item by item -------------------------------------------------------------------


def billed_since(*, since: datetime, prices: hetzner.Prices) -> tuple[list[Billed], list[Billed], list[Billed]]:
    """Return what Hetzner billed at some time after `since`: servers, their own IPv4s, and static IPs."""
    servers, ipv4s = [], []
    for instance in _billed_instances(since=since):
        server, ipv4 = _server_and_ipv4(instance, prices)
        servers.append(server)
        ipv4s.append(ipv4)
    return servers, ipv4s, _billed_static_ips(prices, since=since)
