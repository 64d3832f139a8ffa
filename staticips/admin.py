from django.contrib import admin

from staticips.models import Association, StaticIP


@admin.register(StaticIP)
class StaticIPAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "region", "location", "address", "hetzner_id", "created_at"]
    list_filter = ["status", "location", "created_at"]
    search_fields = ["id", "=hetzner_id", "address"]
    readonly_fields = [f.name for f in StaticIP._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Association)
class AssociationAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "static_ip", "instance", "step", "created_at", "ended_at"]
    list_filter = ["status", "created_at"]
    search_fields = ["id", "static_ip__id", "instance__id", "static_ip__address"]
    list_select_related = ["static_ip", "instance"]
    readonly_fields = [f.name for f in Association._meta.fields]

    def has_add_permission(self, request):
        return False
