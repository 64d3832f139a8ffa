"""What server reuse did: the parked-servers panel (read from the database) and the metrics (counted as it goes)."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Count
from prometheus_client import Counter

from instances.models import ParkedServer
from octoprovider import hetzner
from octoprovider.core.exceptions import HetznerError
from octoprovider.operations import costing


@dataclass(frozen=True)
class ReuseFigures:
    """Parked servers now, and what reuse has done since `since` (everything when None)."""

    parked: list[ParkedServer]  # held now (parking, parked, taking, deleting), nearest deadline first
    parks: int
    takes: int
    deadline_deletes: int
    saved_eur: Decimal | None  # None: Hetzner's prices could not be read


def reuse_figures(*, since: datetime | None = None) -> ReuseFigures:
    rows = ParkedServer.objects.all() if since is None else ParkedServer.objects.filter(parked_at__gte=since)
    by_status = dict(rows.order_by().values_list("status").annotate(count=Count("pk")))
    return ReuseFigures(
        parked=list(ParkedServer.objects.filter(status__in=ParkedServer.HOLDING).order_by("deadline")),
        parks=sum(by_status.values()),
        takes=by_status.get(ParkedServer.Status.TAKEN, 0),
        deadline_deletes=rows.filter(end_reason=ParkedServer.EndReason.DEADLINE).count(),
        saved_eur=_saved(since),
    )


def _saved(since: datetime | None) -> Decimal | None:
    try:
        prices = hetzner.hourly_prices()  # cached for an hour
    except HetznerError:
        return None
    return costing.saved_by_reuse(prices=prices, since=since)


REUSE_EVENTS = Counter(
    "octoprovider_reuse_events_total",
    "Server reuse (SERVER_REUSE): servers parked instead of deleted (park), creates that took a parked server "
    "(take), parked servers deleted at their deadline with nobody taking them (deadline_delete).",
    ["event"],
)
REUSE_SAVED = Counter(
    "octoprovider_reuse_saved_eur_total",
    "Euros the takes did not pay: per take, the hour of server and IPv4 the parked server had paid already "
    "(at Hetzner's prices; `manage.py costs` has the exact figure per run).",
)


def count_event(sender, *, event: str, row: ParkedServer, **kwargs) -> None:
    """Count a park, a take or a deadline delete (connected to `instances.reuse.parked_server_event`)."""
    REUSE_EVENTS.labels(event=event).inc()
    if event != "take":
        return
    try:
        price = hetzner.hourly_prices().instance(row.server_type, row.location, own_ipv4=True)  # cached
    except HetznerError:
        return
    if price is not None:
        REUSE_SAVED.inc(float(price.hourly))
