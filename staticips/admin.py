from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Subquery
from django.http import HttpRequest, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from octoprovider.core.admin import (
    AgeFilter,
    LiveStatusFilter,
    OperatorsModelAdmin,
    confirmation_page,
    iso_minute,
    run_per_row,
    short,
)
from octoprovider.core.exceptions import InvalidInput
from octoprovider.hetzner import catalog
from staticips import selectors, services
from staticips.models import AddressChange, Association, StaticIP


def _link(viewname: str, pk: str | None) -> str:
    if not pk:
        return "-"
    return format_html('<a href="{}">{}</a>', reverse(viewname, args=[pk]), pk)


def _use_of_ip():
    """The association that puts the static IP of the outer query in use (`staticips.selectors`' words)."""
    return Association.objects.filter(static_ip=OuterRef("pk"), status__in=Association.ACTIVE, internal=False)


class UseFilter(admin.SimpleListFilter):
    """Tell free static IPs (OctoPerf may associate them) from those in use (OctoPerf associated them)."""

    title = "use"
    parameter_name = "use"

    def lookups(self, request, model_admin):
        return [
            ("free", "free (OctoPerf may associate it; it may be on a server)"),
            ("associated", "in use (associated by OctoPerf)"),
            ("never-used", "never used (never associated by OctoPerf)"),
        ]

    def queryset(self, request, queryset):
        chosen = {
            "never-used": selectors.static_ips_never_used,
            "free": selectors.static_ips_free,
            "associated": selectors.static_ips_in_use,
        }.get(self.value())
        return queryset if chosen is None else queryset.filter(pk__in=chosen().values("pk"))


class StatusFilter(LiveStatusFilter):
    # The docs tell operators to allow-list the addresses of this list: released ones are not theirs any more.
    ended = (StaticIP.Status.RELEASED,)


def _describe_ip(static_ip: StaticIP) -> str:
    on = f", on {static_ip.active_instance}" if getattr(static_ip, "active_instance", None) else ""
    return f"{static_ip.id} ({static_ip.address or 'no address yet'}): {static_ip.status} in {static_ip.location}{on}"


class AddressChangeInline(admin.TabularInline):
    """Which address this ipId stood for, and since when: swaps exchange them between ipIds."""

    model = AddressChange
    fk_name = "static_ip"
    verbose_name = "address"
    verbose_name_plural = "address history (an ipId is a handle on one of the allocated addresses)"
    fields = ["at", "address", "hetzner_id", "swapped_with", "reason"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(StaticIP)
class StaticIPAdmin(OperatorsModelAdmin):
    # Whose server holds each address (given at create) is on each IP's page and in the allow-list:
    # one more column would not fit a 1280 px screen.
    # Status and location share a cell, as the associations' status and step do: eight columns cut the
    # last one off at 1280 px beside the filters, depending on how wide the ids happen to render.
    list_display = ["id", "status_and_location", "address", "instance", "hetzner_id", "created", "has_error"]
    list_filter = [StatusFilter, UseFilter, "location", "region", AgeFilter]
    search_fields = ["id", "hetzner_id__exact", "address"]
    search_help_text = "Our id (ip-…), Hetzner Primary IP id or name (octoperf-ip-…), or address."
    readonly_fields = [
        "id",
        "name",
        "status",
        "region",
        "zone",
        "location",
        "hetzner_id",
        "address",
        "assignee_hetzner_id",
        "instance",
        "holder_link",
        "created_at",
        "updated_at",
        "observed_at",
        "release_requested_at",
        "released_at",
        "last_error",
    ]
    fields = readonly_fields
    inlines = [AddressChangeInline]
    actions = ["release", "refresh_from_hetzner"]
    change_list_template = "admin/staticips/staticip/change_list.html"

    @admin.display(description="on the server of", ordering="holder")
    def holder_link(self, static_ip: StaticIP) -> str:
        return _link("admin:instances_instance_change", static_ip.holder_id)

    # --- the allow-list --------------------------------------------------------------------------

    def get_urls(self):
        urls = [
            path("allow-list/", self.admin_site.admin_view(self.allow_list_view), name="staticips_staticip_allow_list")
        ]
        return urls + super().get_urls()

    def allow_list_view(self, request: HttpRequest):
        """Show the addresses of every allocated static IP, by location (`?format=json` for a script)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        as_json = request.GET.get("format") == "json"
        region, location, error = request.GET.get("location", ""), "", None
        if region:
            # As `manage.py static-ips --region` does: any case, the operator's aliases.
            try:
                location = catalog.location_for(region)
            except InvalidInput as exc:  # its message names the known regions
                error = str(exc)
        if error and as_json:
            return JsonResponse({"error": {"code": "unknown_region", "message": error}}, status=400)
        by_location = {} if error else selectors.static_ip_allow_list(location=location)
        if as_json:
            return JsonResponse({location: [row.address for row in rows] for location, rows in by_location.items()})
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Allow-list: the addresses of the allocated static IPs",
            "by_location": by_location,
            "error": error,
        }
        return TemplateResponse(
            request, "admin/staticips/staticip/allow_list.html", context, status=400 if error else 200
        )

    def get_queryset(self, request: HttpRequest):
        return (
            super()
            .get_queryset(request)
            .annotate(
                active_instance=Subquery(_use_of_ip().values("instance_id")[:1]),
                never_used=Exists(selectors.static_ips_never_used().filter(pk=OuterRef("pk"))),
            )
        )

    @admin.display(description="status, location", ordering="status")
    def status_and_location(self, static_ip: StaticIP) -> str:
        return format_html("{}<br>{}", static_ip.get_status_display(), static_ip.location)

    @admin.display(description="associated with", ordering="active_instance")
    def instance(self, static_ip: StaticIP) -> str:
        if not static_ip.active_instance and getattr(static_ip, "never_used", False):
            # Billed, yet OctoPerf never used it: likely an allocate whose answer it never received.
            return format_html(
                '<span title="{}">never used</span>',
                "Allocated, and never associated by OctoPerf: release it if nobody will.",
            )
        return _link("admin:instances_instance_change", static_ip.active_instance)

    @admin.display(description="created (UTC)", ordering="created_at")
    def created(self, static_ip: StaticIP) -> str:
        return iso_minute(static_ip.created_at)

    @admin.display(description="error")
    def has_error(self, static_ip: StaticIP) -> str:
        return short(static_ip.last_error)

    @admin.action(description="Release selected static IPs (delete their Primary IPs)", permissions=["destroy"])
    def release(self, request: HttpRequest, queryset):
        page = confirmation_page(
            self,
            request,
            queryset,
            action="release",
            title="Release static IPs",
            consequence="Their Hetzner Primary IPs are deleted: the addresses are gone for good, and any firewall "
            "rule that lists them stops matching. An IP still associated with a live instance is "
            "refused: dissociate it first.",
            describe=_describe_ip,
        )
        if page is not None:
            return page
        run_per_row(
            self,
            request,
            queryset,
            done="releasing",
            call=lambda static_ip: services.static_ip_release(static_ip_id=static_ip.id),
        )
        return None


def _describe_association(association: Association) -> str:
    return (
        f"{association.id}: {association.static_ip_id} ({association.static_ip.address}) on "
        f"{association.instance_id} ({association.instance.status}), {association.status}"
    )


@admin.register(Association)
class AssociationAdmin(OperatorsModelAdmin):
    # Six columns beside the filters fit a 1280 px screen: the address under its static IP, the
    # instance's status under it, the step (only while one runs) under the association's status, the
    # end under the start.
    list_display = ["id", "status_and_step", "static_ip_link", "instance_link", "created_ended", "has_error"]
    list_filter = ["status", ("static_ip__location", admin.AllValuesFieldListFilter), AgeFilter]
    search_fields = [
        "id",
        "static_ip__id",
        "instance__id",
        "static_ip__address",
        "instance__public_ipv4",
        "static_ip__hetzner_id__exact",
        "instance__hetzner_id__exact",
    ]
    search_help_text = "Association, static IP or instance id, address, or Hetzner id."
    list_select_related = ["static_ip", "instance"]
    readonly_fields = [f.name for f in Association._meta.fields]
    actions = ["dissociate", "refresh_from_hetzner"]

    @admin.display(description="status (step)", ordering="status")
    def status_and_step(self, association: Association) -> str:
        if association.status == Association.Status.ENDED or not association.step:
            return association.get_status_display()
        return format_html("{}<br>({})", association.get_status_display(), association.step)

    @admin.display(description="static IP (address)", ordering="static_ip")
    def static_ip_link(self, association: Association) -> str:
        return format_html(
            "{}<br>{}",
            _link("admin:staticips_staticip_change", association.static_ip_id),
            association.static_ip.address or "no address yet",
        )

    @admin.display(description="instance (its status)", ordering="instance")
    def instance_link(self, association: Association) -> str:
        return format_html(
            "{}<br>({})", _link("admin:instances_instance_change", association.instance_id), association.instance.status
        )

    @admin.display(description="created, ended", ordering="created_at")
    def created_ended(self, association: Association) -> str:
        ended = f"ended {iso_minute(association.ended_at)}" if association.ended_at else "not ended"
        return format_html("{}<br>{}", iso_minute(association.created_at), ended)

    @admin.display(description="error")
    def has_error(self, association: Association) -> str:
        return short(association.last_error)

    @admin.action(description="Dissociate selected (give the instances their own IPv4 back)", permissions=["operate"])
    def dissociate(self, request: HttpRequest, queryset):
        page = confirmation_page(
            self,
            request,
            queryset.select_related("static_ip", "instance"),
            action="dissociate",
            title="Dissociate static IPs",
            consequence="Each live instance is powered off, its static IP taken away and a fresh IPv4 given, then "
            "powered on: OctoPerf's agent stops meanwhile, and traffic no longer comes from the "
            "whitelisted address. For a terminated instance this is bookkeeping only.",
            describe=_describe_association,
        )
        if page is not None:
            return page
        run_per_row(
            self,
            request,
            queryset,
            done="dissociating",
            call=lambda association: services.static_ip_dissociate(
                static_ip_id=association.static_ip_id,
                instance_id=association.instance_id,
                association_id=association.id,
            ),
        )
        return None
