from django.contrib import admin

from instances.models import Instance


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "region", "location", "type", "server_type", "public_ipv4", "hetzner_id", "created_at"]
    list_filter = ["status", "location", "type", "created_at"]
    search_fields = ["id", "=hetzner_id", "public_ipv4"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "id", "status", "region", "zone", "location", "type", "server_type", "image", "hetzner_id",
        "hetzner_status", "public_ipv4", "created_at", "updated_at", "observed_at", "reboot_requested_at",
        "delete_requested_at", "terminated_at", "last_error",
    ]

    def has_add_permission(self, request):
        # Instances are created by OctoPerf through the API, which never stores userData.
        return False
