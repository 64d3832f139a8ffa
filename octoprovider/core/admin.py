"""The operators' console kit: what the admin pages of every layer share.

Rows of instances, static IPs and associations come from the API and mirror Hetzner: the admin shows
them read-only and acts on them only through actions that call the same services as the API.
Destructive actions go through a confirmation page first, like Django's `delete_selected`.
"""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.apps import apps as global_apps
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS
from django.db.models import Model, QuerySet
from django.dispatch import Signal
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django.utils.text import capfirst

from octoprovider.core import clock
from octoprovider.core.exceptions import ServiceError
from octoprovider.core.operators import acting_as

logger = logging.getLogger(__name__)

# Beyond this many per-row errors, one summary line says how many more there were.
ERRORS_SHOWN = 20


def short(text: str, length: int = 40) -> str:
    """Show the start of a text (an error), whole on hovering; "-" for none.

    A list's error column shows nothing alarming on a healthy row: a red cross there read as an error.
    """
    if not text:
        return "-"
    return format_html('<span title="{}">{}</span>', text, text if len(text) <= length else text[:length] + "…")


def iso_minute(at: datetime | None) -> str:
    """Write a time as the rest of the console does (ISO, UTC, to the minute), or "-"."""
    return f"{at:%Y-%m-%d %H:%M}" if at is not None else "-"


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


class LiveStatusFilter(admin.SimpleListFilter):
    """Filter by status, hiding by default the rows that are over (terminated, released).

    Ended rows pile up with every test run; operators look for what exists (and costs) now. The
    "all" choice shows the ended ones too. Subclasses name the ended statuses in `ended`.
    """

    title = "status"
    parameter_name = "status"
    ended: tuple[str, ...] = ()

    def lookups(self, request, model_admin):
        return [*model_admin.model.Status.choices, ("all", "all, ended included")]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset.exclude(status__in=self.ended)
        if self.value() == "all":
            return queryset
        return queryset.filter(status=self.value())

    def choices(self, changelist):
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": f"live (not {' or '.join(self.ended)})",
        }
        for value, label in self.lookup_choices:
            yield {
                "selected": self.value() == str(value),
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": label,
            }


def age(since: datetime, until: datetime | None = None) -> str:
    """Say how long ago `since` was (or how long it lasted, up to `until`), short: "3 d 4 h", "2 h 05 min"."""
    seconds = max(0, int(((until or clock.now()) - since).total_seconds()))
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min"
    return f"{seconds} s"


# --- who did what: every console action in Django's LogEntry and in the audit log ------------------

# Sent after each action an operator ran from the console: `username`, `action` (the admin action's
# name, "reconcile pass", "add", "change", "delete"), `target` (our id, or what else it acted on) and
# `outcome` ("ok", or the error's code). The audit log lives in operations, above every layer whose
# admin sends this.
console_action_done = Signal()


def record_console_action(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    *,
    action: str,
    obj: Model | None,
    outcome: str = "ok",
    message: str,
) -> None:
    """Record an operator's action on `obj` (or on no one row): Django's LogEntry and the audit log.

    LogEntry is what the console's "Recent actions" shows; it needs an object only to link to it.
    """
    if obj is not None:
        LogEntry.objects.log_actions(request.user.pk, [obj], CHANGE, message, single_object=True)
        target = audit_target(modeladmin, obj)
    else:
        LogEntry.objects.create(
            user_id=request.user.pk,
            content_type=ContentType.objects.get_for_model(modeladmin.model, for_concrete_model=False),
            object_repr=action,
            action_flag=CHANGE,
            change_message=message,
        )
        target = ""
    _announce(request, action=action, target=target, outcome=outcome)


def audit_target(modeladmin: admin.ModelAdmin, obj: Model) -> str:
    """Name `obj` in the audit log: our id for what mirrors Hetzner, else what `audit_target` says."""
    describe = getattr(modeladmin, "audit_target", None)
    return describe(obj) if describe is not None else str(obj.pk)


def _announce(request: HttpRequest, *, action: str, target: str, outcome: str) -> None:
    console_action_done.send(
        sender=None, username=request.user.get_username(), action=action, target=target, outcome=outcome
    )


class AuditedModelAdmin(admin.ModelAdmin):
    """A model operators edit by hand (a catalogue override, an API token): each add, change and
    delete goes to the audit log too, as Django already writes it to LogEntry."""

    def audit_target(self, obj: Model) -> str:
        return f"{self.opts.verbose_name} {obj}"

    def log_addition(self, request, obj, message):
        entries = super().log_addition(request, obj, message)
        _announce(request, action="add", target=self.audit_target(obj), outcome="ok")
        return entries

    def log_change(self, request, obj, message):
        entries = super().log_change(request, obj, message)
        if message:  # Django logs a save that changed nothing too ("No fields changed.")
            _announce(request, action="change", target=self.audit_target(obj), outcome="ok")
        return entries

    def log_deletions(self, request, queryset):
        entries = super().log_deletions(request, queryset)
        for obj in queryset:
            _announce(request, action="delete", target=self.audit_target(obj), outcome="ok")
        return entries


# --- the read-only operators' group ------------------------------------------------------------------

READ_ONLY_GROUP = "Operators (read-only)"
# The apps whose models the console shows; the group may view every model of them, and nothing else.
PROJECT_APPS = ("octoprovider", "operations", "instances", "staticips")


def sync_read_only_group(*, apps=global_apps, using: str = DEFAULT_DB_ALIAS) -> None:
    """Give the read-only group exactly the view permissions of the project's models (creating it if need be).

    Run after every `migrate` (a post_migrate handler), so that a model added later is visible to the
    group, and a permission given to it by hand that would let it change something is taken back.
    """
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    group, _ = group_model.objects.using(using).get_or_create(name=READ_ONLY_GROUP)
    views = permission_model.objects.using(using).filter(
        content_type__app_label__in=PROJECT_APPS, codename__startswith="view_"
    )
    group.permissions.set(views)


def sync_read_only_group_after_migrate(sender, *, apps=global_apps, using: str = DEFAULT_DB_ALIAS, **kwargs) -> None:
    """post_migrate: keep the read-only group in step with the models, once each project app is migrated."""
    if sender.label not in PROJECT_APPS:
        return
    try:
        apps.get_model("auth", "Group")
    except LookupError:
        return  # `migrate <app>` on a new database left django.contrib.auth unmigrated: nothing to keep yet
    sync_read_only_group(apps=apps, using=using)


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

    One row's failure never stops the others. Returns how many succeeded. Each row's outcome is
    recorded with the operator's name (LogEntry and the audit log), and so are the Hetzner calls it made.
    """
    # The action's name as Django dispatched it (the confirmation page posts it again).
    action = request.POST.get("action", "")
    succeeded = 0
    failures: list[str] = []
    for obj in queryset:
        try:
            with acting_as(request.user.get_username()):
                call(obj)
        except ServiceError as exc:
            failures.append(f"{obj}: {exc.message}")
            outcome, message = exc.code, f"{capfirst(action)}: refused, {exc.message}"
        except Exception as exc:
            logger.exception("Admin action on %s failed", obj)
            failures.append(f"{obj}: unexpected error ({type(exc).__name__}); see the logs.")
            outcome, message = "error", f"{capfirst(action)}: failed, unexpected error ({type(exc).__name__})"
        else:
            succeeded += 1
            outcome, message = "ok", f"{capfirst(action)}: {done}."
        record_console_action(modeladmin, request, action=action, obj=obj, outcome=outcome, message=message)
    name = modeladmin.opts.verbose_name if succeeded == 1 else modeladmin.opts.verbose_name_plural
    if succeeded or not failures:
        modeladmin.message_user(request, f"{capfirst(done)} {succeeded} {name}.", messages.SUCCESS)
    for failure in failures[:ERRORS_SHOWN]:
        modeladmin.message_user(request, failure, messages.ERROR)
    if len(failures) > ERRORS_SHOWN:
        modeladmin.message_user(request, f"… and {len(failures) - ERRORS_SHOWN} more failed.", messages.ERROR)
    return succeeded


# The reconciler lives above the apps whose admin pages offer it; operations registers it at start-up.
_full_pass: Callable[[], object] | None = None


def offer_reconcile_pass(full_pass: Callable[[], object]) -> None:
    """Let the console run `full_pass()` (a full reconcile pass returning its report)."""
    global _full_pass
    _full_pass = full_pass


def run_reconcile_pass(modeladmin: admin.ModelAdmin, request: HttpRequest):
    """Run a full reconcile pass now, as the loop would, and tell the operator what it did."""
    if _full_pass is None:
        raise ImproperlyConfigured("octoprovider.operations is not installed: no reconciler to run.")
    with acting_as(request.user.get_username()):
        report = _full_pass()
    record_console_action(
        modeladmin,
        request,
        action="reconcile pass",
        obj=None,
        outcome="ok" if not report.errors else f"{len(report.errors)} errors",
        message=f"Ran a reconcile pass: {report.changed} changed, {len(report.actions)} actions, "
        f"{len(report.errors)} errors.",
    )
    modeladmin.message_user(
        request,
        f"Reconcile pass: {report.observed} instances observed, {report.changed} changed, "
        f"{report.terminated} found terminated, {len(report.actions)} actions, "
        f"{report.hetzner_calls} Hetzner calls.",
        messages.SUCCESS if not report.errors else messages.WARNING,
    )
    for action in report.actions[:ERRORS_SHOWN]:
        modeladmin.message_user(request, f"Did: {action}", messages.INFO)
    for error in report.errors[:ERRORS_SHOWN]:
        modeladmin.message_user(request, f"Error: {error}", messages.ERROR)
    return report


def report_changes(
    modeladmin: admin.ModelAdmin, request: HttpRequest, before: dict[str, str], queryset: QuerySet
) -> None:
    """Tell the operator which selected rows changed status (e.g. after a refresh from Hetzner)."""
    after = dict(queryset.model.objects.filter(pk__in=list(before)).values_list("pk", "status"))
    changed = [f"{pk}: {before[pk]} → {after.get(pk)}" for pk in before if after.get(pk) != before[pk]]
    if not changed:
        modeladmin.message_user(request, f"None of the {len(before)} selected changed.", messages.INFO)
        return
    modeladmin.message_user(request, f"{len(changed)} of the {len(before)} selected changed:", messages.INFO)
    for line in changed[:ERRORS_SHOWN]:
        modeladmin.message_user(request, line, messages.INFO)
