"""Where OctoPerf's regions and types land at Hetzner: locations and server types.

The environment sets the defaults (REGION_ALIASES, SERVER_TYPES, SERVER_TYPE_FALLBACKS); operators
override them in the admin (RegionAlias, ServerTypeMapping), which takes effect without a restart:
each process re-reads the overrides at most OVERRIDES_SECONDS after they change, the process that
saved them at once.
"""

from django.conf import settings
from django.core.cache import cache

from octoprovider.core.exceptions import InvalidInput

OVERRIDES_SECONDS = 10
_CACHE_KEY = "octoprovider:catalog-overrides"


def _overrides() -> tuple[dict[str, str], dict[tuple[str, str], tuple[str, list[str]]]]:
    overrides = cache.get(_CACHE_KEY)
    if overrides is None:
        from octoprovider.hetzner.models import RegionAlias, ServerTypeMapping

        aliases = {alias.lower(): location for alias, location in RegionAlias.objects.values_list("alias", "location")}
        mappings = {
            (mapping.location, mapping.size): (mapping.server_type, mapping.fallback_list)
            for mapping in ServerTypeMapping.objects.all()
        }
        overrides = (aliases, mappings)
        cache.set(_CACHE_KEY, overrides, OVERRIDES_SECONDS)
    return overrides


def forget_overrides(**kwargs) -> None:
    """Drop this process's copy of the overrides (connected to their models' save and delete)."""
    cache.delete(_CACHE_KEY)


def location_for(region: str) -> str:
    """Map OctoPerf's region (a Hetzner location or an operator's alias, any case) to a location."""
    key = region.strip().lower()
    aliases = {**settings.REGION_ALIASES, **_overrides()[0]}
    location = aliases.get(key, key)
    if location not in settings.SERVER_TYPES:
        known = sorted(set(settings.SERVER_TYPES) | set(aliases))
        raise InvalidInput(f"Unknown region {region!r}; known regions: {', '.join(known)}.", code="unknown_region")
    return location


def _size(instance_type: str) -> str:
    size = instance_type.strip().upper()
    if size not in settings.INSTANCE_TYPES:
        raise InvalidInput(
            f"Unknown type {instance_type!r}; expected one of {', '.join(settings.INSTANCE_TYPES)}.",
            code="unknown_type",
        )
    return size


def _mapping(location: str, size: str) -> tuple[str, list[str]] | None:
    mappings = _overrides()[1]
    return mappings.get((location, size)) or mappings.get(("*", size))


def server_type_candidates(location: str, instance_type: str) -> list[str]:
    """Return the server type for a size and, after it, the fallbacks to try when it cannot be had."""
    size = _size(instance_type)
    mapping = _mapping(location, size)
    if mapping:
        first, fallbacks = mapping
        fallbacks = fallbacks or settings.SERVER_TYPE_FALLBACKS.get(location, {}).get(size, [])
    else:
        first = settings.SERVER_TYPES[location][size]
        fallbacks = settings.SERVER_TYPE_FALLBACKS.get(location, {}).get(size, [])
    return list(dict.fromkeys([first, *fallbacks]))
