"""The API tokens operators create for OctoPerf (only their hashes are kept)."""

from django.db import models


class ApiToken(models.Model):
    """A token created by an operator in the admin: for OctoPerf (the contract), or read-only (the allow-list).

    Only the SHA-256 of the secret is kept: the secret is shown once, when the token is created.
    The prefix (its first characters) tells tokens apart in the admin and in logs of who called.
    """

    class Scope(models.TextChoices):
        # A read-only token goes where a contract token must not: Terraform's state, an Ansible
        # inventory, a cron job's environment. It can read the allow-list and nothing else.
        CONTRACT = "contract", "OctoPerf (the contract: creates servers and static IPs)"
        READ = "read", "read-only (the allow-list, for scripts)"

    PREFIX_LENGTH = 8

    name = models.CharField(max_length=100, unique=True, help_text="Who uses it, e.g. the OctoPerf workspace.")
    scope = models.CharField(
        max_length=16,
        choices=Scope.choices,
        default=Scope.CONTRACT,
        help_text="What it may do: OctoPerf's calls, or only read the allow-list (GET /api/allow-list).",
    )
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
