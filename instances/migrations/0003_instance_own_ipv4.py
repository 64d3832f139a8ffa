from django.db import migrations, models


def holders_have_none(apps, schema_editor):
    # A live server whose public IPv4 is one of our static IPs has none of its own.
    Instance = apps.get_model("instances", "Instance")
    StaticIP = apps.get_model("staticips", "StaticIP")
    holders = StaticIP.objects.exclude(status="released").exclude(holder=None).values("holder_id")
    Instance.objects.filter(pk__in=holders).exclude(status="terminated").update(own_ipv4=False)


class Migration(migrations.Migration):

    dependencies = [
        ("instances", "0002_instance_power_cycle_pending"),
        ("staticips", "0003_static_ip_holder_and_address_history"),
    ]

    operations = [
        migrations.AddField(
            model_name="instance",
            name="own_ipv4",
            field=models.BooleanField(
                default=True,
                help_text="Whether the server has a Primary IPv4 of its own, billed apart. No when it was created "
                          "with, or moved onto, one of our static IPs (which is billed as a static IP).",
            ),
        ),
        migrations.RunPython(holders_have_none, migrations.RunPython.noop),
    ]
