"""Create the "Operators (read-only)" group: view permissions on the project's models, nothing else.

On a fresh database the permissions do not exist yet while migrations run (Django creates them after
`migrate`): the post_migrate handler of `octoprovider.apps` (core.admin.sync_read_only_group) then
grants them, and keeps the group in step with every model added later.
"""

from django.db import migrations

GROUP = "Operators (read-only)"
PROJECT_APPS = ("octoprovider", "instances", "staticips")


def create_group(apps, schema_editor):
    db = schema_editor.connection.alias
    group, _ = apps.get_model("auth", "Group").objects.using(db).get_or_create(name=GROUP)
    views = apps.get_model("auth", "Permission").objects.using(db).filter(
        content_type__app_label__in=PROJECT_APPS, codename__startswith="view_"
    )
    group.permissions.set(views)


def delete_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.using(schema_editor.connection.alias).filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("octoprovider", "0008_console_audit_and_token_scopes"),
    ]

    operations = [migrations.RunPython(create_group, delete_group)]
