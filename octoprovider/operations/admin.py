"""The audit log in the console (read-only, searchable by ids, filtered by who), and the test runs."""

from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import path, reverse_lazy
from django.utils.dateparse import parse_date
from django.utils.html import format_html
from django.views.generic import RedirectView

from octoprovider.core import clock
from octoprovider.core.exceptions import HetznerError
from octoprovider.operations import alerts_admin, costing  # noqa: F401  (alerts_admin: the alerts' pages)
from octoprovider.operations.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read the audit log: it is written by the service only, and never edited."""

    # Hetzner's action id and the full request id are on each event's page; the list must fit a laptop.
    list_display = ["when", "who", "call", "our_ids", "hetzner_id", "status", "outcome", "request"]
    list_filter = ["kind", "outcome", "method", "route", "actor"]
    search_fields = ["our_ids", "request_id", "actor", "route", "hetzner_id__exact", "hetzner_action_id__exact"]
    search_help_text = (
        "An id of ours (i-…, ip-…, assoc-…), a request id, a token name or username, a Hetzner id or action id."
    )
    date_hierarchy = "at"
    list_per_page = 100
    show_full_result_count = False

    @admin.display(description="at (UTC)", ordering="at")
    def when(self, event: AuditEvent) -> str:
        return f"{event.at:%Y-%m-%d %H:%M:%S}"

    @admin.display(description="who", ordering="kind")
    def who(self, event: AuditEvent) -> str:
        if event.kind == AuditEvent.Kind.CONTRACT:
            return f"OctoPerf ({event.actor})" if event.actor else "OctoPerf"
        if event.kind == AuditEvent.Kind.CONSOLE:
            return f"operator {event.actor}"
        if event.kind == AuditEvent.Kind.HETZNER and event.actor:
            return f"to Hetzner (for {event.actor})"
        return "to Hetzner"

    @admin.display(description="call", ordering="route")
    def call(self, event: AuditEvent) -> str:
        return f"{event.method} {event.route}".strip()

    @admin.display(description="request id", ordering="request_id")
    def request(self, event: AuditEvent) -> str:
        # Enough to tell requests apart; searching by the full id (from a log line) finds the event.
        rid = event.request_id
        return format_html('<span title="{}">{}</span>', rid, rid[:12] + "…" if len(rid) > 13 else rid or "-")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False


# --- test runs: what each test cost -----------------------------------------------------------------

RUNS_DEFAULT_DAYS = costing.RUNS_DEFAULT_DAYS


def runs_view(request: HttpRequest):
    """List the test runs since a date (`?since=YYYY-MM-DD`, a week by default) with what each cost."""
    if not request.user.has_perm("instances.view_instance"):
        raise PermissionDenied
    since_text = request.GET.get("since", "")
    since_date, status, error = _day(since_text), 200, None
    if since_date is None:
        if since_text:
            status, error = (
                400,
                f"{since_text!r} is not a date like 2026-05-01; the runs of the last {RUNS_DEFAULT_DAYS} days:",
            )
        since_date = (clock.now() - timedelta(days=RUNS_DEFAULT_DAYS)).date()
    since = datetime.combine(since_date, time.min, tzinfo=UTC)
    context = {
        **admin.site.each_context(request),
        "title": "Test runs",
        "since": since_date,
        "gap": settings.RUN_GAP,
        "date_error": error,
        # The dashboard's rule: euros of static IPs only to whom may view static IPs (a total would tell them).
        "show_static_ips": request.user.has_perm("staticips.view_staticip"),
    }
    try:
        context["runs"] = costing.runs(since=since)
    except HetznerError as exc:
        context["error"] = f"No prices from Hetzner: {exc.message}"
    return TemplateResponse(request, "admin/operations/runs.html", context, status=status)


def _day(text: str) -> date | None:
    """Return the day `text` names (YYYY-MM-DD), or None: `2026-02-30` is well formed but no day."""
    try:
        return parse_date(text) if text else None
    except ValueError:
        return None


_site_urls = admin.site.get_urls


def _get_urls():
    return [
        path("runs/", admin.site.admin_view(runs_view), name="operations_runs"),
        # The audit log belongs to the `octoprovider` app (its table predates this package), yet operators
        # look for it under operations: the same list, the filters kept (`?actor=<username>`).
        path(
            "operations/auditevent/",
            RedirectView.as_view(url=reverse_lazy("admin:octoprovider_auditevent_changelist"), query_string=True),
        ),
        *_site_urls(),
    ]


admin.site.get_urls = _get_urls
