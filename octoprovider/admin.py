"""The operators' console: what the admin pages of every app share, and octoprovider's own models.

Rows of instances, static IPs and associations come from the API and mirror Hetzner: the admin shows
them read-only and acts on them only through actions that call the same services as the API.
Destructive actions go through a confirmation page first, like Django's `delete_selected`.
"""

import logging
from collections.abc import Callable
from datetime import timedelta

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.text import capfirst

from octoprovider import clock, tokens
from octoprovider.exceptions import ServiceError
from octoprovider.models import ApiToken, AuditEvent, RegionAlias, ServerTypeMapping
from octoprovider.reconciler import PassReport, reconcile_pass

logger = logging.getLogger(__name__)

# Beyond this many per-row errors, one summary line says how many more there were.
_ERRORS_SHOWN = 20


class AgeFilter(admin.SimpleListFilter):
    """Filter rows by how long ago they were created (by the service's clock)."""

    title = "age"
    parameter_name = "age"
    _BUCKETS = {
        "lt1h": ("under an hour", None, timedelta(hours=1)),
        "1h-1d": ("1 to 24 hours", timedelta(hours=1), timedelta(days=1)),
        "gt1d": ("over a day", timedelta(days=1), None),
        "gt7d": ("over a week", timedelta(days=7), None),
    }

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _, _) in self._BUCKETS.items()]

    def queryset(self, request, queryset):
        if self.value() not in self._BUCKETS:
            return queryset
        _, older_than, younger_than = self._BUCKETS[self.value()]
        now = clock.now()
        if older_than is not None:
            queryset = queryset.filter(created_at__lte=now - older_than)
        if younger_than is not None:
            queryset = queryset.filter(created_at__gt=now - younger_than)
        return queryset


class OperatorsModelAdmin(admin.ModelAdmin):
    """Show a model that mirrors Hetzner read-only; change it only through actions calling services.

    Saving a form would write a whole row back over what the reconciler changed in between (its
    updates are compare-and-set), so nothing is editable, nothing is added and rows are never
    deleted here: terminating or releasing is what removes things at Hetzner.
    Actions ask for `operate` (the model's change permission) or `destroy` (its delete permission).
    """

    list_per_page = 100
    show_full_result_count = False  # a second COUNT(*) over the whole table on every page view

    @admin.action(description="Refresh from Hetzner (run a reconcile pass now)", permissions=["operate"])
    def refresh_from_hetzner(self, request: HttpRequest, queryset):
        before = dict(queryset.values_list("pk", "status"))
        run_reconcile_pass(self, request)
        report_changes(self, request, before, queryset)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    def has_destroy_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.delete_{self.opts.model_name}")

    def get_search_results(self, request, queryset, search_term):
        # Hetzner names are `octoperf-<our id>`: searching by a name finds the row by its id.
        terms = " ".join(term.removeprefix("octoperf-") for term in search_term.split())
        return super().get_search_results(request, queryset, terms)


def confirmation_page(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    *,
    action: str,
    title: str,
    consequence: str,
    describe: Callable[[Model], str] = str,
) -> TemplateResponse | None:
    """Return a page asking to confirm `action` on the selected rows, or None once confirmed."""
    if request.POST.get("post") == "yes":
        return None
    opts = modeladmin.opts
    return TemplateResponse(
        request,
        "admin/octoprovider/confirm_action.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": title,
            "subtitle": None,
            "consequence": consequence,
            "objects": [(obj.pk, describe(obj)) for obj in queryset],
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "opts": opts,
            "media": modeladmin.media,
        },
    )


def run_per_row(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    *,
    done: str,
    call: Callable[[Model], object],
) -> int:
    """Call a service on each selected row; report how many it did and each row it failed on.

    One row's failure never stops the others. Returns how many succeeded.
    """
    succeeded = 0
    failures: list[str] = []
    for obj in queryset:
        try:
            call(obj)
        except ServiceError as exc:
            failures.append(f"{obj}: {exc.message}")
        except Exception as exc:  # noqa: BLE001  (reported to the operator, logged with its traceback)
            logger.exception("Admin action on %s failed", obj)
            failures.append(f"{obj}: unexpected error ({type(exc).__name__}); see the logs.")
        else:
            succeeded += 1
    name = modeladmin.opts.verbose_name if succeeded == 1 else modeladmin.opts.verbose_name_plural
    if succeeded or not failures:
        modeladmin.message_user(request, f"{capfirst(done)} {succeeded} {name}.", messages.SUCCESS)
    for failure in failures[:_ERRORS_SHOWN]:
        modeladmin.message_user(request, failure, messages.ERROR)
    if len(failures) > _ERRORS_SHOWN:
        modeladmin.message_user(request, f"… and {len(failures) - _ERRORS_SHOWN} more failed.", messages.ERROR)
    return succeeded


def run_reconcile_pass(modeladmin: admin.ModelAdmin, request: HttpRequest) -> PassReport:
    """Run a full reconcile pass now, as the loop would, and tell the operator what it did."""
    report = reconcile_pass(full=True)
    modeladmin.message_user(
        request,
        f"Reconcile pass: {report.observed} instances observed, {report.changed} changed, "
        f"{report.terminated} found terminated, {len(report.actions)} actions, "
        f"{report.hetzner_calls} Hetzner calls.",
        messages.SUCCESS if not report.errors else messages.WARNING,
    )
    for action in report.actions[:_ERRORS_SHOWN]:
        modeladmin.message_user(request, f"Did: {action}", messages.INFO)
    for error in report.errors[:_ERRORS_SHOWN]:
        modeladmin.message_user(request, f"Error: {error}", messages.ERROR)
    return report


def report_changes(modeladmin: admin.ModelAdmin, request: HttpRequest, before: dict[str, str],
                   queryset: QuerySet) -> None:
    """Tell the operator which selected rows changed status (e.g. after a refresh from Hetzner)."""
    after = dict(queryset.model.objects.filter(pk__in=list(before)).values_list("pk", "status"))
    changed = [f"{pk}: {before[pk]} → {after.get(pk)}" for pk in before if after.get(pk) != before[pk]]
    if not changed:
        modeladmin.message_user(request, f"None of the {len(before)} selected changed.", messages.INFO)
        return
    modeladmin.message_user(request, f"{len(changed)} of the {len(before)} selected changed:", messages.INFO)
    for line in changed[:_ERRORS_SHOWN]:
        modeladmin.message_user(request, line, messages.INFO)


admin.site.site_header = "octoprovider: operators' console"
admin.site.site_title = "octoprovider"
admin.site.index_title = "Dashboard"


# --- API tokens ---------------------------------------------------------------------------------------


class RevokedFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "active"), ("revoked", "revoked")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Create tokens (the secret is shown once, on the page that follows), see their use, revoke them."""

    list_display = ["name", "prefix", "state", "created_at", "last_used_at", "revoked_at"]
    list_filter = [RevokedFilter, "created_at"]
    search_fields = ["name", "=prefix"]
    actions = ["revoke"]

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        if obj is None:
            return ["name"]
        return ["name", "prefix", "created_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        if obj is None:
            return []
        return ["name", "prefix", "created_at", "last_used_at", "revoked_at"]

    def has_delete_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        # Revoked tokens stay listed: the audit log names them.
        return False

    @admin.display(description="state")
    def state(self, token: ApiToken) -> str:
        return "revoked" if token.is_revoked else "active"

    def save_model(self, request: HttpRequest, obj: ApiToken, form, change: bool) -> None:
        if change:
            return  # nothing about a token is editable
        token, secret = tokens.api_token_create(name=obj.name)
        obj.pk, obj.prefix, obj.secret_hash, obj.created_at = token.pk, token.prefix, token.secret_hash, token.created_at
        obj._state.adding = False
        obj._secret = secret  # for response_add only: never saved

    def response_add(self, request: HttpRequest, obj: ApiToken, post_url_continue=None):
        """Show the new token's secret, this once, instead of redirecting to the list."""
        base_url = request.build_absolute_uri("/octoperf/")
        # Admin views are never_cache: neither the browser nor a proxy keeps this page.
        return TemplateResponse(
            request,
            "admin/octoprovider/apitoken/created.html",
            {
                **self.admin_site.each_context(request),
                "title": f"API token {obj.name} created",
                "subtitle": None,
                "opts": self.opts,
                "token": obj,
                "secret": obj._secret,
                "base_url": base_url,
            },
        )

    @admin.action(description="Revoke selected API tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset):
        page = confirmation_page(
            self, request, queryset, action="revoke", title="Revoke API tokens",
            consequence="OctoPerf's calls with these tokens are refused (401) from now on; a provider configured "
                        "with one stops working until its base URL gets another token. This cannot be undone.",
        )
        if page is not None:
            return page
        run_per_row(self, request, queryset, done="revoked",
                    call=lambda token: tokens.api_token_revoke(token_id=token.pk))
        return None


# --- the audit log ------------------------------------------------------------------------------------


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


@admin.register(RegionAlias)
class RegionAliasAdmin(admin.ModelAdmin):
    """Operators' names for Hetzner locations, on top of REGION_ALIASES; effective within seconds."""

    list_display = ["alias", "location"]
    search_fields = ["alias", "location"]


@admin.register(ServerTypeMapping)
class ServerTypeMappingAdmin(admin.ModelAdmin):
    """OctoPerf's sizes mapped to Hetzner server types, on top of SERVER_TYPES; effective within seconds."""

    list_display = ["location", "size", "server_type", "fallbacks"]
    list_filter = ["size", "location"]
    search_fields = ["location", "server_type"]
