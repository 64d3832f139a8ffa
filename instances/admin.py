from datetime import timedelta

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import OuterRef, Subquery
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from instances import services
from instances.models import Instance
from octoprovider import hetzner
from octoprovider.core import clock
from octoprovider.core.admin import (
    AgeFilter,
    LiveStatusFilter,
    OperatorsModelAdmin,
    age,
    confirmation_page,
    run_per_row,
    run_reconcile_pass,
    short,
)
from octoprovider.core.exceptions import HetznerError


def _describe(instance: Instance) -> str:
    address = instance.public_ipv4 or "no IPv4"
    return (
        f"{instance.id} ({instance.name}): {instance.status}, {instance.server_type} in {instance.location}, {address}"
    )


class StatusFilter(LiveStatusFilter):
    ended = (Instance.Status.TERMINATED,)


def _claim_cutoff():
    return clock.now() - timedelta(seconds=settings.UNCLAIMED_INSTANCE_GRACE)


def _never_claimed(queryset):
    """Instances with a server that OctoPerf never called about: their create's answer was lost."""
    return queryset.filter(claimed_at__isnull=True, hetzner_id__isnull=False, created_at__lt=_claim_cutoff())


def _is_never_claimed(instance: Instance) -> bool:
    """`_never_claimed` of one row already read (the list stays one query)."""
    return instance.claimed_at is None and instance.hetzner_id is not None and instance.created_at < _claim_cutoff()


class ClaimFilter(admin.SimpleListFilter):
    """Find the instances OctoPerf never claimed (UNCLAIMED_INSTANCE_GRACE ends them)."""

    title = "claimed by OctoPerf"
    parameter_name = "claim"

    def lookups(self, request, model_admin):
        return [("never", "never claimed"), ("claimed", "claimed")]

    def queryset(self, request, queryset):
        if self.value() == "never":
            return _never_claimed(queryset)
        if self.value() == "claimed":
            return queryset.filter(claimed_at__isnull=False)
        return queryset


def _hourly_prices() -> hetzner.Prices | None:
    try:
        return hetzner.hourly_prices()  # cached for an hour by the gateway
    except HetznerError:
        return None


@admin.register(Instance)
class InstanceAdmin(OperatorsModelAdmin):
    list_display = [
        "id",
        "status",
        "location",
        "size",
        "ipv4",
        "age",
        "price_per_hour",
        "hetzner_id",
        "has_error",
    ]
    list_filter = [StatusFilter, ClaimFilter, "location", "type", "region", AgeFilter]
    search_fields = ["id", "hetzner_id__exact", "public_ipv4"]
    search_help_text = "Our id (i-…), Hetzner server id or name (octoperf-i-…), or IPv4 address."
    date_hierarchy = "created_at"
    readonly_fields = [
        "id",
        "name",
        "status",
        "region",
        "zone",
        "location",
        "type",
        "server_type",
        "image",
        "hetzner_id",
        "hetzner_status",
        "public_ipv4",
        "own_ipv4",
        "static_ip",
        "age",
        "price_per_hour",
        "created_at",
        "updated_at",
        "claim",
        "observed_at",
        "reboot_requested_at",
        "delete_requested_at",
        "terminated_at",
        "last_error",
    ]
    fields = readonly_fields
    actions = ["reboot", "terminate", "refresh_from_hetzner"]
    change_form_template = "admin/instances/instance/change_form.html"

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        # The detail page offers the list's reboot and terminate actions as buttons (same confirmation).
        extra_context = {
            **(extra_context or {}),
            "can_reboot": self.has_operate_permission(request),
            "can_terminate": self.has_destroy_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_queryset(self, request: HttpRequest):
        # The static IP of each row in the same query: the list stays one query however long it is.
        # Associations belong to staticips, a layer above: reach them through the reverse relation.
        association = Instance._meta.get_field("associations").related_model
        active = association.objects.filter(instance=OuterRef("pk"), status__in=association.ACTIVE)
        return super().get_queryset(request).annotate(active_static_ip=Subquery(active.values("static_ip_id")[:1]))

    @admin.display(description="static IP", ordering="active_static_ip")
    def static_ip(self, instance: Instance) -> str:
        if not instance.active_static_ip:
            return "-"
        url = reverse("admin:staticips_staticip_change", args=[instance.active_static_ip])
        return format_html('<a href="{}">{}</a>', url, instance.active_static_ip)

    @admin.display(description="IPv4 (static IP)", ordering="public_ipv4")
    def ipv4(self, instance: Instance) -> str:
        # The static IP under its address, not in a column of its own: the error column needs the room at 1280 px.
        if not instance.active_static_ip:
            return instance.public_ipv4 or "-"
        url = reverse("admin:staticips_staticip_change", args=[instance.active_static_ip])
        return format_html('{}<br><a href="{}">{}</a>', instance.public_ipv4 or "-", url, instance.active_static_ip)

    @admin.display(description="error")
    def has_error(self, instance: Instance) -> str:
        # The start of it, whole on hovering: a red cross on every healthy row read as an error.
        # A never-claimed instance says so first: the operator's question is why it was ended.
        if _is_never_claimed(instance):
            return short("never claimed" + (f" ({instance.last_error})" if instance.last_error else ""))
        return short(instance.last_error)

    @admin.display(description="claimed by OctoPerf", ordering="claimed_at")
    def claim(self, instance: Instance) -> str:
        if instance.claimed_at is not None:
            return f"{instance.claimed_at:%Y-%m-%d %H:%M:%S}"
        return "never claimed (its create's answer was lost)" if _is_never_claimed(instance) else "not yet"

    @admin.display(description="type", ordering="type")
    def size(self, instance: Instance) -> str:
        return f"{instance.type} ({instance.server_type})"

    @admin.display(description="age", ordering="created_at")
    def age(self, instance: Instance) -> str:
        return age(instance.created_at, instance.terminated_at)

    @admin.display(description="EUR/h")
    def price_per_hour(self, instance: Instance) -> str:
        """Price what Hetzner bills for this instance now: its server, and its own IPv4 if it has one."""
        if instance.status == Instance.Status.TERMINATED:
            return "-"
        prices = _hourly_prices()
        price = prices.instance(instance.server_type, instance.location, own_ipv4=instance.own_ipv4) if prices else None
        if price is None:
            return "?"
        return f"{price.hourly:.4f}" if prices.currency == "EUR" else f"{price.hourly:.4f} {prices.currency}"

    @admin.action(description="Reboot selected instances", permissions=["operate"])
    def reboot(self, request: HttpRequest, queryset):
        page = confirmation_page(
            self,
            request,
            queryset,
            action="reboot",
            title="Reboot instances",
            consequence="Rebooting stops OctoPerf's agent on these hosts for a minute; a test running on them "
            "loses that host meanwhile. Hetzner-busy hosts are rebooted as soon as they are free.",
            describe=_describe,
        )
        if page is not None:
            return page
        run_per_row(
            self,
            request,
            queryset,
            done="rebooted",
            call=lambda instance: services.instance_reboot(instance_id=instance.id),
        )
        return None

    @admin.action(description="Terminate selected instances (delete their Hetzner servers)", permissions=["destroy"])
    def terminate(self, request: HttpRequest, queryset):
        page = confirmation_page(
            self,
            request,
            queryset,
            action="terminate",
            title="Terminate instances",
            consequence="Their Hetzner servers are deleted, with their disks; this cannot be undone. OctoPerf "
            "sees them as shutting-down, then terminated. Their static IPs are kept.",
            describe=_describe,
        )
        if page is not None:
            return page
        run_per_row(
            self,
            request,
            queryset,
            done="terminating",
            call=lambda instance: services.instance_delete(instance_id=instance.id),
        )
        return None

    # --- "Run a reconcile pass now", from the dashboard -------------------------------------------

    def get_urls(self):
        urls = [
            path("reconcile/", self.admin_site.admin_view(self.reconcile_view), name="instances_instance_reconcile")
        ]
        return urls + super().get_urls()

    def reconcile_view(self, request: HttpRequest):
        """Run a full reconcile pass now and go back to the dashboard."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_operate_permission(request):
            self.message_user(request, "You may not run reconcile passes.", messages.ERROR)
        else:
            run_reconcile_pass(self, request)
        return HttpResponseRedirect(reverse("admin:index"))
