"""Operators' spending limits: what a runaway caller or a leaked token can create at most.

Checked before any Hetzner call, and atomically: the check and the insert of the intent row happen
under one lock, so 20 parallel creates against a limit of 5 create exactly 5.
"""

import contextlib
import zlib

from django.conf import settings
from django.db import connection, transaction

from octoprovider.core.exceptions import LimitReached


@contextlib.contextmanager
def guarded(name: str):
    """Hold a transaction in which limit checks and inserts of kind `name` run one at a time.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: every transaction starts IMMEDIATE
    (settings), which already takes the database's single write lock.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [zlib.crc32(f"octoprovider:{name}".encode())])
        yield


def check_region_and_type(*, region: str, location: str, instance_type: str | None = None) -> None:
    allowed_regions = settings.ALLOWED_REGIONS
    if allowed_regions and region.lower() not in allowed_regions and location not in allowed_regions:
        raise LimitReached(
            f"Region {region!r} is not in ALLOWED_REGIONS ({', '.join(allowed_regions)}).", code="region_not_allowed"
        )
    if instance_type is not None and settings.ALLOWED_TYPES and instance_type.upper() not in settings.ALLOWED_TYPES:
        raise LimitReached(
            f"Type {instance_type!r} is not in ALLOWED_TYPES ({', '.join(settings.ALLOWED_TYPES)}).",
            code="type_not_allowed",
        )


def check_count(*, name: str, current: int, limit: int, what: str) -> None:
    if current >= limit:
        raise LimitReached(f"{name} ({limit}) reached: {current} {what} exist already.", code="limit_reached")
