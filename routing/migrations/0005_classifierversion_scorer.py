"""Versions may carry a learned scorer (weighted keywords); the freeze trigger guards it.

The column lists are this migration's own, as they were when it was written.
"""

from importlib import import_module

from django.db import migrations, models

# 0004's trigger writers, which take the column list; an applied migration never changes.
install = import_module("routing.migrations.0004_freeze_guards_the_id").install

GUARDED = [
    "id", "name", "parent_id", "keyword_set_id", "token_threshold", "turn_threshold",
    "byte_threshold", "notes", "config", "config_sha256", "frozen_at",
    "reported_misroute_rate", "reported_slm_usage", "reported_cost_per_1k",
    "reported_source", "created_at",
]  # fmt: skip


class Migration(migrations.Migration):
    dependencies = [("routing", "0004_freeze_guards_the_id")]
    operations = [
        migrations.AddField(
            model_name="classifierversion",
            name="scorer",
            field=models.JSONField(
                blank=True, help_text="Weighted substrings, bias and threshold.", null=True
            ),
        ),
        migrations.RunPython(install([*GUARDED, "scorer"]), install(GUARDED)),
    ]
