from django.db import migrations
from django.utils import timezone


def seed(apps, schema_editor):
    from routing.baseline import ensure_v7

    ClassifierVersion = apps.get_model("routing", "ClassifierVersion")
    if ClassifierVersion.objects.filter(name="v7").exists():
        return
    v7 = ensure_v7(
        ClassifierVersion,
        apps.get_model("routing", "KeywordSet"),
        apps.get_model("routing", "Keyword"),
        timezone.now(),
    )
    apps.get_model("audit", "AuditEvent").objects.create(
        actor_name="system (seed migration)",
        action="version.seed",
        object_type="routing.classifierversion",
        object_id=str(v7.pk),
        object_repr="v7",
        after={"name": "v7", "status": "frozen", "config_sha256": v7.config_sha256},
        message="The spec's v7 production baseline.",
    )


class Migration(migrations.Migration):
    dependencies = [("routing", "0001_initial"), ("audit", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
