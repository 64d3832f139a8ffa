"""The alerts in the console: what was at risk, when, and whether the operators were told (read-only)."""

from django.contrib import admin

from octoprovider.operations.models import Alert


class OpenFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "open"), ("cleared", "cleared")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(cleared_at=None)
        if self.value() == "cleared":
            return queryset.exclude(cleared_at=None)
        return queryset


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    """Alerts are written by the reconciler and cleanup only."""

    list_display = ["title", "since", "cleared_at", "detail", "sent", "send_error"]
    list_filter = [OpenFilter, "family"]
    search_fields = ["title", "detail", "key"]
    date_hierarchy = "since"

    def get_queryset(self, request):
        # Rows that only remember since when a condition holds are no alerts (yet).
        return super().get_queryset(request).exclude(started_at=None)

    @admin.display(description="sent (start / clear)")
    def sent(self, alert: Alert) -> str:
        def said(*ats) -> str:
            return "yes" if any(ats) else "no"

        start = said(alert.start_emailed_at, alert.start_posted_at)
        clear = said(alert.clear_emailed_at, alert.clear_posted_at) if alert.cleared_at else "-"
        return f"{start} / {clear}"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
