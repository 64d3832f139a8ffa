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
    """One contract call, console action, or mutation sent to Hetzner: who, what, on which ids, and how it went.

    Nothing secret is ever written here: no body (userData, a root password in a create answer), no
    header, no token; only the calling token's name or the operator's username, route names and ids.
    """

    class Kind(models.TextChoices):
        CONTRACT = "contract", "contract call (OctoPerf)"
        CONSOLE = "console", "console action (operator)"
        HETZNER = "hetzner", "Hetzner mutation"
        SWAP = "swap", "static IP swap (no Hetzner call)"

    at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=8, choices=Kind.choices, db_index=True)
    actor = models.CharField(
        max_length=100,
        blank=True,
        db_index=True,
        help_text="The API token's name (contract calls), or the operator's username (console actions, and "
        "the Hetzner mutations they caused).",
    )
    request_id = models.CharField(
        max_length=128, blank=True, db_index=True, help_text="Ties a contract call to the Hetzner mutations it made."
    )
    method = models.CharField(max_length=8)
    route = models.CharField(
        max_length=200, help_text="Route name, the console action's name, or Hetzner's templated path."
    )
    our_ids = models.CharField(
        max_length=300,
        blank=True,
        help_text="Our ids involved (i-…, ip-…, assoc-…), or what a console action changed (a token, an override).",
    )
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


class Alert(models.Model):
    """One occurrence of a condition that puts money or agents at risk, from when it starts to when it clears.

    At most one row per key is open (a partial unique constraint): two reconcilers that see a budget
    cross 80 % at once insert one row, and the loser's insert fails. Each notification is claimed by a
    compare-and-set on `sending_since` and recorded per channel once sent, so that it goes out once
    however many processes look, and a failed one is tried again on a later pass.
    """

    key = models.CharField(max_length=100, help_text="What is at risk, e.g. budget:DAILY_BUDGET_EUR:80.")
    family = models.CharField(max_length=40, help_text="The check that raises it, e.g. budget.")
    title = models.CharField(max_length=200)
    detail = models.TextField(blank=True, help_text="How much and which ids, as last seen.")
    since = models.DateTimeField(help_text="When the condition was first seen.")
    started_at = models.DateTimeField(
        null=True, blank=True, help_text="When it became an alert (some conditions must hold a while first)."
    )
    cleared_at = models.DateTimeField(null=True, blank=True, db_index=True)
    start_emailed_at = models.DateTimeField(null=True, blank=True)
    start_posted_at = models.DateTimeField(null=True, blank=True, help_text="Sent to ALERT_WEBHOOK_URL.")
    clear_emailed_at = models.DateTimeField(null=True, blank=True)
    clear_posted_at = models.DateTimeField(null=True, blank=True, help_text="Sent to ALERT_WEBHOOK_URL.")
    sending_since = models.DateTimeField(null=True, blank=True, help_text="A process is sending its notifications.")
    send_error = models.CharField(max_length=300, blank=True, help_text="Why the last notification failed.")

    class Meta:
        app_label = "operations"
        ordering = ["-since", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["key"], condition=models.Q(cleared_at=None), name="one_open_alert_per_key")
        ]

    def __str__(self) -> str:
        return self.title


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
