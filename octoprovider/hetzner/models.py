"""What the gateway keeps: the rate budget every process shares, and the operators' catalogue overrides."""

from django.db import models


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
        max_length=200,
        blank=True,
        help_text="Server types to try, in order, when Hetzner has no capacity (comma separated).",
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
    first (octoprovider.hetzner.budget). It also holds when the fleet was last listed in full, so that
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


class DeploymentLabel(models.Model):
    """The OCTOPROVIDER_DEPLOYMENT this database's fleet is labelled with at Hetzner: one row (pk 1).

    The first process to start records it; `octoprovider.hetzner.deployment` says why the label matters.
    """

    label = models.CharField(max_length=63)
    recorded_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.label
