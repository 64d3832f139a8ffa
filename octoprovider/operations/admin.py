"""The audit log in the console: read-only, searchable by our ids and request ids."""

from django.contrib import admin
from django.http import HttpRequest

from octoprovider.operations.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read the audit log: it is written by the service only, and never edited."""

    list_display = ["at", "kind", "actor", "method", "route", "our_ids", "hetzner_id", "hetzner_action_id",
                    "status", "outcome", "request_id"]
    list_filter = ["kind", "outcome", "method", "route", "actor"]
    search_fields = ["our_ids", "request_id", "actor", "route", "hetzner_id__exact", "hetzner_action_id__exact"]
    search_help_text = "An id of ours (i-…, ip-…, assoc-…), a request id, a token name, a Hetzner id or action id."
    date_hierarchy = "at"
    list_per_page = 100
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False
