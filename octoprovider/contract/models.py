"""The API tokens operators create for OctoPerf (only their hashes are kept)."""

from django.db import models


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
