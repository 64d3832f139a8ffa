"""Where OctoPerf's regions and types land at Hetzner: locations and server types, from settings."""

from django.conf import settings

from octoprovider.exceptions import InvalidInput


def location_for(region: str) -> str:
    """Map OctoPerf's region (a Hetzner location or an operator's alias, any case) to a location."""
    key = region.strip().lower()
    location = settings.REGION_ALIASES.get(key, key)
    if location not in settings.SERVER_TYPES:
        known = sorted(set(settings.SERVER_TYPES) | set(settings.REGION_ALIASES))
        raise InvalidInput(f"Unknown region {region!r}; known regions: {', '.join(known)}.", code="unknown_region")
    return location


def server_type_for(location: str, instance_type: str) -> str:
    """Map OctoPerf's size (SMALL, MEDIUM, LARGE, XLARGE; any case) to a Hetzner server type."""
    size = instance_type.strip().upper()
    if size not in settings.INSTANCE_TYPES:
        raise InvalidInput(
            f"Unknown type {instance_type!r}; expected one of {', '.join(settings.INSTANCE_TYPES)}.",
            code="unknown_type",
        )
    return settings.SERVER_TYPES[location][size]


def server_type_candidates(location: str, instance_type: str) -> list[str]:
    """Return the server type for a size and, after it, the fallbacks to try when it cannot be had."""
    size = instance_type.strip().upper()
    first = server_type_for(location, size)
    fallbacks = settings.SERVER_TYPE_FALLBACKS.get(location, {}).get(size, [])
    return list(dict.fromkeys([first, *fallbacks]))
