from django.contrib import admin, messages
from django.db.models import OuterRef, Subquery
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from instances import services
from instances.models import Instance
from octoprovider.core.admin import (
    AgeFilter,
    OperatorsModelAdmin,
    confirmation_page,
    run_per_row,
    run_reconcile_pass,
)


def _describe(instance: Instance) -> str:
    address = instance.public_ipv4 or "no IPv4"
    return f"{instance.id} ({instance.name}): {instance.status}, {instance.server_type} in {instance.location}, {address}"


@admin.register(Instance)
class InstanceAdmin(OperatorsModelAdmin):
    list_display = [
        "id", "status", "region", "location", "type", "server_type", "public_ipv4", "static_ip", "hetzner_id",
        "created_at", "has_error",
    ]
    list_filter = ["status", "location", "type", "region", AgeFilter]
    search_fields = ["id", "hetzner_id__exact", "public_ipv4"]
    search_help_text = "Our id (i-…), Hetzner server id or name (octoperf-i-…), or IPv4 address."
    date_hierarchy = "created_at"
    readonly_fields = [
        "id", "name", "status", "region", "zone", "location", "type", "server_type", "image", "hetzner_id",
        "hetzner_status", "public_ipv4", "static_ip", "created_at", "updated_at", "observed_at",
        "reboot_requested_at", "delete_requested_at", "terminated_at", "last_error",
    ]
    fields = readonly_fields
    actions = ["reboot", "terminate", "refresh_from_hetzner"]

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

    @admin.display(description="error", boolean=True)
    def has_error(self, instance: Instance) -> bool:
        return bool(instance.last_error)

    @admin.action(description="Reboot selected instances", permissions=["operate"])
    def reboot(self, request: HttpRequest, queryset):
        page = confirmation_page(
            self, request, queryset, action="reboot", title="Reboot instances",
            consequence="Rebooting stops OctoPerf's agent on these hosts for a minute; a test running on them "
                        "loses that host meanwhile. Hetzner-busy hosts are rebooted as soon as they are free.",
            describe=_describe,
        )
        if page is not None:
            return page
        run_per_row(self, request, queryset, done="rebooted",
                    call=lambda instance: services.instance_reboot(instance_id=instance.id))
        return None

    @admin.action(description="Terminate selected instances (delete their Hetzner servers)", permissions=["destroy"])
    def terminate(self, request: HttpRequest, queryset):
        page = confirmation_page(
            self, request, queryset, action="terminate", title="Terminate instances",
            consequence="Their Hetzner servers are deleted, with their disks; this cannot be undone. OctoPerf "
                        "sees them as shutting-down, then terminated. Their static IPs are kept.",
            describe=_describe,
        )
        if page is not None:
            return page
        run_per_row(self, request, queryset, done="terminating",
                    call=lambda instance: services.instance_delete(instance_id=instance.id))
        return None

    # --- "Run a reconcile pass now", from the dashboard -------------------------------------------

    def get_urls(self):
        urls = [path("reconcile/", self.admin_site.admin_view(self.reconcile_view), name="instances_instance_reconcile")]
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
