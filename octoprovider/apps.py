from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, post_save


class OctoproviderConfig(AppConfig):
    name = "octoprovider"
    verbose_name = "octoprovider"

    def ready(self):
        from octoprovider import checks  # noqa: F401  (importing it registers the system checks)
        from octoprovider.core.admin import sync_read_only_group_after_migrate
        from octoprovider.hetzner import catalog
        from octoprovider.models import RegionAlias, ServerTypeMapping

        for model in (RegionAlias, ServerTypeMapping):
            post_save.connect(catalog.forget_overrides, sender=model, dispatch_uid=f"catalog-{model.__name__}-save")
            post_delete.connect(catalog.forget_overrides, sender=model, dispatch_uid=f"catalog-{model.__name__}-delete")
        # After django.contrib.auth's own handler (INSTALLED_APPS order), which creates the permissions.
        post_migrate.connect(sync_read_only_group_after_migrate, dispatch_uid="operators-read-only-group")
