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
resource that moved since is left alone (`LeftAlone`), never ended or deleted on stale news.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Q, QuerySet

from instances import reuse
from instances import services as instance_services
from instances.models import Instance
from octoprovider import hetzner
from octoprovider.core import clock
from octoprovider.core.exceptions import HetznerError, HetznerLocked
from staticips import services as static_ip_services
from staticips.models import Association, StaticIP
from staticips.services import LABEL_ROLE, ROLE_SERVER_IPV4, ROLE_STATIC

logger = logging.getLogger(__name__)

# Seconds between the tries of an action Hetzner refused as `locked` (another action runs on it).
LOCKED_RETRY_INTERVAL = 2.0


class LeftAlone(Exception):
    """A finding's resource changed since it was listed: nothing was done, and nothing failed."""


@dataclass
class Finding:
    """One resource cleanup acts on: what, why, what it costs, and how to stop it."""

    action: str
    what: str
    why: str
    hourly_price: Decimal | None
    act: Callable[[], object]

    def __str__(self) -> str:
        price = f"{self.hourly_price:.4f}/h" if self.hourly_price is not None else "price unknown"
        return f"{self.action} {self.what}: {self.why} ({price})"


def _age(created: datetime | None, now: datetime) -> timedelta:
    return now - created if created else timedelta(0)


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
    # Whatever the listings below lack was there or not when they were asked for, not later: a row
    # recorded after this moment may be missing from them without being gone.
    listed_at = now = clock.now()
    deadline = now + wait
    prices = _prices()
    servers = [s for s in hetzner.list_servers(label_selector=hetzner.managed_selector()) if hetzner.is_ours(s.labels)]
    ips = [
        ip for ip in hetzner.list_primary_ips(label_selector=hetzner.managed_selector()) if hetzner.is_ours(ip.labels)
    ]
    instances = {row.pk: row for row in Instance.objects.filter(pk__in=[s.our_id for s in servers])}
    # A swap moves an ipId to another Primary IP, whose label still names the ipId it was allocated
    # for: rows are matched by Hetzner id, and by label only while they have none.
    static_rows = StaticIP.objects.filter(Q(hetzner_id__in=[ip.id for ip in ips]) | Q(pk__in=[ip.our_id for ip in ips]))
    static_by_hetzner_id = {row.hetzner_id: row for row in static_rows if row.hetzner_id is not None}
    static_by_label = {row.pk: row for row in static_rows if row.hetzner_id is None}

    def server_price(server: hetzner.Server) -> Decimal | None:
        return prices.server(server.server_type, server.location) if prices else None

    def ip_price(location: str) -> Decimal | None:
        return prices.primary_ipv4.get(location) if prices else None

    findings = []
    parked = reuse.held_server_ids()
    for server in servers:
        if server.status == "deleting" or server.id in parked:
            continue  # a parked server is no orphan: its deadline deletes it (below)
        row = instances.get(server.our_id)
        what = f"server {server.id} ({server.name}, {server.server_type} in {server.location})"
        if row is None and _age(server.created, now) > grace:
            findings.append(
                Finding("delete", what, "unknown to the database", server_price(server), _delete_unknown_server(server))
            )
        elif row is not None and row.status == Instance.Status.TERMINATED:
            findings.append(
                Finding(
                    "delete",
                    what,
                    f"its instance {row.pk} is terminated",
                    server_price(server),
                    lambda server=server: hetzner.delete_server(server.id),
                )
            )
        elif row is not None and row.status == Instance.Status.DELETING:
            # Hetzner has not taken the delete yet (locked, an outage): finish it rather than wait for the loop.
            findings.append(
                Finding(
                    "delete",
                    what,
                    f"its instance {row.pk} is being deleted",
                    server_price(server),
                    _waiting_out_locked(
                        deadline,
                        lambda row=row, server=server: instance_services.instance_finish_delete(
                            instance_id=row.pk, hetzner_id=server.id
                        ),
                    ),
                )
            )

    for ip in ips:
        role = ip.labels.get(LABEL_ROLE)
        what = f"primary IP {ip.id} ({ip.ip} in {ip.location})"
        if role == ROLE_STATIC:
            row = static_by_hetzner_id.get(ip.id) or static_by_label.get(ip.our_id)
            if row is None and _age(ip.created, now) > grace:
                why = "unknown to the database"
            elif row is not None and row.status == StaticIP.Status.RELEASED:
                why = f"its static IP {row.pk} is released"
            elif row is not None and row.status == StaticIP.Status.RELEASING:
                findings.append(
                    Finding(
                        "delete",
                        what,
                        f"its static IP {row.pk} is being released",
                        ip_price(ip.location),
                        _waiting_out_locked(
                            deadline,
                            lambda row=row, ip=ip: static_ip_services.static_ip_finish_release(
                                static_ip_id=row.pk, hetzner_id=ip.id, assignee_id=ip.assignee_id
                            ),
                        ),
                    )
                )
                continue
            else:
                continue
            findings.append(Finding("delete", what, why, ip_price(ip.location), _delete_primary_ip(ip)))
        elif role == ROLE_SERVER_IPV4 and ip.assignee_id is None and _age(ip.created, now) > grace:
            if _needed_by_an_association(ip.id):
                continue  # a static-IP move took it off its server, and puts it back or deletes it itself
            findings.append(
                Finding(
                    "delete",
                    what,
                    "a server's own IPv4, left unassigned",
                    ip_price(ip.location),
                    _delete_unneeded_server_ipv4(ip),
                )
            )

    if settings.INSTANCE_MAX_LIFETIME:
        limit = timedelta(hours=settings.INSTANCE_MAX_LIFETIME)
        for row in Instance.objects.filter(status__in=Instance.LIVE, created_at__lt=now - limit):
            findings.append(
                Finding(
                    "terminate",
                    f"instance {row.pk}",
                    f"older than INSTANCE_MAX_LIFETIME ({settings.INSTANCE_MAX_LIFETIME} h)",
                    prices.server(row.server_type, row.location) if prices else None,
                    lambda row=row: instance_services.instance_delete(instance_id=row.pk),
                )
            )

    seen_servers = {server.our_id for server in servers}
    vanished = _seen_before(Instance.objects.exclude(status=Instance.Status.TERMINATED), listed_at)
    for row in vanished.filter(hetzner_id__isnull=False).exclude(pk__in=seen_servers):
        findings.append(
            Finding(
                "end",
                f"instance {row.pk}",
                f"its Hetzner server {row.hetzner_id} is gone",
                Decimal(0),
                _end_vanished_instance(row),
            )
        )
    gone_ips = _seen_before(StaticIP.objects.exclude(status=StaticIP.Status.RELEASED), listed_at)
    for row in gone_ips.filter(hetzner_id__isnull=False).exclude(hetzner_id__in=[ip.id for ip in ips]):
        findings.append(
            Finding(
                "end",
                f"static IP {row.pk}",
                f"its Primary IP {row.hetzner_id} is gone",
                Decimal(0),
                _end_vanished_static_ip(row),
            )
        )
    findings.extend(_unclaimed_instances(prices))
    findings.extend(_parked_past_deadline(prices))
    return findings


def _parked_past_deadline(prices: hetzner.Prices | None) -> list[Finding]:
    """The parked servers past their deadline: a stopped reconciler costs at most cleanup's interval."""
    return [
        Finding(
            "delete",
            f"parked server {row.hetzner_id} ({row.server_type} in {row.location})",
            f"parked past its deadline {row.deadline:%H:%M:%S} (its next billed hour is near)",
            prices.server(row.server_type, row.location) if prices else None,
            _delete_parked(row),
        )
        for row in reuse.parked_servers_due()
    ]


def _delete_parked(row) -> Callable[[], object]:
    def act():
        if not reuse.parked_server_delete(row=row, old_status=row.status, because=reuse.Because.DEADLINE):
            raise LeftAlone(f"parked server {row.hetzner_id} was taken or deleted since the listing")

    return act


def _unclaimed_instances(prices: hetzner.Prices | None) -> list[Finding]:
    """The instances OctoPerf never called about within UNCLAIMED_INSTANCE_GRACE: their create's answer was lost."""
    findings = []
    for row in instance_services.instances_unclaimed():
        price = prices.instance(row.server_type, row.location, own_ipv4=row.own_ipv4) if prices else None
        findings.append(
            Finding(
                "terminate",
                f"instance {row.pk}",
                f"never claimed: OctoPerf never called about it in UNCLAIMED_INSTANCE_GRACE "
                f"({settings.UNCLAIMED_INSTANCE_GRACE} s)",
                price.hourly if price else None,
                lambda row=row: instance_services.instance_end_unclaimed(instance_id=row.pk),
            )
        )
    return findings


def _waiting_out_locked(deadline: datetime, act: Callable[[], object]) -> Callable[[], object]:
    """Try `act` again while Hetzner answers `locked` (a boot, a reboot: seconds), until `deadline`."""

    def waiting():
        while True:
            try:
                return act()
            except HetznerLocked:
                if clock.now() + timedelta(seconds=LOCKED_RETRY_INTERVAL) > deadline:
                    raise
                clock.sleep(LOCKED_RETRY_INTERVAL)

    return waiting


def _seen_before(rows: QuerySet, listed_at: datetime) -> QuerySet:
    """Keep the rows last observed at Hetzner before the listing was asked for.

    Only their absence from the listing means anything: a create or an allocate recorded while the
    listing was on its way is missing from it, yet alive. A row given its Hetzner id but never
    observed (a create that met a delete on its way) says nothing of when: the reconciler's next
    pass observes it, and the next cleanup decides.
    """
    return rows.filter(observed_at__lt=listed_at)


def _end_vanished_instance(row: Instance) -> Callable[[], object]:
    def act():
        # Ask Hetzner again, now, for this one server: the listing is seconds old, and ending a row
        # whose server lives would hand a running agent to the reconciler's zombie sweep.
        if hetzner.list_servers(label_selector=hetzner.managed_selector(ids=[row.pk])):
            raise LeftAlone(f"Hetzner lists a server of instance {row.pk} again")
        if not instance_services.instance_mark_terminated(
            instance_id=row.pk, reason="server gone (cleanup)", as_seen=row
        ):
            raise LeftAlone(f"instance {row.pk} changed since the listing")

    return act


def _end_vanished_static_ip(row: StaticIP) -> Callable[[], object]:
    def act():
        if not static_ip_services.static_ip_mark_released(static_ip_id=row.pk, reason="IP gone (cleanup)", as_seen=row):
            raise LeftAlone(f"static IP {row.pk} changed since the listing")

    return act


def _delete_unknown_server(server: hetzner.Server) -> Callable[[], object]:
    def act():
        # Look again: a row may have been written since the listing.
        if Instance.objects.filter(pk=server.our_id).exists():
            raise LeftAlone(f"instance {server.our_id} exists now")
        return hetzner.delete_server(server.id)

    return act


def _needed_by_an_association(ip_id: int) -> bool:
    return Association.objects.filter(replaced_hetzner_ip_id=ip_id).exists()


def _delete_unneeded_server_ipv4(ip: hetzner.PrimaryIP) -> Callable[[], object]:
    delete = _delete_primary_ip(ip)

    def act():
        # Look again: a static-IP move may have taken it off its server since the listing.
        if _needed_by_an_association(ip.id):
            raise LeftAlone(f"primary IP {ip.id} is being moved by a static-IP association")
        return delete()

    return act


def _delete_primary_ip(ip: hetzner.PrimaryIP) -> Callable[[], object]:
    def act():
        if ip.assignee_id is not None:
            # Still reported assigned, e.g. right after its server was deleted.
            hetzner.unassign_primary_ip(ip.id)
        return hetzner.delete_primary_ip(ip.id)

    return act


def audit_events_to_prune():
    """Return the audit events older than AUDIT_RETENTION_DAYS (none when it is 0)."""
    from octoprovider.operations.models import AuditEvent

    if not settings.AUDIT_RETENTION_DAYS:
        return AuditEvent.objects.none()
    return AuditEvent.objects.filter(at__lt=clock.now() - timedelta(days=settings.AUDIT_RETENTION_DAYS))
