"""What octoprovider keeps for its operators: the reconciler's last runs."""

from datetime import datetime

from django.db import IntegrityError, models, transaction

from octoprovider import clock

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
    last_change_at = models.DateTimeField(null=True, blank=True, help_text="The last pass that changed or did anything.")
    last_changes = models.JSONField(default=list, blank=True)
    rate_remaining = models.PositiveIntegerField(null=True, blank=True)
    rate_limit = models.PositiveIntegerField(null=True, blank=True)
    rate_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
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
            fields.update(rate_remaining=rate_budget["remaining"], rate_limit=rate_budget["limit"],
                          rate_seen_at=datetime.fromisoformat(rate_budget["at"]))
        kind = cls.Kind.FULL if full else cls.Kind.QUICK
        if cls.objects.filter(kind=kind).update(**fields):
            return
        try:
            with transaction.atomic():
                cls.objects.create(kind=kind, **fields)
        except IntegrityError:
            # Another reconciler created the row first: ours is as recent, update it.
            cls.objects.filter(kind=kind).update(**fields)


class ApiToken(models.Model):
    """A token OctoPerf may call the contract with, created by an operator in the admin.

    Only the SHA-256 of the secret is kept: the secret is shown once, when the token is created.
    The prefix (its first characters) tells tokens apart in the admin and in logs of who called.
    """

    PREFIX_LENGTH = 8

    name = models.CharField(max_length=100, unique=True, help_text="Who uses it, e.g. the OctoPerf workspace.")
    prefix = models.CharField(max_length=PREFIX_LENGTH, editable=False)
    secret_hash = models.CharField(max_length=64, unique=True, editable=False, help_text="SHA-256 of the secret, hex.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class AuditEvent(models.Model):
    """One contract call, or one mutation sent to Hetzner: who, what, on which ids, and how it went.

    Nothing secret is ever written here: no body (userData, a root password in a create answer), no
    header, no token; only the calling token's name, route names and ids.
    """

    class Kind(models.TextChoices):
        CONTRACT = "contract", "contract call (OctoPerf)"
        HETZNER = "hetzner", "Hetzner mutation"

    at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=8, choices=Kind.choices, db_index=True)
    actor = models.CharField(max_length=100, blank=True, help_text="The API token's name (contract calls).")
    request_id = models.CharField(max_length=128, blank=True, db_index=True,
                                  help_text="Ties a contract call to the Hetzner mutations it made.")
    method = models.CharField(max_length=8)
    route = models.CharField(max_length=200, help_text="Route name, or Hetzner's templated path.")
    our_ids = models.CharField(max_length=300, blank=True, help_text="Our ids involved (i-…, ip-…, assoc-…).")
    hetzner_id = models.BigIntegerField(null=True, blank=True, help_text="The Hetzner resource in the path.")
    hetzner_action_id = models.BigIntegerField(null=True, blank=True)
    status = models.PositiveSmallIntegerField(null=True, blank=True, help_text="HTTP status; empty when no answer came.")
    outcome = models.CharField(max_length=64, blank=True, db_index=True,
                               help_text="ok, or the error code (ours for contract calls, Hetzner's otherwise).")

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["kind", "at"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.method} {self.route} {self.outcome}"


class RegionAlias(models.Model):
    """An operator's name for a Hetzner location (eu-central → fsn1), on top of REGION_ALIASES."""

    alias = models.CharField(max_length=64, unique=True, help_text="The region as OctoPerf names it (any case).")
    location = models.CharField(max_length=16, help_text="A Hetzner location: fsn1, nbg1, hel1, ash, hil, sin.")

    class Meta:
        ordering = ["alias"]
        verbose_name_plural = "region aliases"

    def __str__(self) -> str:
        return f"{self.alias} → {self.location}"

    def clean(self) -> None:
        from django.conf import settings
        from django.core.exceptions import ValidationError

        self.alias = self.alias.strip().lower()
        if self.location not in settings.SERVER_TYPES:
            raise ValidationError({"location": f"Not a known location; known: {', '.join(settings.SERVER_TYPES)}."})


class ServerTypeMapping(models.Model):
    """Which Hetzner server type an OctoPerf size gets in a location, on top of SERVER_TYPES."""

    class Size(models.TextChoices):
        SMALL = "SMALL"
        MEDIUM = "MEDIUM"
        LARGE = "LARGE"
        XLARGE = "XLARGE"

    location = models.CharField(max_length=16, help_text="A Hetzner location, or * for every location.")
    size = models.CharField(max_length=8, choices=Size.choices)
    server_type = models.CharField(max_length=32, help_text="A Hetzner server type, e.g. cx33.")
    fallbacks = models.CharField(
        max_length=200, blank=True, help_text="Server types to try, in order, when Hetzner has no capacity (comma separated)."
    )

    class Meta:
        ordering = ["location", "size"]
        constraints = [models.UniqueConstraint(fields=["location", "size"], name="one_mapping_per_location_and_size")]

    def __str__(self) -> str:
        return f"{self.size} in {self.location} → {self.server_type}"

    def clean(self) -> None:
        from django.conf import settings
        from django.core.exceptions import ValidationError

        if self.location != "*" and self.location not in settings.SERVER_TYPES:
            raise ValidationError({"location": f"Not a known location; known: *, {', '.join(settings.SERVER_TYPES)}."})

    @property
    def fallback_list(self) -> list[str]:
        return [name.strip() for name in self.fallbacks.split(",") if name.strip()]


class HetznerRateBudget(models.Model):
    """Hetzner's request budget as the latest answer to any process of this deployment told it.

    One row (pk 1), shared by the web workers and the reconcilers through the database: every
    Hetzner answer updates it (compare-and-set on the observation time), every Hetzner call reads it
    first (octoprovider.budget). It also holds when the fleet was last listed in full, so that
    several reconcilers share that schedule instead of each paying for it.
    """

    limit = models.PositiveIntegerField(help_text="RateLimit-Limit: requests per hour for the project.")
    remaining = models.PositiveIntegerField(help_text="RateLimit-Remaining when it was observed.")
    reset_at = models.DateTimeField(null=True, blank=True, help_text="RateLimit-Reset: when the budget is full again.")
    observed_at = models.DateTimeField(null=True, blank=True)
    observed_by = models.CharField(max_length=64, blank=True, help_text="Which process saw that answer.")
    deferred_refreshes = models.PositiveIntegerField(
        default=0, help_text="Reconcile passes skipped because the budget was below the reserve kept for mutations."
    )
    last_deferred_at = models.DateTimeField(null=True, blank=True)
    refused_mutations = models.PositiveIntegerField(
        default=0, help_text="Mutations refused locally (503) because Hetzner would have answered 429."
    )
    full_listing_at = models.DateTimeField(null=True, blank=True, help_text="When the fleet was last listed in full.")

    class Meta:
        verbose_name = "Hetzner rate budget"

    def __str__(self) -> str:
        return f"{self.remaining} / {self.limit} as of {self.observed_at}"
