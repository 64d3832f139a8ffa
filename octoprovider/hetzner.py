"""The Hetzner gateway: the only module that imports hcloud.

It builds the client (endpoint, token, timeout, our application name, short retries), translates
hcloud's errors into `octoprovider.exceptions`, and returns plain records so that nothing above it
depends on hcloud's types. Every call goes through the shared rate budget (`octoprovider.budget`):
refreshes wait below the reserve kept for mutations, and nothing is sent that Hetzner would refuse
with 429. With no token (DEBUG only) it talks to the simulated cloud in
`octoprovider.sandbox` through a requests transport adapter: the unchanged hcloud library drives it.
"""

import contextlib
import logging
import random
import threading
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import requests
from django.conf import settings
from django.core.cache import cache
from hcloud import APIException, Client
from hcloud.firewalls import Firewall
from hcloud.images import Image
from hcloud.locations import Location
from hcloud.primary_ips import BoundPrimaryIP
from hcloud.primary_ips import PrimaryIP as HcloudPrimaryIP
from hcloud.server_types import ServerType
from hcloud.servers import BoundServer
from hcloud.servers import Server as HcloudServer
from hcloud.ssh_keys import SSHKey

from octoprovider import __version__, budget, requestlog
from octoprovider.exceptions import (
    HetznerConflict,
    HetznerError,
    HetznerLocked,
    HetznerNotFound,
    HetznerRejected,
    HetznerTimeout,
    HetznerUnavailable,
)

logger = logging.getLogger(__name__)

SANDBOX_ENDPOINT = "https://sandbox.hetzner.invalid/v1"

LABEL_MANAGED_BY = "managed-by"
LABEL_DEPLOYMENT = "octoprovider-deployment"
LABEL_ID = "octoprovider-id"
MANAGED_BY = "octoprovider"


def ownership_labels(our_id: str) -> dict[str, str]:
    """Label a resource as ours: without both of the first two, a resource is never touched."""
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_DEPLOYMENT: settings.OCTOPROVIDER_DEPLOYMENT,
        LABEL_ID: our_id,
    }


def managed_selector(*, ids: list[str] | None = None) -> str:
    """Select this deployment's resources, or only those with the given ids of ours."""
    selector = f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_DEPLOYMENT}={settings.OCTOPROVIDER_DEPLOYMENT}"
    if ids is not None:
        selector += f",{LABEL_ID} in ({','.join(ids)})"
    return selector


def is_ours(labels: dict[str, str]) -> bool:
    return (
        labels.get(LABEL_MANAGED_BY) == MANAGED_BY
        and labels.get(LABEL_DEPLOYMENT) == settings.OCTOPROVIDER_DEPLOYMENT
    )


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


# --- the client ------------------------------------------------------------------------------------

_local = threading.local()
_sandbox_override = None
_generation = 0


def use_sandbox(cloud) -> None:
    """Route every Hetzner call of this process to `cloud` (a sandbox); None restores the default."""
    global _sandbox_override, _generation
    _sandbox_override = cloud
    _generation += 1
    _firewall_ids.clear()


def is_sandbox() -> bool:
    return _sandbox_override is not None or settings.HETZNER_SANDBOX


def _retry_interval(retries: int) -> float:
    backoff = settings.HCLOUD_RETRY_BACKOFF * (2**retries)
    return random.uniform(backoff / 2, backoff) if backoff else 0.0


def _build_client() -> Client:
    sandbox = _sandbox_override
    if sandbox is None and settings.HETZNER_SANDBOX:
        from octoprovider.sandbox import FileBackedSandbox

        sandbox = FileBackedSandbox(settings.HCLOUD_SANDBOX_FILE)
    client = Client(
        token=settings.HCLOUD_TOKEN or "sandbox",
        api_endpoint=SANDBOX_ENDPOINT if sandbox is not None else settings.HCLOUD_ENDPOINT,
        application_name="octoprovider",
        application_version=__version__,
        timeout=settings.HCLOUD_TIMEOUT,
    )
    # hcloud's retry knobs are not constructor arguments; its defaults (5 tries, up to 60 s each)
    # would hold OctoPerf's HTTP call for minutes. We prefer a quick 503 with Retry-After.
    client._client._retry_max_retries = settings.HCLOUD_RETRIES
    client._client._retry_interval_func = _retry_interval
    requestlog.instrument_hetzner_session(client._client._session)  # logs and metrics of every call
    client._client._session.hooks["response"].append(budget.observe)  # the rate budget all processes share
    from octoprovider import audit

    audit.instrument_hetzner_session(client._client._session)  # the audit log of every mutation
    if sandbox is not None:
        from octoprovider.sandbox import SandboxAdapter

        client._client._session.mount(SANDBOX_ENDPOINT.rsplit("/v1", 1)[0], SandboxAdapter(sandbox))
    return client


def client() -> Client:
    """Return this thread's hcloud client (requests sessions are not shared across threads)."""
    if getattr(_local, "generation", None) != _generation:
        _local.client = _build_client()
        _local.generation = _generation
    return _local.client


# --- errors ----------------------------------------------------------------------------------------

_UNAVAILABLE = {
    "rate_limit_exceeded": ("Hetzner's API rate limit is exhausted; try again shortly.", 60),
    "unavailable": ("Hetzner's API is unavailable.", 30),
    "maintenance": ("Hetzner's API is in maintenance.", 60),
    "timeout": ("Hetzner's API timed out.", 15),
    "bad_gateway": ("Hetzner's API answered bad gateway.", 15),
    "resource_unavailable": ("Hetzner has no capacity for this server type in this location right now.", 300),
    "placement_error": ("Hetzner could not place the server right now.", 120),
    "resource_limit_exceeded": ("The Hetzner project's resource quota is reached; ask Hetzner to raise it.", 600),
    "unauthorized": ("Hetzner rejected HCLOUD_TOKEN (unauthorized): the operator must fix the Hetzner token.", 300),
    "token_readonly": ("HCLOUD_TOKEN is read-only: the operator must configure a read & write Hetzner token.", 300),
    "forbidden": ("Hetzner refused HCLOUD_TOKEN (forbidden): the operator must check the Hetzner token.", 300),
}
_CONFLICT = {"uniqueness_error", "conflict", "server_not_stopped", "must_be_unassigned", "protected"}


@contextlib.contextmanager
def _translated(what: str, *, refresh: bool = False):
    """Ask the rate budget, then turn hcloud's and requests' exceptions into ours, naming what we were doing.

    `refresh` marks calls that only keep the database fresh (listings): they wait while the budget
    is below the reserve kept for mutations.
    """
    budget.admit(refresh=refresh, what=what)
    try:
        yield
    except APIException as exc:
        code = exc.code if isinstance(exc.code, str) else str(exc.code)
        logger.warning("Hetzner %s failed: %s (%s)", what, exc.message, code)
        if code in _UNAVAILABLE:
            message, retry_after = _UNAVAILABLE[code]
            raise HetznerUnavailable(
                f"{message} ({what}: {exc.message})", retry_after=retry_after,
                code=f"hetzner_{code}", hetzner_code=code,
            ) from exc
        if code.isdigit() and int(code) >= 500:
            raise HetznerTimeout(f"Hetzner answered HTTP {code} ({what}).", retry_after=15,
                                 hetzner_code=code) from exc
        if code == "not_found":
            raise HetznerNotFound(f"{what}: not found at Hetzner.", hetzner_code=code) from exc
        if code == "locked":
            raise HetznerLocked(f"{what}: another action is running on it.", hetzner_code=code) from exc
        if code in _CONFLICT:
            raise HetznerConflict(f"{what}: {exc.message}", hetzner_code=code) from exc
        if code in ("invalid_input", "json_error", "invalid_server_type"):
            raise HetznerRejected(f"{what}: {exc.message}", hetzner_code=code) from exc
        raise HetznerError(f"{what}: Hetzner answered {code}: {exc.message}", hetzner_code=code) from exc
    except requests.Timeout as exc:
        logger.warning("Hetzner %s timed out", what)
        raise HetznerTimeout(f"Hetzner did not answer in time ({what}).", retry_after=15,
                             hetzner_code="timeout") from exc
    except requests.RequestException as exc:
        logger.warning("Hetzner %s failed: %s", what, type(exc).__name__)
        raise HetznerTimeout(f"Hetzner could not be reached ({what}).", retry_after=15,
                             hetzner_code="connection") from exc


# Hetzner answered these before doing anything: a create that met one of them created nothing.
# Anything else (an outage, a 5xx, a timeout) may have come after the effect.
_REFUSALS = {
    "invalid_input", "json_error", "invalid_server_type", "uniqueness_error", "rate_limit_exceeded",
    "resource_unavailable", "resource_limit_exceeded", "placement_error", "unauthorized", "forbidden",
    "token_readonly", "locked", "conflict", "server_not_stopped", "must_be_unassigned", "configuration",
}


def refused_without_effect(exc: HetznerError) -> bool:
    """Tell whether Hetzner certainly did nothing for the request that raised `exc`."""
    return exc.hetzner_code in _REFUSALS


# --- servers ---------------------------------------------------------------------------------------

_firewall_ids: dict[str, int] = {}


def _firewalls(names: list[str]) -> list[Firewall]:
    """Resolve firewall names to ids (Hetzner's create takes ids only), once per process."""
    firewalls = []
    for name in names:
        if name not in _firewall_ids:
            with _translated(f"look up firewall {name}"):
                found = client().firewalls.get_by_name(name)
            if found is None:
                raise HetznerUnavailable(
                    f"HCLOUD_FIREWALLS names a firewall that does not exist in the Hetzner project: {name}",
                    code="hetzner_configuration", retry_after=300, hetzner_code="configuration",
                )
            _firewall_ids[name] = found.id
        firewalls.append(Firewall(id=_firewall_ids[name]))
    return firewalls


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
) -> Server:
    """Create a server and return it without waiting for it to boot.

    hcloud retries a timed-out POST; when the first try did create the server, the retry answers
    `uniqueness_error`. Names are deterministic, so the server found by that name is ours.
    """
    kwargs = dict(
        name=name,
        server_type=ServerType(name=server_type),
        image=Image(name=image),
        location=Location(name=location),
        user_data=user_data,
        labels=labels,
        ssh_keys=[SSHKey(name=key) for key in ssh_keys] or None,
        firewalls=_firewalls(firewalls) or None,
    )
    try:
        with _translated(f"create server {name}"):
            response = client().servers.create(**kwargs)
    except HetznerConflict as exc:
        if exc.hetzner_code != "uniqueness_error":
            raise
        existing = find_server(name=name)
        if existing is None or existing.labels.get(LABEL_ID) != labels.get(LABEL_ID):
            raise
        logger.info("Hetzner create of %s was retried; found the server the first try created", name)
        return existing
    return _server(response.server)


def server_type_orderable(name: str, location: str) -> bool:
    """Tell whether Hetzner still sells a server type in a location (not deprecated, available there).

    Hetzner's catalogue changes rarely: the answer is cached for an hour, so creates cost no extra
    call. When Hetzner cannot be asked, assume yes and let the create itself tell.
    """
    key = f"octoprovider:server-type:{name}:{location}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    try:
        with _translated(f"look up server type {name}", refresh=True):  # optional: skipped below the reserve
            found = client().server_types.get_by_name(name)
    except HetznerError:
        return True
    orderable = False
    if found is not None:
        for entry in found.locations or []:
            if entry.location and entry.location.name == location:
                orderable = bool(entry.available) and entry.deprecation is None
    cache.set(key, orderable, 3600)
    return orderable


def find_server(*, name: str) -> Server | None:
    with _translated(f"look up server {name}"):
        found = client().servers.get_by_name(name)
    return _server(found) if found is not None else None


def _all_pages(what: str, get_list, **filters) -> tuple[list, int]:
    """Follow Hetzner's pagination (50 a page, its maximum); return every item and the requests it took."""
    items, page, calls = [], 1, 0
    while page:
        with _translated(what, refresh=True):
            result = get_list(**filters, page=page, per_page=50)
        calls += 1
        items.extend(result[0])  # hcloud answers a named tuple: the page's items, then meta
        page = result.meta.pagination.next_page if result.meta and result.meta.pagination else None
    return items, calls


def list_servers(*, label_selector: str, statuses: list[str] | None = None) -> list[Server]:
    """List every server matching the selector (and one of `statuses`), following pagination (50 a page)."""
    return list_servers_counted(label_selector=label_selector, statuses=statuses)[0]


def list_servers_counted(*, label_selector: str, statuses: list[str] | None = None) -> tuple[list[Server], int]:
    """List like `list_servers`, and say how many requests it took."""
    bound, calls = _all_pages(
        "list servers", client().servers.get_list, label_selector=label_selector, status=statuses or None
    )
    return [_server(server) for server in bound], calls


def count_servers(*, label_selector: str) -> int:
    """Count the servers matching the selector in one request (a page of one, and its total)."""
    with _translated("count servers", refresh=True):
        result = client().servers.get_list(label_selector=label_selector, page=1, per_page=1)
    if result.meta and result.meta.pagination and result.meta.pagination.total_entries is not None:
        return result.meta.pagination.total_entries
    return len(result.servers)


def reboot_server(server_id: int) -> int:
    """Reboot (ACPI) a server; return the action id."""
    with _translated(f"reboot server {server_id}"):
        action = client().servers.reboot(HcloudServer(id=server_id))
    return action.id


def delete_server(server_id: int) -> int | None:
    """Delete a server; return the action id, or None when it was already gone."""
    try:
        with _translated(f"delete server {server_id}"):
            action = client().servers.delete(HcloudServer(id=server_id))
    except HetznerNotFound:
        return None
    return action.id


def power_off(server_id: int) -> int:
    """Cut a server's power (`poweroff`, not `shutdown`, whose action ends before the server is off)."""
    with _translated(f"power off server {server_id}"):
        return client().servers.power_off(HcloudServer(id=server_id)).id


def power_on(server_id: int) -> int:
    with _translated(f"power on server {server_id}"):
        return client().servers.power_on(HcloudServer(id=server_id)).id


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
        with _translated("read prices", refresh=True):
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


# --- Primary IPs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrimaryIP:
    """A Hetzner Primary IP as the gateway reports it."""

    id: int
    name: str
    ip: str
    location: str
    assignee_id: int | None
    auto_delete: bool
    labels: dict[str, str] = field(default_factory=dict)
    created: datetime | None = None

    @property
    def our_id(self) -> str | None:
        return self.labels.get(LABEL_ID) if is_ours(self.labels) else None


def _primary_ip(bound: BoundPrimaryIP) -> PrimaryIP:
    return PrimaryIP(
        id=bound.id,
        name=bound.name,
        ip=bound.ip,
        location=bound.location.name if bound.location else "",
        assignee_id=bound.assignee_id,
        auto_delete=bool(bound.auto_delete),
        labels=dict(bound.labels or {}),
        created=bound.created,
    )


def create_primary_ip(
    *, name: str, labels: dict[str, str], location: str | None = None,
    assignee_id: int | None = None, auto_delete: bool = False,
) -> PrimaryIP:
    """Create a Primary IPv4, in a location or assigned to a (powered-off) server.

    As with servers, a create retried by hcloud after a lost answer hears `uniqueness_error`: the
    Primary IP under our deterministic name is the one the first try created.
    """
    try:
        with _translated(f"create primary IP {name}"):
            response = client().primary_ips.create(
                type="ipv4",
                name=name,
                location=Location(name=location) if location else None,
                assignee_type="server" if assignee_id else None,
                assignee_id=assignee_id,
                auto_delete=auto_delete,
                labels=labels,
            )
    except HetznerConflict as exc:
        if exc.hetzner_code != "uniqueness_error":
            raise
        existing = find_primary_ip(name=name)
        if existing is None or existing.labels.get(LABEL_ID) != labels.get(LABEL_ID):
            raise
        return existing
    return _primary_ip(response.primary_ip)


def find_primary_ip(*, name: str) -> PrimaryIP | None:
    with _translated(f"look up primary IP {name}"):
        found = client().primary_ips.get_by_name(name)
    return _primary_ip(found) if found is not None else None


def list_primary_ips(*, label_selector: str) -> list[PrimaryIP]:
    """List every Primary IP matching the selector, following pagination."""
    bound, _ = _all_pages("list primary IPs", client().primary_ips.get_list, label_selector=label_selector)
    return [_primary_ip(ip) for ip in bound]


def label_primary_ip(ip_id: int, labels: dict[str, str]) -> None:
    with _translated(f"label primary IP {ip_id}"):
        client().primary_ips.update(HcloudPrimaryIP(id=ip_id), labels=labels)


def assign_primary_ip(ip_id: int, server_id: int) -> int:
    """Assign a Primary IP to a server, which must be off (`server_not_stopped` otherwise)."""
    with _translated(f"assign primary IP {ip_id} to server {server_id}"):
        return client().primary_ips.assign(HcloudPrimaryIP(id=ip_id), assignee_id=server_id).id


def unassign_primary_ip(ip_id: int) -> int:
    """Unassign a Primary IP; its server must be off."""
    with _translated(f"unassign primary IP {ip_id}"):
        return client().primary_ips.unassign(HcloudPrimaryIP(id=ip_id)).id


def delete_primary_ip(ip_id: int) -> bool:
    """Delete a Primary IP; False when it was already gone. It must be unassigned (`must_be_unassigned`)."""
    try:
        with _translated(f"delete primary IP {ip_id}"):
            client().primary_ips.delete(HcloudPrimaryIP(id=ip_id))
    except HetznerNotFound:
        return False
    return True


# --- the rate budget, for the operators' dashboard ---------------------------------------------------

# Where each process kept Hetzner's latest rate-limit headers before the budget was shared through the
# database (octoprovider.budget); nothing is written there any more.
RATE_BUDGET_CACHE_KEY = "octoprovider:hetzner-rate-budget"


def rate_budget() -> dict | None:
    """Return Hetzner's rate budget as every process shares it: `remaining` (estimated now), `limit`, `at` (ISO)."""
    shared = budget.snapshot()
    if shared is None:
        return None
    return {"remaining": shared["remaining"], "limit": shared["limit"], "at": shared["at"].isoformat()}
