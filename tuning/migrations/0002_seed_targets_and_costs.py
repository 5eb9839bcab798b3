"""The spec's SLOs and cost figures as editable defaults.

The targets are this migration's own copy (a data migration must not change when app code
does); tests/test_data_migrations.py checks the copy against tuning/defaults.py."""

from django.db import migrations

SLOS = [
    # metric, low, low_inclusive, high, high_inclusive, min_samples, note
    ("ttft_p95_weak", None, True, 3.0, False, 100, "Weak tier TTFT P95 under 3 s."),
    ("ttft_p95_strong", None, True, 10.0, False, 100, "Strong tier TTFT P95 under 10 s."),
    ("cost_per_1k", None, True, 5.0, False, 1000, "Cost per 1,000 requests under $5.00."),
    ("misroute", None, True, 0.05, True, 100, "Misroute (FN + FP) at most 5% of labels."),
    ("slm_usage", 0.60, True, 0.70, True, 1000, "Weak tier serves 60-70% of requests."),
    ("satisfaction", 4.0, True, None, True, 50, "Mean feedback at least 4.0 of 5."),
    ("thumbs_down", None, True, 0.10, False, 50, "Thumbs-down under 10%."),
]


def seed(apps, schema_editor):
    SloTarget = apps.get_model("tuning", "SloTarget")
    for position, (metric, low, low_inc, high, high_inc, min_samples, note) in enumerate(SLOS):
        SloTarget.objects.get_or_create(
            metric=metric,
            defaults={
                "low": low,
                "low_inclusive": low_inc,
                "high": high,
                "high_inclusive": high_inc,
                "min_samples": min_samples,
                "position": position,
                "note": note,
            },
        )
    apps.get_model("tuning", "CostSettings").objects.get_or_create(pk=1)


class Migration(migrations.Migration):
    dependencies = [("tuning", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
