"""The catalogue overrides in the console: region aliases and server type mappings (each edit audited)."""

from django.contrib import admin

from octoprovider.core.admin import AuditedModelAdmin
from octoprovider.hetzner.models import RegionAlias, ServerTypeMapping


@admin.register(RegionAlias)
class RegionAliasAdmin(AuditedModelAdmin):
    """Operators' names for Hetzner locations, on top of REGION_ALIASES; effective within seconds."""

    list_display = ["alias", "location"]
    search_fields = ["alias", "location"]


@admin.register(ServerTypeMapping)
class ServerTypeMappingAdmin(AuditedModelAdmin):
    """OctoPerf's sizes mapped to Hetzner server types, on top of SERVER_TYPES; effective within seconds."""

    list_display = ["location", "size", "server_type", "fallbacks"]
    list_filter = ["size", "location"]
    search_fields = ["location", "server_type"]
