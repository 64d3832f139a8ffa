"""The figures on the admin's index page: the fleet, what it costs now, Hetzner's budget, the reconciler.

Every figure is one aggregate query (or a cached value), so the page costs the same for ten
instances as for ten thousand.
"""

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q
from django.urls import reverse

from instances.models import Instance
from octoprovider import hetzner
from octoprovider.core.exceptions import HetznerError
from octoprovider.hetzner import budget
from octoprovider.operations import costing
from octoprovider.operations.models import ReconcilerRun
from staticips.models import Association, StaticIP

# Hetzner bills what exists: every server not gone yet, powered off or being deleted included.
_BILLED = [s for s in Instance.Status if s != Instance.Status.TERMINATED]
_LAST_ERRORS = 10


@dataclass
class Spend:
    """What the fleet costs per hour at Hetzner's list prices (VAT included), or why it is unknown."""

    currency: str = ""
    vat: bool = True
    servers: Decimal = Decimal(0)
    ipv4s: Decimal = Decimal(0)
    unpriced: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def per_hour(self) -> Decimal:
        return self.servers + self.ipv4s

    @property
    def per_day(self) -> Decimal:
        return self.per_hour * 24


@dataclass
class LastError:
    kind: str
    pk: str
    admin_url: str
    status: str
    error: str
    at: datetime


def instances_by_status() -> list[tuple[str, str, int]]:
    """Count instances by status (value, label, count), in the order a host goes through them."""
    counts = dict(Instance.objects.order_by().values_list("status").annotate(n=Count("pk")))
    return [(value, label, counts[value]) for value, label in Instance.Status.choices if value in counts]


def instances_by_location() -> list[tuple[str, int]]:
    """Count the instances that exist at Hetzner (not terminated) by location."""
    return list(
        Instance.objects.filter(status__in=_BILLED).order_by("location").values_list("location").annotate(n=Count("pk"))
    )


def static_ip_use() -> dict[str, int]:
    """Count static IPs: free (on no server), on a server without association, associated, and in flight.

    A create takes a free static IP as its server's address (`holder`) without OctoPerf associating
    it: that one is not free for the operator, though OctoPerf may still associate it elsewhere.
    """
    active = Association.objects.filter(static_ip=OuterRef("pk"), status__in=Association.ACTIVE)
    unassociated = Q(status=StaticIP.Status.ALLOCATED) & ~Q(Exists(active))
    on_a_server = Q(holder__isnull=False) & ~Q(holder__status=Instance.Status.TERMINATED)
    return StaticIP.objects.exclude(status=StaticIP.Status.RELEASED).aggregate(
        free=Count("pk", filter=unassociated & ~on_a_server),
        on_a_server=Count("pk", filter=unassociated & on_a_server),
        associated=Count("pk", filter=Q(Exists(active))),
        in_flight=Count("pk", filter=Q(status__in=[StaticIP.Status.ALLOCATING, StaticIP.Status.RELEASING])),
    )


def hourly_spend() -> Spend:
    """Price what exists now: servers, static IPs, and the servers' own IPv4s (billed too)."""
    try:
        prices = hetzner.hourly_prices()  # cached for an hour by the gateway
    except HetznerError as exc:
        return Spend(error=exc.message)
    spend = Spend(currency=prices.currency, vat=prices.vat)
    servers = (
        Instance.objects.filter(status__in=_BILLED)
        .order_by()
        .values_list("server_type", "location")
        .annotate(n=Count("pk"))
    )
    for server_type, location, count in servers:
        price = prices.server(server_type, location)
        if price is None:
            spend.unpriced.append(f"{count} × {server_type} in {location}")
        else:
            spend.servers += price * count
    # A server created with, or moved onto, a static IP has no IPv4 of its own (the static IP bills).
    own_ipv4s = (
        Instance.objects.filter(status__in=_BILLED, own_ipv4=True)
        .order_by()
        .values_list("location")
        .annotate(n=Count("pk"))
    )
    static = (
        StaticIP.objects.exclude(status=StaticIP.Status.RELEASED)
        .order_by()
        .values_list("location")
        .annotate(n=Count("pk"))
    )
    for location, count in [*own_ipv4s, *static]:
        price = prices.primary_ipv4.get(location)
        if price is None:
            spend.unpriced.append(f"{count} × IPv4 in {location}")
        else:
            spend.ipv4s += price * count
    return spend


@dataclass
class Budget:
    name: str
    limit: Decimal
    spent: Decimal
    meaning: str

    @property
    def left(self) -> Decimal:
        return self.limit - self.spent

    @property
    def percent_used(self) -> int:
        return round(100 * self.spent / self.limit) if self.limit else 100


def budgets() -> dict:
    """Return each budget in euros that is set, what it has spent and what is left (or why unknown)."""
    limits = [
        ("MAX_HOURLY_SPEND_EUR", settings.MAX_HOURLY_SPEND_EUR, "per hour now"),
        ("DAILY_BUDGET_EUR", settings.DAILY_BUDGET_EUR, "today (UTC), to midnight"),
        ("MONTHLY_BUDGET_EUR", settings.MONTHLY_BUDGET_EUR, "this month, to its end"),
    ]
    if all(limit is None for _, limit, _ in limits):
        return {"set": False}
    try:
        prices = hetzner.hourly_prices()
    except HetznerError as exc:
        return {"set": True, "error": exc.message}
    spent = costing.spend(prices)
    figures = {"MAX_HOURLY_SPEND_EUR": spent.per_hour, "DAILY_BUDGET_EUR": spent.day, "MONTHLY_BUDGET_EUR": spent.month}
    return {
        "set": True,
        "currency": spent.currency,
        "vat": prices.vat,
        "rows": [
            Budget(name=name, limit=limit, spent=figures[name], meaning=meaning)
            for name, limit, meaning in limits
            if limit is not None
        ],
    }


def rate_budget() -> dict | None:
    """Return Hetzner's rate budget as every process of the deployment shares it (octoprovider.hetzner.budget)."""
    shared = budget.snapshot()
    if shared is not None:
        shared["percent"] = round(100 * shared["remaining"] / shared["limit"]) if shared["limit"] else 0
    return shared


def last_errors(*, kinds: set[str]) -> list[LastError]:
    """Return the rows of the given kinds whose last Hetzner operation failed, most recently updated first.

    An instance whose delete succeeded after failed attempts is left out: its last error is history.
    """
    rows = []
    for model, kind in ((Instance, "instance"), (StaticIP, "static IP"), (Association, "association")):
        if kind not in kinds:
            continue
        opts = model._meta
        rows_with_errors = model.objects.exclude(last_error="")
        if model is Instance:
            # A delete Hetzner took in the end (the row terminated after it) ends the story its errors told.
            rows_with_errors = rows_with_errors.exclude(
                status=Instance.Status.TERMINATED, delete_requested_at__isnull=False
            )
        for pk, status, error, at in rows_with_errors.order_by("-updated_at").values_list(
            "pk", "status", "last_error", "updated_at"
        )[:_LAST_ERRORS]:
            url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk])
            rows.append(LastError(kind=kind, pk=pk, admin_url=url, status=status, error=error, at=at))
    return sorted(rows, key=lambda row: row.at, reverse=True)[:_LAST_ERRORS]


def visible_to(user) -> dict[str, bool]:
    """Say which figures `user` may see: each needs the view permission of the rows it sums up.

    The admin lets any staff user in; one without permissions must not learn the fleet, what it
    costs, nor the reconciler's errors (they name instances and Hetzner's answers).
    """
    instances = user.has_perm("instances.view_instance")
    static_ips = user.has_perm("staticips.view_staticip")
    return {
        "instances": instances,
        "static_ips": static_ips,
        "spend": instances and static_ips,
        "reconciler": instances,
    }


def figures(*, user) -> dict:
    """Return what the dashboard shows `user`; figures the user may not see are not even computed."""
    show = visible_to(user)
    kinds = {
        kind
        for kind, perm in (
            ("instance", "instances.view_instance"),
            ("static IP", "staticips.view_staticip"),
            ("association", "staticips.view_association"),
        )
        if user.has_perm(perm)
    }
    return {
        "show": show,
        "instances_by_status": instances_by_status() if show["instances"] else [],
        "instances_by_location": instances_by_location() if show["instances"] else [],
        "static_ips": static_ip_use() if show["static_ips"] else {},
        "spend": hourly_spend() if show["spend"] else None,
        "budgets": budgets() if show["spend"] else None,
        "rate_budget": rate_budget() if show["reconciler"] else None,
        "reconciler_runs": list(ReconcilerRun.objects.all()) if show["reconciler"] else [],
        "last_errors": last_errors(kinds=kinds),
        "sandbox": hetzner.is_sandbox(),
    }
