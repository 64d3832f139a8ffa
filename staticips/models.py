import secrets

from django.db import models
from django.db.models import Q

from instances.models import Instance
from octoprovider.core import clock


def new_static_ip_id() -> str:
    return "ip-" + secrets.token_hex(9)[:17]


def new_association_id() -> str:
    return "assoc-" + secrets.token_hex(9)[:17]


class StaticIP(models.Model):
    """A static IP OctoPerf allocated: a Hetzner Primary IPv4 (auto_delete off) in the region's location.

    This model is the one place that maps an `ipId` to its Hetzner Primary IP.
    """

    class Status(models.TextChoices):
        ALLOCATING = "allocating", "allocating (Hetzner create not confirmed yet)"
        ALLOCATED = "allocated"
        RELEASING = "releasing", "releasing (delete requested)"
        RELEASED = "released"

    LIVE = [Status.ALLOCATING, Status.ALLOCATED]

    id = models.CharField(primary_key=True, max_length=32, default=new_static_ip_id, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ALLOCATING, db_index=True)
    region = models.CharField(max_length=64, help_text="The region as OctoPerf named it.")
    zone = models.CharField(max_length=64, blank=True)
    location = models.CharField(max_length=16)

    hetzner_id = models.BigIntegerField(null=True, blank=True, unique=True)
    address = models.GenericIPAddressField(null=True, blank=True, protocol="IPv4")
    assignee_hetzner_id = models.BigIntegerField(
        null=True, blank=True, help_text="The Hetzner server it is assigned to, as last seen."
    )
    holder = models.ForeignKey(
        Instance,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="held_static_ips",
        help_text="The instance whose server has this address as its public IPv4 (given at create, or moved "
        "there). OctoPerf may still consider it free: only an association tells OctoPerf's view.",
    )

    holder_since = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When octoprovider last wrote `holder`: a Primary IP listing asked for before then may not show it.",
    )

    created_at = models.DateTimeField(default=clock.now, editable=False, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    observed_at = models.DateTimeField(null=True, blank=True)
    release_requested_at = models.DateTimeField(null=True, blank=True)
    released_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "static IP"

    def __str__(self) -> str:
        return self.id

    @property
    def name(self) -> str:
        """The Primary IP's name at allocation. A swap may later give this ipId another Primary IP."""
        return f"octoperf-{self.id}"


class AddressChange(models.Model):
    """Which Primary IP (and address) an ipId stood for from a given moment: the allow-list's history.

    OctoPerf never learns an address; an ipId is a handle on one of the allocated addresses, and a
    swap (associate or release of an IP that a server already holds) exchanges what two ipIds stand for.
    """

    static_ip = models.ForeignKey(StaticIP, on_delete=models.CASCADE, related_name="address_changes")
    at = models.DateTimeField(default=clock.now, db_index=True)
    address = models.GenericIPAddressField(null=True, blank=True, protocol="IPv4")
    hetzner_id = models.BigIntegerField(null=True, blank=True)
    swapped_with = models.ForeignKey(
        StaticIP,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The static IP that stood for this address before.",
    )
    reason = models.CharField(max_length=200)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.static_ip_id} = {self.address} since {self.at:%Y-%m-%d %H:%M:%S}"


class Association(models.Model):
    """The link between a static IP and an instance, and the Hetzner work that makes it true.

    Assigning a Primary IP needs the server off, so associating and dissociating are multi-step
    operations. The reconciler drives them from what it observes at Hetzner; `step` names the last
    mutation sent (`step_done` once its call returned), and `version` makes each step a
    compare-and-set, so two reconcilers never send the same mutation twice.
    """

    class Status(models.TextChoices):
        ASSOCIATING = "associating"
        ASSOCIATED = "associated"
        DISSOCIATING = "dissociating"
        ENDED = "ended"

    ACTIVE = [Status.ASSOCIATING, Status.ASSOCIATED, Status.DISSOCIATING]
    IN_FLIGHT = [Status.ASSOCIATING, Status.DISSOCIATING]

    id = models.CharField(primary_key=True, max_length=40, default=new_association_id, editable=False)
    static_ip = models.ForeignKey(StaticIP, on_delete=models.PROTECT, related_name="associations")
    instance = models.ForeignKey(Instance, on_delete=models.PROTECT, related_name="associations")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ASSOCIATING, db_index=True)

    step = models.CharField(max_length=32, blank=True, help_text="The last Hetzner mutation sent.")
    step_at = models.DateTimeField(null=True, blank=True)
    step_done = models.BooleanField(default=True, help_text="Whether the call of the last step has returned.")
    version = models.PositiveIntegerField(default=0)
    replaced_hetzner_ip_id = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="The server's own IPv4 that the static IP replaces; deleted once unassigned "
        "(given back to the server if the association ends while it lives), then "
        "cleared.",
    )
    internal = models.BooleanField(
        default=False,
        help_text="Made by octoprovider, not OctoPerf: moving a static IP off a server it was given at create "
        "(which OctoPerf considers free) before a release or another instance's associate.",
    )

    created_at = models.DateTimeField(default=clock.now, editable=False, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # At most one live association per static IP and per instance, enforced by the database
            # so that two simultaneous associate calls cannot both win.
            # Internal ones (moving an IP off a server that OctoPerf never associated it with) are
            # counted apart: OctoPerf's associate of that IP may wait on one.
            models.UniqueConstraint(
                fields=["static_ip"],
                condition=~Q(status="ended") & Q(internal=False),
                name="one_active_association_per_ip",
            ),
            models.UniqueConstraint(
                fields=["instance"],
                condition=~Q(status="ended") & Q(internal=False),
                name="one_active_association_per_instance",
            ),
            models.UniqueConstraint(
                fields=["static_ip"],
                condition=~Q(status="ended") & Q(internal=True),
                name="one_active_internal_association_per_ip",
            ),
        ]

    def __str__(self) -> str:
        return self.id
