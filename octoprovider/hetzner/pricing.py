"""Hetzner's prices, read from `/pricing` and cached."""

from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache

from octoprovider.core.exceptions import HetznerError
from octoprovider.hetzner.connection import client
from octoprovider.hetzner.errors import translated

_CACHE_KEY = "octoprovider:pricing"
# The last price list read, kept when the hourly copy expires: budgets still hold while /pricing
# cannot be read (prices change a few times a year).
_LAST_KEY = "octoprovider:pricing:last"


@dataclass(frozen=True)
class Prices:
    """Hetzner's prices per hour, with or without VAT, and the monthly caps of hourly billing.

    Hetzner bills every started hour, and never more in a month than the monthly price.
    """

    currency: str
    server_types: dict[tuple[str, str], Decimal]  # (server type, location) -> per hour
    primary_ipv4: dict[str, Decimal]  # location -> per hour
    vat: bool = True
    server_types_monthly: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    primary_ipv4_monthly: dict[str, Decimal] = field(default_factory=dict)

    def server(self, server_type: str, location: str) -> Decimal | None:
        return self.server_types.get((server_type, location))

    def ipv4(self, location: str) -> Decimal | None:
        return self.primary_ipv4.get(location)

    def instance(self, server_type: str, location: str, *, own_ipv4: bool) -> "Price | None":
        """Price one server of `server_type` in `location`, with its own IPv4 if it has one (None: unpriced).

        A server holding one of our static IPs has no IPv4 of its own: the static IP is billed apart.
        """
        server = self.server(server_type, location)
        if server is None:
            return None
        monthly = self.server_types_monthly.get((server_type, location))
        if not own_ipv4:
            return Price(hourly=server, monthly=monthly)
        ipv4_monthly = self.primary_ipv4_monthly.get(location)
        return Price(
            hourly=server + (self.ipv4(location) or Decimal(0)),
            monthly=monthly + ipv4_monthly if monthly is not None and ipv4_monthly is not None else None,
        )


@dataclass(frozen=True)
class Price:
    """What one thing costs per started hour, and at most in a calendar month (None: no monthly cap known)."""

    hourly: Decimal
    monthly: Decimal | None


def _read() -> dict:
    with translated("read prices", refresh=True):
        return client().request(method="GET", url="/pricing")["pricing"]


def hourly_prices(*, vat: bool | None = None) -> Prices:
    """Return Hetzner's price list (with VAT unless `vat` or BUDGETS_INCLUDE_VAT says otherwise).

    Cached for an hour; when Hetzner cannot be asked, the last list read is used.
    """
    vat = settings.BUDGETS_INCLUDE_VAT if vat is None else vat
    pricing = cache.get(_CACHE_KEY)
    if pricing is None:
        try:
            pricing = _read()
        except HetznerError:
            pricing = cache.get(_LAST_KEY)
            if pricing is None:
                raise
        else:
            cache.set(_LAST_KEY, pricing, None)
        cache.set(_CACHE_KEY, pricing, 3600)
    amount = "gross" if vat else "net"
    ipv4 = [
        price
        for entry in pricing.get("primary_ips", [])
        if entry.get("type") == "ipv4"
        for price in entry.get("prices", [])
    ]
    server_prices = [
        (server_type["name"], price)
        for server_type in pricing.get("server_types", [])
        for price in server_type.get("prices", [])
    ]
    return Prices(
        currency=pricing.get("currency", "EUR"),
        vat=vat,
        server_types={(name, p["location"]): Decimal(p["price_hourly"][amount]) for name, p in server_prices},
        primary_ipv4={p["location"]: Decimal(p["price_hourly"][amount]) for p in ipv4},
        server_types_monthly={
            (name, p["location"]): Decimal(p["price_monthly"][amount])
            for name, p in server_prices
            if p.get("price_monthly")
        },
        primary_ipv4_monthly={
            p["location"]: Decimal(p["price_monthly"][amount]) for p in ipv4 if p.get("price_monthly")
        },
    )
