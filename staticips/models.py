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
        return f"octoperf-{self.id}"


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
        null=True, blank=True, help_text="The server's own IPv4 that the static IP replaces; deleted once unassigned."
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
            models.UniqueConstraint(
                fields=["static_ip"], condition=~Q(status="ended"), name="one_active_association_per_ip"
            ),
            models.UniqueConstraint(
                fields=["instance"], condition=~Q(status="ended"), name="one_active_association_per_instance"
            ),
        ]

    def __str__(self) -> str:
        return self.id
