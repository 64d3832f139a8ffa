"""Where OctoPerf's regions and types land at Hetzner: locations and server types.

The environment sets the defaults (REGION_ALIASES; SERVER_TYPE_CANDIDATES, the ordered types per
size; SERVER_TYPES and SERVER_TYPE_FALLBACKS, types an operator pins; LOCATION_FALLBACKS); operators
override them in the admin (RegionAlias, ServerTypeMapping), which takes effect without a restart:
each process re-reads the overrides at most OVERRIDES_SECONDS after they change, the process that
saved them at once.
"""

from django.conf import settings
from django.core.cache import cache

from octoprovider.core.exceptions import InvalidInput
from octoprovider.hetzner.servers import server_type_architecture

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


def check_size(instance_type: str) -> None:
    """Refuse (400) a type that is not one of OctoPerf's sizes."""
    _size(instance_type)


def _mapping(location: str, size: str) -> tuple[str, list[str]] | None:
    mappings = _overrides()[1]
    return mappings.get((location, size)) or mappings.get(("*", size))


def _pinned(location: str, size: str) -> list[str] | None:
    """Return the type an operator pinned for the size (admin mapping, then SERVER_TYPES) and its fallbacks."""
    mapping = _mapping(location, size)
    configured_fallbacks = settings.SERVER_TYPE_FALLBACKS.get(location, {}).get(size, [])
    if mapping:
        first, fallbacks = mapping
        return [first, *(fallbacks or configured_fallbacks)]
    first = settings.SERVER_TYPES.get(location, {}).get(size)
    return [first, *configured_fallbacks] if first else None


def server_type_candidates(location: str, instance_type: str) -> list[str]:
    """Return the server types to try for a size in a location, in order.

    A type pinned by an operator comes with its own fallbacks and is taken as it is. Otherwise the
    size's SERVER_TYPE_CANDIDATES, less those of an architecture outside SERVER_ARCHITECTURES
    (judged from Hetzner's catalogue: a type it does not list is kept, and the create tells).
    """
    size = _size(instance_type)
    pinned = _pinned(location, size)
    if pinned:
        return list(dict.fromkeys(pinned))
    candidates = [
        name
        for name in settings.SERVER_TYPE_CANDIDATES[size]
        if server_type_architecture(name) in (None, *settings.SERVER_ARCHITECTURES)
    ]
    return list(dict.fromkeys(candidates)) or list(settings.SERVER_TYPE_CANDIDATES[size][:1])


def location_fallbacks(location: str) -> list[str]:
    """Return the locations to try, in order, when no candidate type can be had in `location` (opt-in)."""
    return [other for other in settings.LOCATION_FALLBACKS.get(location, []) if other != location]
