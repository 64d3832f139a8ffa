"""What octoprovider keeps for its operators: the reconciler's last runs, and the audit log.

Both belong to the `octoprovider` app: their tables (`octoprovider_…`) and admin URLs predate the
operations package, and a deployed database keeps them.
"""

from datetime import datetime

from django.db import IntegrityError, models, transaction

from octoprovider.core import clock

# A pass over a big fleet can list hundreds of actions; the dashboard shows the first ones.
_KEPT = 50


class ReconcilerRun(models.Model):
    """The last reconcile pass of each kind (full or quick), and the last one that changed anything.

    One row per kind, updated in place: the loop runs every few seconds, and a table that grew with
    every pass would need its own cleanup.
    """

    class Kind(models.TextChoices):
        FULL = "full", "full (the whole fleet)"
        QUICK = "quick", "quick (instances in transition)"

    kind = models.CharField(max_length=8, choices=Kind.choices, unique=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    observed = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(default=0)
    terminated = models.PositiveIntegerField(default=0)
    hetzner_calls = models.PositiveIntegerField(default=0)
    actions = models.JSONField(default=list, blank=True)
    errors = models.JSONField(default=list, blank=True)
    last_change_at = models.DateTimeField(
        null=True, blank=True, help_text="The last pass that changed or did anything."
    )
    last_changes = models.JSONField(default=list, blank=True)
    rate_remaining = models.PositiveIntegerField(null=True, blank=True)
    rate_limit = models.PositiveIntegerField(null=True, blank=True)
    rate_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "octoprovider"  # its table and admin URL predate the operations package
        ordering = ["kind"]

    def __str__(self) -> str:
        return f"{self.kind} pass at {self.finished_at:%Y-%m-%d %H:%M:%S}"

    @classmethod
    def record(cls, *, full: bool, report, started_at: datetime, rate_budget: dict | None = None) -> None:
        """Record a finished pass (a `reconciler.PassReport`) as the last of its kind."""
        now = clock.now()
        fields = {
            "started_at": started_at,
            "finished_at": now,
            "observed": report.observed,
            "changed": report.changed,
            "terminated": report.terminated,
            "hetzner_calls": report.hetzner_calls,
            "actions": report.actions[:_KEPT],
            "errors": report.errors[:_KEPT],
        }
        if report.changed or report.actions or report.errors:
            fields["last_change_at"] = now
            fields["last_changes"] = (
                ([f"{report.changed} changed"] if report.changed else []) + report.actions + report.errors
            )[:_KEPT]
        if rate_budget:
            fields.update(
                rate_remaining=rate_budget["remaining"], rate_limit=rate_budget["limit"], rate_seen_at=rate_budget["at"]
            )
        kind = cls.Kind.FULL if full else cls.Kind.QUICK
        if cls.objects.filter(kind=kind).update(**fields):
            return
        try:
            with transaction.atomic():
                cls.objects.create(kind=kind, **fields)
        except IntegrityError:
            # Another reconciler created the row first: ours is as recent, update it.
            cls.objects.filter(kind=kind).update(**fields)


class AuditEvent(models.Model):
    """One contract call, or one mutation sent to Hetzner: who, what, on which ids, and how it went.

    Nothing secret is ever written here: no body (userData, a root password in a create answer), no
    header, no token; only the calling token's name, route names and ids.
    """

    class Kind(models.TextChoices):
        CONTRACT = "contract", "contract call (OctoPerf)"
        HETZNER = "hetzner", "Hetzner mutation"
        SWAP = "swap", "static IP swap (no Hetzner call)"

    at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=8, choices=Kind.choices, db_index=True)
    actor = models.CharField(max_length=100, blank=True, help_text="The API token's name (contract calls).")
    request_id = models.CharField(
        max_length=128, blank=True, db_index=True, help_text="Ties a contract call to the Hetzner mutations it made."
    )
    method = models.CharField(max_length=8)
    route = models.CharField(max_length=200, help_text="Route name, or Hetzner's templated path.")
    our_ids = models.CharField(max_length=300, blank=True, help_text="Our ids involved (i-…, ip-…, assoc-…).")
    hetzner_id = models.BigIntegerField(null=True, blank=True, help_text="The Hetzner resource in the path.")
    hetzner_action_id = models.BigIntegerField(null=True, blank=True)
    status = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="HTTP status; empty when no answer came."
    )
    outcome = models.CharField(
        max_length=64,
        blank=True,
        db_index=True,
        help_text="ok, or the error code (ours for contract calls, Hetzner's otherwise).",
    )

    class Meta:
        app_label = "octoprovider"
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["kind", "at"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.method} {self.route} {self.outcome}"


class HetznerRequestHour(models.Model):
    """How many answers Hetzner gave this deployment in one clock hour (UTC), for the dashboard's chart.

    One row per hour, counted up by every process on each answer (octoprovider.operations.charts):
    the audit keeps only mutations, and the rate budget only the last observation.
    """

    hour = models.DateTimeField(unique=True, help_text="The hour's start (UTC).")
    requests = models.PositiveIntegerField(default=0)

    class Meta:
        app_label = "octoprovider"
        ordering = ["hour"]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00}: {self.requests} Hetzner requests"
