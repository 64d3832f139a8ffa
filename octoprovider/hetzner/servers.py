"""Servers: create (recognising a create hcloud retried, typing its refusals), list, count, reboot, power, rebuild,
rename, delete."""

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.core.cache import cache
from hcloud.firewalls import Firewall
from hcloud.images import Image
from hcloud.locations import Location
from hcloud.primary_ips import PrimaryIP as HcloudPrimaryIP
from hcloud.server_types import ServerType
from hcloud.servers import BoundServer, ServerCreatePublicNetwork
from hcloud.servers import Server as HcloudServer
from hcloud.ssh_keys import SSHKey

from octoprovider.core.exceptions import (
    ConfigurationError,
    HetznerError,
    HetznerNotFound,
    HetznerRejected,
    HetznerTypeNotOrderable,
)
from octoprovider.hetzner.connection import client, generation
from octoprovider.hetzner.errors import all_pages, bad_answer, primary_ip_refusal, reading, retyped, translated
from octoprovider.hetzner.labels import LABEL_ID, is_ours
from octoprovider.hetzner.project import forget_server_settings, server_settings_problems

logger = logging.getLogger("octoprovider.hetzner")


@dataclass(frozen=True)
class Server:
    """A Hetzner server as the gateway reports it."""

    id: int
    name: str
    status: str
    labels: dict[str, str] = field(default_factory=dict)
    location: str = ""
    server_type: str = ""
    public_ipv4: str | None = None
    public_ipv4_id: int | None = None
    created: datetime | None = None

    @property
    def our_id(self) -> str | None:
        return self.labels.get(LABEL_ID) if is_ours(self.labels) else None


def _server(bound: BoundServer) -> Server:
    if not isinstance(bound.id, int):
        raise bad_answer("read a server", KeyError("id"))  # nothing could be done with it
    with reading(f"read server {bound.id}"):
        ipv4 = bound.public_net.ipv4 if bound.public_net else None
        primary = bound.public_net.primary_ipv4 if bound.public_net else None
        return Server(
            id=bound.id,
            name=bound.name,
            status=bound.status,
            labels=dict(bound.labels or {}),
            location=bound.location.name if bound.location else "",
            server_type=bound.server_type.name if bound.server_type else "",
            public_ipv4=ipv4.ip if ipv4 else None,
            public_ipv4_id=primary.id if primary else None,
            created=bound.created,
        )


# Firewall ids by (client generation, name): a sandbox swapped in by tests has ids of its own.
_firewall_ids: dict[tuple[int, str], int] = {}


def _firewalls(names: list[str]) -> list[Firewall]:
    """Resolve firewall names to ids (Hetzner's create takes ids only), once per process."""
    firewalls = []
    for name in names:
        key = (generation(), name)
        if key not in _firewall_ids:
            with translated(f"look up firewall {name}"):
                found = client().firewalls.get_by_name(name)
            if found is None:
                raise ConfigurationError(
                    f"HCLOUD_FIREWALLS names a firewall that does not exist in the Hetzner project: {name}"
                )
            _firewall_ids[key] = found.id
        firewalls.append(Firewall(id=_firewall_ids[key]))
    return firewalls


def _check_settings(*, image: str, ssh_keys: list[str], firewalls: list[str]) -> None:
    """Raise ConfigurationError when the project lacks an SSH key, firewall or image of the settings."""
    problems = server_settings_problems(image=image, ssh_keys=ssh_keys, firewalls=firewalls)
    if problems:
        raise ConfigurationError("The operator's Hetzner settings are wrong: " + "; ".join(problems) + ".")


def create_server(
    *,
    name: str,
    server_type: str,
    image: str,
    location: str,
    user_data: str,
    labels: dict[str, str],
    ssh_keys: list[str],
    firewalls: list[str],
    public_ipv4_id: int | None = None,
) -> Server:
    """Create a server and return it without waiting for it to boot.

    With `public_ipv4_id`, that (unassigned) Primary IP in the same location becomes its public
    IPv4, and Hetzner makes no IPv4 of its own for it.

    Hetzner's refusals come typed: HetznerPrimaryIPRefused (the IP given), HetznerTypeNotOrderable
    (the type is not sold in the location), HetznerNoCapacity (sold out there), ConfigurationError.
    """
    settings = {"image": image, "ssh_keys": ssh_keys, "firewalls": firewalls}
    _check_settings(**settings)
    request = {
        "name": name,
        "server_type": ServerType(name=server_type),
        "image": Image(name=image),
        "location": Location(name=location),
        "user_data": user_data,
        "labels": labels,
        "ssh_keys": [SSHKey(name=key) for key in ssh_keys] or None,
        "firewalls": _firewalls(firewalls) or None,
    }
    if public_ipv4_id is not None:
        request["public_net"] = ServerCreatePublicNetwork(ipv4=HcloudPrimaryIP(id=public_ipv4_id))
    try:
        with translated(f"create server {name}"):
            response = client().servers.create(**request)
    except HetznerError as exc:
        if exc.hetzner_code == "uniqueness_error" and (earlier := _created_by_an_earlier_try(name, labels)):
            return earlier
        refusal = _create_refusal(exc, server_type, location, ip_given=public_ipv4_id is not None, settings=settings)
        if refusal is exc:
            raise
        raise refusal from exc
    return _server(response.server)


def _created_by_an_earlier_try(name: str, labels: dict[str, str]) -> Server | None:
    """Return the server a first try created, when hcloud retried a create whose answer was lost.

    The retry answers `uniqueness_error`; names are deterministic, so the server found by that name
    is ours if it carries our id.
    """
    existing = find_server(name=name)
    if existing is None or existing.labels.get(LABEL_ID) != labels.get(LABEL_ID):
        return None
    logger.info("Hetzner create of %s was retried; found the server the first try created", name)
    return existing


def _create_refusal(error: HetznerError, server_type: str, location: str, *, ip_given: bool, settings: dict):
    """Type Hetzner's refusal of a create by what it is about: the Primary IP, the settings, the server type."""
    if ip_given and (refused := primary_ip_refusal(error)):
        return refused
    if not isinstance(error, HetznerRejected):
        return error
    # Hetzner answers invalid_input for an SSH key or image deleted since we last looked: that is
    # the operator's to fix, not OctoPerf's, so say so if it is the cause.
    forget_server_settings()
    _check_settings(**settings)
    # A type not sold in the location is an invalid_input that names no field ("unsupported location
    # for server type", `details: {}`): /server_types, asked afresh, says whether that is the cause.
    if _not_orderable(server_type, location):
        return retyped(error, HetznerTypeNotOrderable)
    return error


@dataclass(frozen=True)
class ServerTypeOffer:
    """What Hetzner's /server_types says of one server type: its architecture, where it can be ordered."""

    name: str
    architecture: str
    orderable_in: frozenset[str]  # available now and not deprecated there
    sold_in: frozenset[str]  # listed there at all (perhaps sold out or deprecated)


# Capacity comes and goes within minutes; deprecations are announced months ahead. One listing per
# five minutes (12 requests an hour) keeps "available" fresh without spending the rate budget.
CATALOGUE_SECONDS = 300
_CATALOGUE_KEY = "octoprovider:server-types"


def server_type_offers() -> dict[str, ServerTypeOffer] | None:
    """Return what Hetzner sells, by server type name; None when Hetzner cannot be asked now."""
    offers = cache.get(_CATALOGUE_KEY)
    if offers is not None:
        return offers
    try:
        with translated("list server types", refresh=True):  # optional: skipped below the reserve
            listed = client().server_types.get_all()
    except HetznerError:
        return None
    offers = {}
    for found in listed:
        orderable, sold = set(), set()
        for entry in found.locations or []:
            if entry.location is None:
                continue
            sold.add(entry.location.name)
            if entry.available and entry.deprecation is None:
                orderable.add(entry.location.name)
        offers[found.name] = ServerTypeOffer(
            name=found.name,
            architecture=found.architecture or "x86",
            orderable_in=frozenset(orderable),
            sold_in=frozenset(sold),
        )
    cache.set(_CATALOGUE_KEY, offers, CATALOGUE_SECONDS)
    return offers


def _not_orderable(name: str, location: str) -> bool:
    """Ask Hetzner afresh whether it no longer sells a server type it lists in a location.

    False when Hetzner cannot be asked or does not know the type: nothing says the location is the cause.
    """
    cache.delete(_CATALOGUE_KEY)
    offers = server_type_offers()
    offer = offers.get(name) if offers else None
    return offer is not None and location not in offer.orderable_in


def server_type_orderable(name: str, location: str) -> bool:
    """Tell whether Hetzner sells a server type in a location now (available there, not deprecated).

    When Hetzner cannot be asked, assume yes and let the create itself tell.
    """
    offers = server_type_offers()
    if offers is None:
        return True
    offer = offers.get(name)
    return offer is not None and location in offer.orderable_in


def server_type_architecture(name: str) -> str | None:
    """Return a server type's architecture (x86, arm), or None when unknown."""
    offers = server_type_offers()
    offer = offers.get(name) if offers else None
    return offer.architecture if offer else None


def find_server(*, name: str) -> Server | None:
    with translated(f"look up server {name}"):
        found = client().servers.get_by_name(name)
    return _server(found) if found is not None else None


def list_servers(*, label_selector: str, statuses: list[str] | None = None) -> list[Server]:
    """List every server matching the selector (and one of `statuses`), following pagination (50 a page)."""
    return list_servers_counted(label_selector=label_selector, statuses=statuses)[0]


def list_servers_counted(*, label_selector: str, statuses: list[str] | None = None) -> tuple[list[Server], int]:
    """List like `list_servers`, and say how many requests it took."""
    bound, calls = all_pages(
        "list servers", client().servers.get_list, label_selector=label_selector, status=statuses or None
    )
    return [_server(server) for server in bound], calls


def count_servers(*, label_selector: str | None = None) -> int | None:
    """Count the servers matching the selector (all the project's without one) in one request.

    Return None when Hetzner does not say: its `total_entries` may be null, and the page's length
    (one) says nothing of the fleet. Whoever asked must list the servers to know.
    """
    with translated("count servers", refresh=True):
        result = client().servers.get_list(label_selector=label_selector, page=1, per_page=1)
    if result.meta and result.meta.pagination:
        return result.meta.pagination.total_entries
    return None


def label_server(server_id: int, labels: dict[str, str]) -> None:
    """Replace a server's labels."""
    with translated(f"label server {server_id}"):
        client().servers.update(HcloudServer(id=server_id), labels=labels)


def reboot_server(server_id: int) -> int:
    """Reboot (ACPI) a server; return the action id."""
    with translated(f"reboot server {server_id}"):
        action = client().servers.reboot(HcloudServer(id=server_id))
    return action.id


def delete_server(server_id: int) -> int | None:
    """Delete a server; return the action id, or None when it was already gone."""
    try:
        with translated(f"delete server {server_id}"):
            action = client().servers.delete(HcloudServer(id=server_id))
    except HetznerNotFound:
        return None
    return action.id


def power_off(server_id: int) -> int:
    """Cut a server's power (`poweroff`, not `shutdown`, whose action ends before the server is off)."""
    with translated(f"power off server {server_id}"):
        return client().servers.power_off(HcloudServer(id=server_id)).id


def power_on(server_id: int) -> int:
    with translated(f"power on server {server_id}"):
        return client().servers.power_on(HcloudServer(id=server_id)).id


def rebuild_server(server_id: int, *, image: str, user_data: str) -> int:
    """Rewrite a server's disk from `image` and boot it with `user_data`; return the action id.

    Hetzner powers the server off first and keeps its id, name, labels and IPs. `user_data` goes
    to Hetzner and nowhere else.
    """
    with translated(f"rebuild server {server_id}"):
        return (
            client().servers.rebuild(HcloudServer(id=server_id), image=Image(name=image), user_data=user_data).action.id
        )


def rename_server(server_id: int, *, name: str, labels: dict[str, str]) -> None:
    """Give a server a new name and replace its labels, in one request."""
    with translated(f"rename server {server_id}"):
        client().servers.update(HcloudServer(id=server_id), name=name, labels=labels)
