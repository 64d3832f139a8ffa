import secrets

from django.db import models

from octoprovider.core import clock


def new_instance_id() -> str:
    """Return a fresh id in EC2's shape (`i-` and 17 hex digits): opaque, URL-safe, never reused."""
    return "i-" + secrets.token_hex(9)[:17]


class Instance(models.Model):
    """One host that OctoPerf asked for, and what we last saw of its Hetzner server.

    The row is committed (status `creating`) before Hetzner is called, so a crash never leaves a
    server we do not know about. `userData` is never stored: it holds the agent's secret.
    """

    class Status(models.TextChoices):
        CREATING = "creating", "creating (Hetzner create not confirmed yet)"
        PENDING = "pending"
        RUNNING = "running"
        STOPPING = "stopping"
        STOPPED = "stopped"
        DELETING = "deleting", "deleting (delete requested)"
        TERMINATED = "terminated"

    # What OctoPerf's state endpoint answers for each of our statuses (EC2's vocabulary).
    CONTRACT_STATES = {
        Status.CREATING: "pending",
        Status.PENDING: "pending",
        Status.RUNNING: "running",
        Status.STOPPING: "stopping",
        Status.STOPPED: "stopped",
        Status.DELETING: "shutting-down",
        Status.TERMINATED: "terminated",
    }
    # Statuses that can still change without anyone asking: refreshed often, in one batched call.
    IN_TRANSITION = [Status.CREATING, Status.PENDING, Status.STOPPING, Status.DELETING]
    LIVE = [Status.CREATING, Status.PENDING, Status.RUNNING, Status.STOPPING, Status.STOPPED]

    id = models.CharField(primary_key=True, max_length=32, default=new_instance_id, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CREATING, db_index=True)

    region = models.CharField(max_length=64, help_text="The region as OctoPerf named it.")
    zone = models.CharField(max_length=64, blank=True, help_text="Recorded only: Hetzner places by location.")
    location = models.CharField(max_length=16, help_text="The Hetzner location the region maps to.")
    type = models.CharField(max_length=16, help_text="OctoPerf's size: SMALL, MEDIUM, LARGE or XLARGE.")
    server_type = models.CharField(max_length=32)
    image = models.CharField(max_length=64)

    # Not unique: a parked server (ParkedServer) taken by a new instance is the server of two rows,
    # the terminated one that parked it and the one that took it.
    hetzner_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    hetzner_status = models.CharField(max_length=16, blank=True, help_text="As Hetzner last reported it.")
    public_ipv4 = models.GenericIPAddressField(null=True, blank=True, protocol="IPv4")
    own_ipv4 = models.BooleanField(
        default=True,
        help_text="Whether the server has a Primary IPv4 of its own, billed apart. No when it was created with, "
        "or moved onto, one of our static IPs (which is billed as a static IP).",
    )
    claimed_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When OctoPerf first called with this id (a state poll, reboot, delete or associate): it "
        "received the create's answer. Never set: the create's answer was lost.",
    )

    created_at = models.DateTimeField(default=clock.now, editable=False, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    observed_at = models.DateTimeField(null=True, blank=True, help_text="When Hetzner last reported on it.")
    power_cycle_pending = models.BooleanField(
        default=False,
        help_text="A static IP is being moved on or off its server, which is powered off and on for it: the state "
        "does not say running until the move is over.",
    )
    reboot_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="A reboot Hetzner could not take yet (locked); the reconciler retries it."
    )
    delete_requested_at = models.DateTimeField(null=True, blank=True)
    terminated_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return self.id

    @property
    def name(self) -> str:
        """The Hetzner server's name: deterministic, so a retried create is recognisable."""
        return f"octoperf-{self.id}"

    @property
    def state(self) -> str:
        return self.CONTRACT_STATES[self.status]


class ParkedServer(models.Model):
    """A server whose instance was deleted within an hour Hetzner had billed already: kept, powered off, for reuse.

    One row per parking, written (status `parking`) in the transaction that terminates the instance,
    before Hetzner is called. A row that is `parking`, `parked` or `taking` owns its server: the
    reconciler and cleanup never count that server as an orphan or a zombie, and every limit counts it.
    A crash between steps leaves the row in a step the reconciler finishes by deleting the server
    (instances/reuse.py). The server keeps the labels of the instance that parked it until taken.
    """

    class Status(models.TextChoices):
        PARKING = "parking", "parking (power-off and label being sent)"
        PARKED = "parked"
        TAKING = "taking", "taking (rebuild for a new instance being sent)"
        TAKEN = "taken"
        DELETING = "deleting", "deleting (delete being sent)"
        DELETED = "deleted"

    class EndReason(models.TextChoices):
        DEADLINE = "deadline", "deadline (its next billed hour was near)"
        ROOM = "room", "room for a create (a limit was reached)"
        PARK_FAILED = "park failed", "park failed at Hetzner"
        TAKE_FAILED = "take failed", "take failed at Hetzner"
        CUT_SHORT = "cut short", "a park or take cut short (its request died)"

    # The server is ours, and billed, while its row is in one of these.
    HOLDING = [Status.PARKING, Status.PARKED, Status.TAKING, Status.DELETING]

    hetzner_id = models.BigIntegerField(db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PARKING, db_index=True)
    location = models.CharField(max_length=16)
    server_type = models.CharField(max_length=32)
    labelled_as = models.CharField(
        max_length=32, help_text="The instance id the server's labels carry while parked (the one that parked it)."
    )
    billed_since = models.DateTimeField(
        help_text="When the server was created: Hetzner bills each hour started from then (deadlines follow it)."
    )
    parked_at = models.DateTimeField(default=clock.now)
    deadline = models.DateTimeField(
        db_index=True, help_text="When it is deleted unless taken: REUSE_MARGIN before its next billed hour starts."
    )
    taken_by = models.CharField(max_length=32, blank=True, db_index=True)
    taken_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True, help_text="Taken, or its delete accepted by Hetzner.")
    power_on_owed = models.BooleanField(
        default=False, help_text="Taken, and its rebuild may leave it off: the reconciler powers it on if it is."
    )
    updated_at = models.DateTimeField(default=clock.now)
    end_reason = models.CharField(max_length=16, choices=EndReason.choices, blank=True, help_text="Why it was deleted.")
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["deadline"]
        constraints = [
            # One server is held by one parking at a time.
            models.UniqueConstraint(
                fields=["hetzner_id"],
                condition=models.Q(status__in=["parking", "parked", "taking", "deleting"]),
                name="one_holding_parking_per_server",
            )
        ]

    def __str__(self) -> str:
        return f"server {self.hetzner_id} ({self.status})"
