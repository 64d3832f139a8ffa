from django.apps import AppConfig


class StaticipsConfig(AppConfig):
    name = "staticips"
    verbose_name = "Static IPs"

    def ready(self):
        from instances.services import keep_instances_in_location_when
        from staticips.services import location_holds_static_ips

        # A Primary IP is assigned only to a server in its own location: where static IPs exist,
        # instances are not moved to another location by LOCATION_FALLBACKS.
        keep_instances_in_location_when(location_holds_static_ips)
