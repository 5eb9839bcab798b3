from django.db import migrations
from django.utils import timezone


def seed(apps, schema_editor):
    from routing.baseline import ensure_v7

    ensure_v7(
        apps.get_model("routing", "ClassifierVersion"),
        apps.get_model("routing", "KeywordSet"),
        apps.get_model("routing", "Keyword"),
        timezone.now(),
    )


class Migration(migrations.Migration):
    dependencies = [("routing", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
