"""API tokens that operators create in the admin: every write about them, and the lookup of a presented one.

The secret is returned once, by `api_token_create`; the database keeps its SHA-256 only, so a copy of
the database (a backup, a read-only replica) gives no way to call the contract.
"""

import hashlib
import hmac
import secrets
from datetime import timedelta

from octoprovider.contract.models import ApiToken
from octoprovider.core import clock

# Writing last_used_at on every state poll would turn each poll into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_secret(secret: str) -> str:
    """Return the hex SHA-256 of a token's secret, as stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def api_token_create(*, name: str, scope: str = ApiToken.Scope.CONTRACT) -> tuple[ApiToken, str]:
    """Create a token and return it with its secret, which is never stored nor shown again."""
    # URL-safe, so that it can travel in the path of OctoPerf's base URL; never contains '/'.
    secret = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        name=name, scope=scope, prefix=secret[: ApiToken.PREFIX_LENGTH], secret_hash=hash_secret(secret)
    )
    return token, secret


def api_token_revoke(*, token_id: int) -> bool:
    """Revoke a token at once; False when it was revoked already."""
    return ApiToken.objects.filter(pk=token_id, revoked_at__isnull=True).update(revoked_at=clock.now()) == 1


def api_token_authenticate(presented: str) -> ApiToken | None:
    """Return the live token whose secret is `presented`, recording when it was used; else None."""
    presented_hash = hash_secret(presented)
    token = ApiToken.objects.filter(secret_hash=presented_hash).first()
    if token is None or not hmac.compare_digest(token.secret_hash, presented_hash) or token.is_revoked:
        return None
    now = clock.now()
    if token.last_used_at is None or token.last_used_at < now - LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
