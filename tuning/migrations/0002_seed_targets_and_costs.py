"""The spec's SLOs and cost figures as editable defaults."""

from django.db import migrations

from tuning.defaults import seed_slo_targets


def seed(apps, schema_editor):
    seed_slo_targets(apps.get_model("tuning", "SloTarget"))
    apps.get_model("tuning", "CostSettings").objects.get_or_create(pk=1)


class Migration(migrations.Migration):
    dependencies = [("tuning", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
