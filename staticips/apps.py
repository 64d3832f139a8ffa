from django.apps import AppConfig


class StaticipsConfig(AppConfig):
    name = "staticips"
    verbose_name = "Static IPs"
