"""Find what leaks money, and stop it: the work behind `manage.py cleanup`.

Everything at Hetzner is billed by the hour, powered off or unassigned. Cleanup deletes managed
servers and Primary IPs that the database does not know (once older than a grace period: a younger
one may be a create in flight), servers and IPs left behind by terminated or released rows,
finishes the deletes and releases still pending (waiting out `locked`), terminates instances past
INSTANCE_MAX_LIFETIME, and ends rows whose Hetzner resource vanished. It only ever
sees resources carrying both our ownership labels and this deployment's: the label selector of every
listing says so, and each finding checks it again.

A listing shows what Hetzner held when it was asked for, and OctoPerf keeps creating meanwhile (a
listing can take seconds). So a row is only ever found "vanished" when it was observed before the
listing was asked for, and each finding's `act` is a compare-and-set on what was seen: a row or a
resource that moved since is left alone, never ended or deleted on stale news.

There is one function per kind of finding below, each saying when that kind is safe to act on (its
guard). Every `act` returns an `Outcome` (see `octoprovider.core.reports`): it never raises for what
Hetzner answers, nor for a race it loses.
"""

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial

from django.conf import settings
from django.db.models import Q, QuerySet

from instances import reuse
from instances import services as instance_services
from instances.models import Instance
from octoprovider import hetzner
from octoprovider.core import clock
from octoprovider.core.exceptions import HetznerError
from octoprovider.core.reports import Kind, Outcome
from staticips import services as static_ip_services
from staticips.models import Association, StaticIP
from staticips.services import LABEL_ROLE, ROLE_SERVER_IPV4, ROLE_STATIC

logger = logging.getLogger(__name__)

# Seconds between the tries of an action Hetzner refused as `locked` (another action runs on it).
LOCKED_RETRY_INTERVAL = 2.0


@dataclass
class Finding:
    """One resource cleanup acts on: what, why, what it costs, and how to stop it."""

    action: str
    what: str
    why: str
    hourly_price: Decimal | None
    act: Callable[[], Outcome]

    def __str__(self) -> str:
        price = f"{self.hourly_price:.4f}/h" if self.hourly_price is not None else "price unknown"
        return f"{self.action} {self.what}: {self.why} ({price})"


@dataclass
class _Listing:
    """Our servers and Primary IPs as Hetzner listed them at `listed_at`, with the rows they belong to.

    Whatever the listings lack was there or not when they were asked for, not later: a row recorded
    after `listed_at` may be missing from them without being gone.
    """

    listed_at: datetime
    prices: hetzner.Prices | None
    servers: list[hetzner.Server]
    ips: list[hetzner.PrimaryIP]
    instances: dict[str, Instance]
    static_ips: list[StaticIP]
    parked: set[int]  # the servers parkings hold (instances/reuse.py): ours, billed until their deadline

    @classmethod
    def take(cls) -> "_Listing":
        listed_at = clock.now()
        prices = _prices()
        selector = hetzner.managed_selector()
        servers = [s for s in hetzner.list_servers(label_selector=selector) if hetzner.is_ours(s.labels)]
        ips = [ip for ip in hetzner.list_primary_ips(label_selector=selector) if hetzner.is_ours(ip.labels)]
        instances = {row.pk: row for row in Instance.objects.filter(pk__in=[s.our_id for s in servers])}
        static_ips = list(
            StaticIP.objects.filter(Q(hetzner_id__in=[ip.id for ip in ips]) | Q(pk__in=[ip.our_id for ip in ips]))
        )
        # Read last: a server parked since the listing has a terminated row above and is held here.
        parked = reuse.held_server_ids()
        return cls(listed_at, prices, servers, ips, instances, static_ips, parked)

    def older_than(self, created: datetime | None, grace: timedelta) -> bool:
        return (self.listed_at - created if created else timedelta(0)) > grace

    def live_servers(self) -> Iterator[tuple[hetzner.Server, Instance | None, str]]:
        """Yield each server not being deleted already, with its row (None: unknown) and how to name it.

        A parked server is left out: it is no orphan, whatever its row says, and its deadline deletes it
        (`_parked_past_deadline`).
        """
        for server in self.servers:
            if server.status != "deleting" and server.id not in self.parked:
                what = f"server {server.id} ({server.name}, {server.server_type} in {server.location})"
                yield server, self.instances.get(server.our_id), what

    def static_role_ips(self) -> Iterator[tuple[hetzner.PrimaryIP, StaticIP | None, str]]:
        """Yield each static IP's Primary IP, with its row (None: unknown) and how to name it."""
        # A swap moves an ipId to another Primary IP, whose label still names the ipId it was allocated
        # for: rows are matched by Hetzner id, and by label only while they have none.
        by_hetzner_id = {row.hetzner_id: row for row in self.static_ips if row.hetzner_id is not None}
        by_label = {row.pk: row for row in self.static_ips if row.hetzner_id is None}
        for ip in self.ips:
            if ip.labels.get(LABEL_ROLE) == ROLE_STATIC:
                yield ip, by_hetzner_id.get(ip.id) or by_label.get(ip.our_id), _ip_what(ip)

    def server_price(self, server: hetzner.Server) -> Decimal | None:
        return self.prices.server(server.server_type, server.location) if self.prices else None

    def ip_price(self, location: str) -> Decimal | None:
        return self.prices.primary_ipv4.get(location) if self.prices else None


def _ip_what(ip: hetzner.PrimaryIP) -> str:
    return f"primary IP {ip.id} ({ip.ip} in {ip.location})"


def _prices() -> hetzner.Prices | None:
    try:
        return hetzner.hourly_prices()
    except HetznerError as exc:
        logger.warning("No prices from Hetzner (%s); cleanup goes on without them", exc.message)
        return None


def cleanup_findings(*, grace: timedelta, wait: timedelta = timedelta(0)) -> list[Finding]:
    """List what cleanup would do now; nothing is changed until a finding's `act` is called.

    A pending delete or release that Hetzner refuses as `locked` is tried again until `wait` has
    passed (counted from now, for all findings together).
    """
    seen = _Listing.take()
    deadline = seen.listed_at + wait
    return [
        *_unknown_servers(seen, grace),
        *_servers_of_terminated_instances(seen),
        *_deletes_to_finish(seen, deadline),
        *_unknown_or_released_static_ips(seen, grace),
        *_releases_to_finish(seen, deadline),
        *_unassigned_server_ipv4s(seen, grace),
        *_instances_past_their_lifetime(seen),
        *_vanished_instances(seen),
        *_vanished_static_ips(seen),
        *_unclaimed_instances(seen.prices),
        *_parked_past_deadline(seen.prices),
    ]


# --- servers ----------------------------------------------------------------------------------------


def _unknown_servers(seen: _Listing, grace: timedelta) -> Iterator[Finding]:
    """Find the servers no row knows, older than `grace`: delete them.

    Guard: older than `grace` (a younger one may be a create in flight, its row not written yet), and
    still no row when acted on (a row may have been written since the listing).
    """
    for server, row, what in seen.live_servers():
        if row is None and seen.older_than(server.created, grace):
            act = partial(_delete_unknown_server, server)
            yield Finding("delete", what, "unknown to the database", seen.server_price(server), act)


def _delete_unknown_server(server: hetzner.Server) -> Outcome:
    if Instance.objects.filter(pk=server.our_id).exists():
        return Outcome.left_alone(f"instance {server.our_id} exists now")
    return _delete_server(server.id)


def _servers_of_terminated_instances(seen: _Listing) -> Iterator[Finding]:
    """Find the servers alive under a terminated row: delete them.

    Guard: none needed; a terminated row never gets its server back, so its server only bills.
    """
    for server, row, what in seen.live_servers():
        if row is not None and row.status == Instance.Status.TERMINATED:
            why = f"its instance {row.pk} is terminated"
            yield Finding("delete", what, why, seen.server_price(server), partial(_delete_server, server.id))


def _deletes_to_finish(seen: _Listing, deadline: datetime) -> Iterator[Finding]:
    """Find the servers of rows being deleted, whose delete Hetzner has not taken yet (locked, an outage): finish it.

    Guard: the row is still `deleting` when acted on (`instance_finish_delete` checks); `locked` is
    waited out until `deadline`, rather than left to the reconciler's loop.
    """
    for server, row, what in seen.live_servers():
        if row is not None and row.status == Instance.Status.DELETING:
            finish = partial(instance_services.instance_finish_delete, instance_id=row.pk, hetzner_id=server.id)
            act = partial(_waiting_out_locked, deadline, finish)
            yield Finding("delete", what, f"its instance {row.pk} is being deleted", seen.server_price(server), act)


def _delete_server(server_id: int) -> Outcome:
    try:
        hetzner.delete_server(server_id)
    except HetznerError as exc:
        return Outcome.failed(exc)
    return Outcome.done()


# --- Primary IPs ------------------------------------------------------------------------------------


def _unknown_or_released_static_ips(seen: _Listing, grace: timedelta) -> Iterator[Finding]:
    """Find static IPs' Primary IPs no row knows (older than `grace`), or whose row is released: delete them.

    Guard: an unknown one is older than `grace` (an allocate's request never lasts that long); a
    released row never gets its Primary IP back.
    """
    for ip, row, what in seen.static_role_ips():
        if row is None and seen.older_than(ip.created, grace):
            why = "unknown to the database"
        elif row is not None and row.status == StaticIP.Status.RELEASED:
            why = f"its static IP {row.pk} is released"
        else:
            continue
        yield Finding("delete", what, why, seen.ip_price(ip.location), partial(_delete_primary_ip, ip))


def _releases_to_finish(seen: _Listing, deadline: datetime) -> Iterator[Finding]:
    """Find the Primary IPs of rows being released, whose release Hetzner has not taken yet: finish it.

    Guard: the row is still `releasing`, and no server is being moved off the IP, when acted on
    (`static_ip_finish_release` checks); `locked` is waited out until `deadline`.
    """
    for ip, row, what in seen.static_role_ips():
        if row is not None and row.status == StaticIP.Status.RELEASING:
            finish = partial(
                static_ip_services.static_ip_finish_release,
                static_ip_id=row.pk,
                hetzner_id=ip.id,
                assignee_id=ip.assignee_id,
            )
            act = partial(_waiting_out_locked, deadline, finish)
            yield Finding("delete", what, f"its static IP {row.pk} is being released", seen.ip_price(ip.location), act)


def _unassigned_server_ipv4s(seen: _Listing, grace: timedelta) -> Iterator[Finding]:
    """Find servers' own IPv4s left on no server, older than `grace`: delete them.

    Guard: no static-IP move needs it, at listing and again when acted on: a move takes it off its
    server, and puts it back or deletes it itself.
    """
    for ip in seen.ips:
        if (
            ip.labels.get(LABEL_ROLE) == ROLE_SERVER_IPV4
            and ip.assignee_id is None
            and seen.older_than(ip.created, grace)
            and not _needed_by_an_association(ip.id)
        ):
            why = "a server's own IPv4, left unassigned"
            act = partial(_delete_unneeded_server_ipv4, ip)
            yield Finding("delete", _ip_what(ip), why, seen.ip_price(ip.location), act)


def _needed_by_an_association(ip_id: int) -> bool:
    return Association.objects.filter(replaced_hetzner_ip_id=ip_id).exists()


def _delete_unneeded_server_ipv4(ip: hetzner.PrimaryIP) -> Outcome:
    if _needed_by_an_association(ip.id):
        return Outcome.left_alone(f"primary IP {ip.id} is being moved by a static-IP association")
    return _delete_primary_ip(ip)


def _delete_primary_ip(ip: hetzner.PrimaryIP) -> Outcome:
    try:
        if ip.assignee_id is not None:
            # Still reported assigned, e.g. right after its server was deleted.
            hetzner.unassign_primary_ip(ip.id)
        hetzner.delete_primary_ip(ip.id)
    except HetznerError as exc:
        return Outcome.failed(exc)
    return Outcome.done()


# --- rows ---------------------------------------------------------------------------------------------


def _instances_past_their_lifetime(seen: _Listing) -> Iterator[Finding]:
    """Find the live instances older than INSTANCE_MAX_LIFETIME (none when it is 0): terminate them.

    Guard: none needed; a delete is idempotent, and the row's age only grows.
    """
    if not settings.INSTANCE_MAX_LIFETIME:
        return
    limit = timedelta(hours=settings.INSTANCE_MAX_LIFETIME)
    why = f"older than INSTANCE_MAX_LIFETIME ({settings.INSTANCE_MAX_LIFETIME} h)"
    for row in Instance.objects.filter(status__in=Instance.LIVE, created_at__lt=seen.listed_at - limit):
        price = seen.prices.server(row.server_type, row.location) if seen.prices else None
        yield Finding("terminate", f"instance {row.pk}", why, price, partial(_terminate, row.pk))


def _terminate(instance_id: str) -> Outcome:
    instance_services.instance_delete(instance_id=instance_id)  # the reconciler finishes what Hetzner holds back
    return Outcome.done()


def _vanished_instances(seen: _Listing) -> Iterator[Finding]:
    """Find the live instances whose server the listing lacks: end their rows.

    Guard: the row was observed before the listing was asked for (`_seen_before`), Hetzner still
    lists no server of it when acted on, and the row is still as seen (compare-and-set).
    """
    listed = {server.our_id for server in seen.servers}
    rows = _seen_before(Instance.objects.exclude(status=Instance.Status.TERMINATED), seen.listed_at)
    for row in rows.filter(hetzner_id__isnull=False).exclude(pk__in=listed):
        why = f"its Hetzner server {row.hetzner_id} is gone"
        yield Finding("end", f"instance {row.pk}", why, Decimal(0), partial(_end_vanished_instance, row))


def _end_vanished_instance(row: Instance) -> Outcome:
    # Ask Hetzner again, now, for this one server: the listing is seconds old, and ending a row
    # whose server lives would hand a running agent to the reconciler's zombie sweep.
    try:
        if hetzner.list_servers(label_selector=hetzner.managed_selector(ids=[row.pk])):
            return Outcome.left_alone(f"Hetzner lists a server of instance {row.pk} again")
    except HetznerError as exc:
        return Outcome.failed(exc)
    if not instance_services.instance_mark_terminated(instance_id=row.pk, reason="server gone (cleanup)", as_seen=row):
        return Outcome.left_alone(f"instance {row.pk} changed since the listing")
    return Outcome.done()


def _vanished_static_ips(seen: _Listing) -> Iterator[Finding]:
    """Find the live static IPs whose Primary IP the listing lacks: end their rows.

    Guard: the row was observed before the listing was asked for, and is still as seen when acted on
    (compare-and-set: a swap since gave it another Primary IP).
    """
    listed = [ip.id for ip in seen.ips]
    rows = _seen_before(StaticIP.objects.exclude(status=StaticIP.Status.RELEASED), seen.listed_at)
    for row in rows.filter(hetzner_id__isnull=False).exclude(hetzner_id__in=listed):
        why = f"its Primary IP {row.hetzner_id} is gone"
        yield Finding("end", f"static IP {row.pk}", why, Decimal(0), partial(_end_vanished_static_ip, row))


def _end_vanished_static_ip(row: StaticIP) -> Outcome:
    if not static_ip_services.static_ip_mark_released(static_ip_id=row.pk, reason="IP gone (cleanup)", as_seen=row):
        return Outcome.left_alone(f"static IP {row.pk} changed since the listing")
    return Outcome.done()


def _seen_before(rows: QuerySet, listed_at: datetime) -> QuerySet:
    """Keep the rows last observed at Hetzner before the listing was asked for.

    Only their absence from the listing means anything: a create or an allocate recorded while the
    listing was on its way is missing from it, yet alive. A row given its Hetzner id but never
    observed (a create that met a delete on its way) says nothing of when: the reconciler's next
    pass observes it, and the next cleanup decides.
    """
    return rows.filter(observed_at__lt=listed_at)


def _unclaimed_instances(prices: hetzner.Prices | None) -> Iterator[Finding]:
    """Find the instances OctoPerf never claimed within UNCLAIMED_INSTANCE_GRACE (their create's answer was lost).

    Guard: still unclaimed when acted on (`instance_end_unclaimed` compares and sets on the claim).
    """
    why = (
        f"never claimed: OctoPerf never called about it in UNCLAIMED_INSTANCE_GRACE "
        f"({settings.UNCLAIMED_INSTANCE_GRACE} s)"
    )
    for row in instance_services.instances_unclaimed():
        price = prices.instance(row.server_type, row.location, own_ipv4=row.own_ipv4) if prices else None
        act = partial(_end_unclaimed, row.pk)
        yield Finding("terminate", f"instance {row.pk}", why, price.hourly if price else None, act)


def _parked_past_deadline(prices: hetzner.Prices | None) -> Iterator[Finding]:
    """Find the parked servers past their deadline: delete them before Hetzner bills another hour.

    Guard: still parked when acted on (`parked_server_delete` compares and sets: a create may have
    taken it since). The reconciler deletes them too: a stopped one costs at most cleanup's interval.
    """
    for row in reuse.parked_servers_due():
        what = f"parked server {row.hetzner_id} ({row.server_type} in {row.location})"
        why = f"parked past its deadline {row.deadline:%H:%M:%S} (its next billed hour is near)"
        price = prices.server(row.server_type, row.location) if prices else None
        yield Finding("delete", what, why, price, partial(_delete_parked, row))


def _delete_parked(row) -> Outcome:
    if not reuse.parked_server_delete(row=row, old_status=row.status, because=reuse.Because.DEADLINE):
        return Outcome.left_alone(f"parked server {row.hetzner_id} was taken or deleted since the listing")
    return Outcome.done()


def _end_unclaimed(instance_id: str) -> Outcome:
    if not instance_services.instance_end_unclaimed(instance_id=instance_id):
        return Outcome.left_alone(f"instance {instance_id} was claimed or moved since the listing")
    return Outcome.done()


def _waiting_out_locked(deadline: datetime, act: Callable[[], Outcome]) -> Outcome:
    """Run `act` again while Hetzner holds it back as `locked` (a boot, a reboot: seconds), until `deadline`.

    Still owed at `deadline`, it failed: the operator hears of it (the reconciler sends it again).
    """
    while True:
        outcome = act()
        if outcome.kind is not Kind.OWED:
            return outcome
        if clock.now() + timedelta(seconds=LOCKED_RETRY_INTERVAL) > deadline:
            return Outcome.failed(outcome.error)
        clock.sleep(LOCKED_RETRY_INTERVAL)


def audit_events_to_prune():
    """Return the audit events older than AUDIT_RETENTION_DAYS (none when it is 0)."""
    from octoprovider.operations.models import AuditEvent

    if not settings.AUDIT_RETENTION_DAYS:
        return AuditEvent.objects.none()
    return AuditEvent.objects.filter(at__lt=clock.now() - timedelta(days=settings.AUDIT_RETENTION_DAYS))
