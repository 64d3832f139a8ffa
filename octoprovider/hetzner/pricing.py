"""Hetzner's hourly prices, read from `/pricing` and cached."""

from dataclasses import dataclass
from decimal import Decimal

from django.core.cache import cache

from octoprovider.hetzner.connection import client
from octoprovider.hetzner.errors import translated


@dataclass(frozen=True)
class Prices:
    """Hetzner's hourly prices, VAT included, as `/pricing` gives them."""

    currency: str
    server_types: dict[tuple[str, str], Decimal]  # (server type, location) -> per hour
    primary_ipv4: dict[str, Decimal]  # location -> per hour

    def server(self, server_type: str, location: str) -> Decimal | None:
        return self.server_types.get((server_type, location))


def hourly_prices() -> Prices:
    """Return Hetzner's price list, cached for an hour (it changes a few times a year)."""
    prices = cache.get("octoprovider:pricing")
    if prices is None:
        with translated("read prices", refresh=True):
            pricing = client().request(method="GET", url="/pricing")["pricing"]
        prices = Prices(
            currency=pricing.get("currency", "EUR"),
            server_types={
                (server_type["name"], price["location"]): Decimal(price["price_hourly"]["gross"])
                for server_type in pricing.get("server_types", [])
                for price in server_type.get("prices", [])
            },
            primary_ipv4={
                price["location"]: Decimal(price["price_hourly"]["gross"])
                for entry in pricing.get("primary_ips", []) if entry.get("type") == "ipv4"
                for price in entry.get("prices", [])
            },
        )
        cache.set("octoprovider:pricing", prices, 3600)
    return prices
