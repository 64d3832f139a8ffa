from django.db import migrations, models


def claimed_before(apps, schema_editor):
    # Rows older than the field were known to OctoPerf as far as anyone can tell: never end them as unclaimed.
    Instance = apps.get_model("instances", "Instance")
    Instance.objects.filter(claimed_at__isnull=True).update(claimed_at=models.F("created_at"))


class Migration(migrations.Migration):

    dependencies = [
        ("instances", "0003_instance_own_ipv4"),
    ]

    operations = [
        migrations.AddField(
            model_name="instance",
            name="claimed_at",
            field=models.DateTimeField(
                blank=True, null=True,
                help_text="When OctoPerf first called with this id (a state poll, reboot, delete or associate): it "
                          "received the create's answer. Never set: the create's answer was lost.",
            ),
        ),
        migrations.RunPython(claimed_before, migrations.RunPython.noop),
    ]
