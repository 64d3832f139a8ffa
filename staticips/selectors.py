"""Read-only questions about static IPs, in the one vocabulary the services, the reconciler and the console share.

Each word means this, and only this, everywhere in `staticips` (code, comments, admin labels):

holder
    The instance whose server has the static IP's address as its public IPv4 (`StaticIP.holder`): given at
    create, moved there by an association, corrected by the sweep from Hetzner's assignee. A terminated
    holder holds nothing any more (Hetzner let go of the address when it deleted the server); the field
    keeps naming it so that the address longest off a server is given out first.
held
    Having a holder that is not terminated. *On no server* is its opposite.
held by a live server
    Held, and the holder is live (`Instance.LIVE`: not deleting, not terminated): taking the address away
    would cut a working agent off, so the server is moved off it first (a power cycle) or the ipId swaps.
    A holder being deleted still holds the address, and lets go of it by itself.
in use
    In an active association that OctoPerf made (associating, associated or dissociating). OctoPerf can
    neither associate it with another instance nor release it before dissociating (409 `static_ip_in_use`).
free
    Allocated and not in use: what OctoPerf may associate. A free static IP may be held (a server got it at
    create): OctoPerf never learns which address stands behind an ipId.
bound
    In an active association of any kind: OctoPerf's, or an internal one moving it off its holder. The row's
    next Hetzner steps belong to that move, so a bound static IP is never swapped, never given to a new
    server, and released only once the move has ended.
spare
    Allocated, with its Primary IP known, on no server and not bound: what a new server is given at create,
    and what a swap exchanges a held address for.
"""

from datetime import timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef, Q, QuerySet

from instances.models import Instance
from octoprovider.core import clock
from staticips.models import Association, StaticIP


def _bound() -> Exists:
    return Exists(Association.objects.filter(static_ip=OuterRef("pk"), status__in=Association.ACTIVE))


def _in_use() -> Exists:
    return Exists(Association.objects.filter(static_ip=OuterRef("pk"), status__in=Association.ACTIVE, internal=False))


def _on_no_server() -> Q:
    return Q(holder__isnull=True) | Q(holder__status=Instance.Status.TERMINATED)


def static_ips_free() -> QuerySet[StaticIP]:
    """Return the free static IPs: allocated and not in use (held ones included)."""
    return StaticIP.objects.filter(status=StaticIP.Status.ALLOCATED).exclude(_in_use())


def static_ips_in_use() -> QuerySet[StaticIP]:
    """Return the static IPs in use: in an active association that OctoPerf made."""
    return StaticIP.objects.filter(_in_use())


def static_ips_spare() -> QuerySet[StaticIP]:
    """Return the spare static IPs: allocated, with a Primary IP, on no server and not bound."""
    return (
        StaticIP.objects.filter(status=StaticIP.Status.ALLOCATED, hetzner_id__isnull=False)
        .filter(_on_no_server())
        .exclude(_bound())
    )


def static_ip_unbound_held_by(*, instance_id: str, other_than: str) -> StaticIP | None:
    """Return the allocated static IP, other than `other_than`, that the instance holds and nothing binds.

    Associating `other_than` with that instance swaps the two ipIds, with no Hetzner call. Unbound implies
    free. A server has one IPv4: there is at most one, unless `holder` lags behind Hetzner.
    """
    return (
        StaticIP.objects.filter(status=StaticIP.Status.ALLOCATED, holder_id=instance_id)
        .exclude(pk=other_than)
        .exclude(_bound())
        .first()
    )


def static_ip_is_bound(static_ip: StaticIP) -> bool:
    """Tell whether an active association, OctoPerf's or internal, binds the static IP."""
    return Association.objects.filter(static_ip=static_ip, status__in=Association.ACTIVE).exists()


def static_ip_held_by_live_server(static_ip: StaticIP) -> bool:
    """Tell whether the static IP's holder is live (deleting and terminated holders let go by themselves)."""
    return (
        static_ip.holder_id is not None
        and Instance.objects.filter(pk=static_ip.holder_id, status__in=Instance.LIVE).exists()
    )


def static_ip_use(*, static_ip_id: str) -> Association | None:
    """Return the association that puts the static IP in use (OctoPerf's, not over), if any."""
    return Association.objects.filter(static_ip_id=static_ip_id, status__in=Association.ACTIVE, internal=False).first()


def instance_static_ip_use(*, instance_id: str) -> Association | None:
    """Return the association that puts a static IP in use on the instance, if any (a server has one IPv4)."""
    return Association.objects.filter(instance_id=instance_id, status__in=Association.ACTIVE, internal=False).first()


def location_has_static_ips(location: str) -> bool:
    """Tell whether static IPs exist in a location (its instances must then stay there to take them)."""
    return StaticIP.objects.filter(location=location).exclude(status=StaticIP.Status.RELEASED).exists()


def static_ip_allow_list(*, location: str = "") -> dict[str, list[StaticIP]]:
    """Return the static IPs with an address that still exist, by location: what users put in allow-lists.

    OctoPerf's agents leave from these addresses (any of them: an ipId is only a handle on one). Those
    being released are kept until Hetzner has deleted them: a release waits for a server still using
    the address to get its own IPv4 back, and an agent cut off by a firewall meanwhile fails its test.
    Each row's `on_instance` is its holder while it is held, else None (a terminated holder let go of it).
    """
    rows = StaticIP.objects.filter(
        status__in=[StaticIP.Status.ALLOCATED, StaticIP.Status.RELEASING], address__isnull=False
    ).select_related("holder")
    if location:
        rows = rows.filter(location=location)
    by_location: dict[str, list[StaticIP]] = {}
    for row in rows.order_by("location", "address"):
        row.on_instance = row.holder_id if row.holder_id and row.holder.status != Instance.Status.TERMINATED else None
        by_location.setdefault(row.location, []).append(row)
    return by_location


def static_ips_never_used() -> QuerySet[StaticIP]:
    """Return the allocated static IPs OctoPerf never associated, allocated over UNCLAIMED_INSTANCE_GRACE ago.

    The likely first IP of an allocate OctoPerf retried because its answer came too late: OctoPerf
    never learned its ipId, so it never associates or releases it, and it is billed until an
    operator releases it. Not released automatically: an operator may allocate ahead of the tests
    (the console and `manage.py costs` show them; release them from the static IP list).
    """
    by_octoperf = Association.objects.filter(static_ip=OuterRef("pk"), internal=False)
    cutoff = clock.now() - timedelta(seconds=settings.UNCLAIMED_INSTANCE_GRACE)
    return StaticIP.objects.filter(status=StaticIP.Status.ALLOCATED, created_at__lt=cutoff).exclude(Exists(by_octoperf))
