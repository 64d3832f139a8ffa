from django.apps import AppConfig


class OctoproviderConfig(AppConfig):
    name = "octoprovider"
    verbose_name = "octoprovider"

    def ready(self):
        from octoprovider import checks  # noqa: F401  (registers the system checks)
