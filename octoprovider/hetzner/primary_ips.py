"""Primary IPv4s: the static IPs, and the servers' own addresses while a static IP replaces them."""

from dataclasses import dataclass, field
from datetime import datetime

from hcloud.locations import Location
from hcloud.primary_ips import BoundPrimaryIP
from hcloud.primary_ips import PrimaryIP as HcloudPrimaryIP

from octoprovider.core.exceptions import HetznerConflict, HetznerNotFound
from octoprovider.hetzner.connection import client
from octoprovider.hetzner.errors import all_pages, bad_answer, reading, translated
from octoprovider.hetzner.labels import LABEL_ID, is_ours


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
    if not isinstance(bound.id, int):
        raise bad_answer("read a primary IP", KeyError("id"))  # nothing could be done with it
    with reading(f"read primary IP {bound.id}"):
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
    *,
    name: str,
    labels: dict[str, str],
    location: str | None = None,
    assignee_id: int | None = None,
    auto_delete: bool = False,
) -> PrimaryIP:
    """Create a Primary IPv4, in a location or assigned to a (powered-off) server.

    As with servers, a create retried by hcloud after a lost answer hears `uniqueness_error`: the
    Primary IP under our deterministic name is the one the first try created.
    """
    try:
        with translated(f"create primary IP {name}"):
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
    with translated(f"look up primary IP {name}"):
        found = client().primary_ips.get_by_name(name)
    return _primary_ip(found) if found is not None else None


def list_primary_ips(*, label_selector: str) -> list[PrimaryIP]:
    """List every Primary IP matching the selector, following pagination."""
    bound, _ = all_pages("list primary IPs", client().primary_ips.get_list, label_selector=label_selector)
    return [_primary_ip(ip) for ip in bound]


def label_primary_ip(ip_id: int, labels: dict[str, str]) -> None:
    with translated(f"label primary IP {ip_id}"):
        client().primary_ips.update(HcloudPrimaryIP(id=ip_id), labels=labels)


def assign_primary_ip(ip_id: int, server_id: int) -> int:
    """Assign a Primary IP to a server, which must be off (`server_not_stopped` otherwise)."""
    with translated(f"assign primary IP {ip_id} to server {server_id}"):
        return client().primary_ips.assign(HcloudPrimaryIP(id=ip_id), assignee_id=server_id).id


def unassign_primary_ip(ip_id: int) -> int:
    """Unassign a Primary IP; its server must be off."""
    with translated(f"unassign primary IP {ip_id}"):
        return client().primary_ips.unassign(HcloudPrimaryIP(id=ip_id)).id


def delete_primary_ip(ip_id: int) -> bool:
    """Delete a Primary IP; False when it was already gone. It must be unassigned (`must_be_unassigned`)."""
    try:
        with translated(f"delete primary IP {ip_id}"):
            client().primary_ips.delete(HcloudPrimaryIP(id=ip_id))
    except HetznerNotFound:
        return False
    return True
