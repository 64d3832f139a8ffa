"""What the simulated Hetzner project can order: locations, server types, images, prices."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

VAT_RATE = Decimal("19.00")
TRAFFIC_EU = 20 * 1024**4
TRAFFIC_ELSEWHERE = 1 * 1024**4
PRIMARY_IPV4_MONTHLY = Decimal("0.5000")
FLOATING_IPV4_MONTHLY = Decimal("3.0000")
FLOATING_IPV6_MONTHLY = Decimal("3.0000")
IMAGE_PER_GB_MONTH = Decimal("0.0110")
VOLUME_PER_GB_MONTH = Decimal("0.0440")
SERVER_BACKUP_PERCENTAGE = Decimal(20)

LOAD_BALANCER_TYPES: list[tuple[int, str, Decimal]] = [
    (1, "lb11", Decimal("5.39")),
    (2, "lb21", Decimal("16.40")),
    (3, "lb31", Decimal("32.90")),
]

LOCATIONS: list[dict[str, Any]] = [
    {
        "id": 1,
        "name": "fsn1",
        "description": "Falkenstein DC Park 1",
        "country": "DE",
        "city": "Falkenstein",
        "latitude": 50.47612,
        "longitude": 12.370071,
        "network_zone": "eu-central",
    },
    {
        "id": 2,
        "name": "nbg1",
        "description": "Nuremberg DC Park 1",
        "country": "DE",
        "city": "Nuremberg",
        "latitude": 49.452102,
        "longitude": 11.076665,
        "network_zone": "eu-central",
    },
    {
        "id": 3,
        "name": "hel1",
        "description": "Helsinki DC Park 1",
        "country": "FI",
        "city": "Helsinki",
        "latitude": 60.169855,
        "longitude": 24.938379,
        "network_zone": "eu-central",
    },
    {
        "id": 4,
        "name": "ash",
        "description": "Ashburn, VA",
        "country": "US",
        "city": "Ashburn, VA",
        "latitude": 39.0437,
        "longitude": -77.4875,
        "network_zone": "us-east",
    },
    {
        "id": 5,
        "name": "hil",
        "description": "Hillsboro, OR",
        "country": "US",
        "city": "Hillsboro, OR",
        "latitude": 45.54222,
        "longitude": -122.951924,
        "network_zone": "us-west",
    },
    {
        "id": 6,
        "name": "sin",
        "description": "Singapore",
        "country": "SG",
        "city": "Singapore",
        "latitude": 1.283333,
        "longitude": 103.833333,
        "network_zone": "ap-southeast",
    },
]
LOCATIONS_BY_NAME = {location["name"]: location for location in LOCATIONS}
EU_LOCATIONS = ("fsn1", "nbg1", "hel1")
ALL_LOCATIONS = tuple(LOCATIONS_BY_NAME)
# Outside the EU the same server costs more and includes less traffic.
PRICE_FACTOR = {
    "fsn1": Decimal(1),
    "nbg1": Decimal(1),
    "hel1": Decimal(1),
    "ash": Decimal("1.2"),
    "hil": Decimal("1.2"),
    "sin": Decimal("1.5"),
}

DEPRECATION = {"announced": "2025-10-16T06:00:00+00:00", "unavailable_after": "2026-01-16T06:00:00+00:00"}


@dataclass(frozen=True)
class ServerTypeSpec:
    """One orderable (or formerly orderable) server type."""

    id: int
    name: str
    category: str
    cores: int
    memory: float
    disk: int
    monthly_eur: Decimal
    locations: tuple[str, ...]
    deprecated: bool = False


def _spec(
    id: int,
    name: str,
    category: str,
    cores: int,
    memory: float,
    disk: int,
    monthly: str,
    locations: tuple[str, ...],
    deprecated: bool = False,
) -> ServerTypeSpec:
    return ServerTypeSpec(id, name, category, cores, memory, disk, Decimal(monthly), locations, deprecated)


# Hetzner's catalogue and prices as of 2026-04-01 (its price adjustment of that day: shared-vCPU
# types dearer, CPX most of all; the cx22 generation and cpx11-cpx51 deprecated, no longer orderable).
# Monthly prices are net, for the EU locations; PRICE_FACTOR prices the others. Hourly prices are a
# 625th of the monthly one, as Hetzner's are; a month never bills more than the monthly price.
SERVER_TYPES: list[ServerTypeSpec] = [
    _spec(22, "cpx11", "regular_purpose", 2, 2.0, 40, "4.99", ALL_LOCATIONS, True),
    _spec(23, "cpx21", "regular_purpose", 3, 4.0, 80, "8.99", ALL_LOCATIONS, True),
    _spec(24, "cpx31", "regular_purpose", 4, 8.0, 160, "15.99", ALL_LOCATIONS, True),
    _spec(25, "cpx41", "regular_purpose", 8, 16.0, 240, "29.99", ALL_LOCATIONS, True),
    _spec(26, "cpx51", "regular_purpose", 16, 32.0, 360, "60.99", ALL_LOCATIONS, True),
    _spec(104, "cx22", "cost_optimized", 2, 4.0, 40, "3.79", EU_LOCATIONS, True),
    _spec(105, "cx32", "cost_optimized", 4, 8.0, 80, "6.80", EU_LOCATIONS, True),
    _spec(106, "cx42", "cost_optimized", 8, 16.0, 160, "16.40", EU_LOCATIONS, True),
    _spec(107, "cx52", "cost_optimized", 16, 32.0, 320, "32.40", EU_LOCATIONS, True),
    _spec(114, "cx23", "cost_optimized", 2, 4.0, 40, "3.99", EU_LOCATIONS),
    _spec(115, "cx33", "cost_optimized", 4, 8.0, 80, "6.49", EU_LOCATIONS),
    _spec(116, "cx43", "cost_optimized", 8, 16.0, 160, "12.99", EU_LOCATIONS),
    _spec(117, "cx53", "cost_optimized", 16, 32.0, 320, "22.49", EU_LOCATIONS),
    _spec(118, "cpx22", "regular_purpose", 2, 4.0, 80, "9.49", ALL_LOCATIONS),
    _spec(119, "cpx32", "regular_purpose", 4, 8.0, 160, "16.49", ALL_LOCATIONS),
    _spec(120, "cpx42", "regular_purpose", 8, 16.0, 320, "29.99", ALL_LOCATIONS),
    _spec(121, "cpx52", "regular_purpose", 12, 24.0, 480, "42.99", ALL_LOCATIONS),
]
SERVER_TYPES_BY_NAME = {spec.name: spec for spec in SERVER_TYPES}
SERVER_TYPES_BY_ID = {spec.id: spec for spec in SERVER_TYPES}

IMAGES: list[dict[str, Any]] = [
    {
        "id": 161547269,
        "type": "system",
        "name": "ubuntu-24.04",
        "description": "Ubuntu 24.04",
        "os_flavor": "ubuntu",
        "os_version": "24.04",
        "disk_size": 5,
        "created": "2024-04-25T13:26:27+00:00",
    },
    {
        "id": 114690387,
        "type": "system",
        "name": "debian-12",
        "description": "Debian 12",
        "os_flavor": "debian",
        "os_version": "12",
        "disk_size": 5,
        "created": "2023-06-13T06:00:02+00:00",
    },
    {
        "id": 172055442,
        "type": "app",
        "name": "docker-ce",
        "description": "Docker CE",
        "os_flavor": "ubuntu",
        "os_version": "24.04",
        "disk_size": 5,
        "created": "2024-05-02T08:02:11+00:00",
    },
]
IMAGES_BY_NAME = {image["name"]: image for image in IMAGES}
IMAGES_BY_ID = {image["id"]: image for image in IMAGES}


def money(amount: Decimal) -> dict[str, str]:
    """Render a net amount as Hetzner does: net and gross strings with 10 decimals."""
    gross = amount * (1 + VAT_RATE / 100)
    return {"net": f"{amount:.10f}", "gross": f"{gross:.10f}"}


def server_type_prices(spec: ServerTypeSpec) -> list[dict[str, Any]]:
    """Return the per-location prices of a server type."""
    prices = []
    for location in spec.locations:
        monthly = (spec.monthly_eur * PRICE_FACTOR[location]).quantize(Decimal("0.01"))
        hourly = (monthly / 625).quantize(Decimal("0.0001"))
        prices.append(
            {
                "location": location,
                "price_hourly": money(hourly),
                "price_monthly": money(monthly),
                "included_traffic": TRAFFIC_EU if location in EU_LOCATIONS else TRAFFIC_ELSEWHERE,
                "price_per_tb_traffic": money(Decimal(1)),
            }
        )
    return prices


def _hourly(monthly: Decimal) -> Decimal:
    return (monthly / 625).quantize(Decimal("0.0001"))


def pricing() -> dict[str, Any]:
    """Return ``GET /pricing`` as Hetzner renders it: every section its reference requires."""

    def per_location(monthly: Decimal, *, hourly: bool = True) -> list[dict[str, Any]]:
        return [
            {
                "location": location,
                **({"price_hourly": money(_hourly(monthly))} if hourly else {}),
                "price_monthly": money(monthly),
            }
            for location in ALL_LOCATIONS
        ]

    return {
        "currency": "EUR",
        "vat_rate": f"{VAT_RATE:.2f}",
        "image": {"price_per_gb_month": money(IMAGE_PER_GB_MONTH)},
        "volume": {"price_per_gb_month": money(VOLUME_PER_GB_MONTH)},
        "server_backup": {"percentage": f"{SERVER_BACKUP_PERCENTAGE:.10f}"},
        # Deprecated by Hetzner in favour of floating_ips, still required in every answer.
        "floating_ip": {"price_monthly": money(FLOATING_IPV4_MONTHLY)},
        "floating_ips": [
            {"type": "ipv4", "prices": per_location(FLOATING_IPV4_MONTHLY, hourly=False)},
            {"type": "ipv6", "prices": per_location(FLOATING_IPV6_MONTHLY, hourly=False)},
        ],
        # IPv6 Primary IPs cost nothing; Hetzner still lists them.
        "primary_ips": [
            {"type": "ipv4", "prices": per_location(PRIMARY_IPV4_MONTHLY)},
            {"type": "ipv6", "prices": per_location(Decimal(0))},
        ],
        "load_balancer_types": [
            {
                "id": lb_id,
                "name": name,
                "prices": [
                    {
                        "location": location,
                        "price_hourly": money(_hourly(monthly)),
                        "price_monthly": money(monthly),
                        "included_traffic": TRAFFIC_EU,
                        "price_per_tb_traffic": money(Decimal(1)),
                    }
                    for location in ALL_LOCATIONS
                ],
            }
            for lb_id, name, monthly in LOAD_BALANCER_TYPES
        ],
        "server_types": [
            {"id": spec.id, "name": spec.name, "prices": server_type_prices(spec)} for spec in SERVER_TYPES
        ],
    }


def image_json(image: dict[str, Any]) -> dict[str, Any]:
    """Return an image as the API renders it."""
    return {
        **image,
        "status": "available",
        "image_size": None,
        "created_from": None,
        "bound_to": None,
        "rapid_deploy": True,
        "protection": {"delete": False},
        "deprecated": None,
        "deleted": None,
        "labels": {},
        "architecture": "x86",
    }
