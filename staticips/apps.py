from django.apps import AppConfig


class StaticipsConfig(AppConfig):
    name = "staticips"
    verbose_name = "Static IPs"

    def ready(self):
        from instances.services import keep_instances_in_location_when, use_public_ipv4_source
        from staticips.selectors import location_has_static_ips
        from staticips.services import PreAttach

        # A Primary IP is assigned only to a server in its own location: where static IPs exist,
        # instances are not moved to another location by LOCATION_FALLBACKS.
        keep_instances_in_location_when(location_has_static_ips)
        # New servers take a spare static IP as their public IPv4 (instances sit below this app).
        use_public_ipv4_source(PreAttach())
