"""The freeze trigger also refuses a new primary key for a frozen version.

0003 listed the columns a frozen version may not change and left out ``id``; a test now
tries every field of the model (tests/routing/test_freeze_trigger.py). The column lists
are this migration's own, as they were when it was written.
"""

from django.db import migrations

GUARDED = [
    "name", "parent_id", "keyword_set_id", "token_threshold", "turn_threshold",
    "byte_threshold", "notes", "config", "config_sha256", "frozen_at",
    "reported_misroute_rate", "reported_slm_usage", "reported_cost_per_1k",
    "reported_source", "created_at",
]  # fmt: skip


def pg_function(columns: list[str]) -> str:
    new = ", ".join(f"NEW.{c}" for c in columns)
    old = ", ".join(f"OLD.{c}" for c in columns)
    return f"""
CREATE OR REPLACE FUNCTION routing_guard_version() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF OLD.status <> 'draft' THEN
      RAISE EXCEPTION 'classifier version % is % and cannot be deleted', OLD.name, OLD.status
        USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN OLD;
  END IF;
  IF OLD.status <> 'draft' AND (
       ({new}) IS DISTINCT FROM ({old})
       OR (NEW.status <> OLD.status AND NOT (OLD.status = 'frozen' AND NEW.status = 'retired'))
       OR (NEW.frozen_by_id IS NOT NULL AND NEW.frozen_by_id IS DISTINCT FROM OLD.frozen_by_id)
       OR (NEW.created_by_id IS NOT NULL AND NEW.created_by_id IS DISTINCT FROM OLD.created_by_id)
     ) THEN
    RAISE EXCEPTION 'classifier version % is % and immutable', OLD.name, OLD.status
      USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
"""


def sqlite_trigger(columns: list[str]) -> list[str]:
    changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in columns)
    return [
        "DROP TRIGGER IF EXISTS routing_guard_version_update",
        f"""
CREATE TRIGGER routing_guard_version_update BEFORE UPDATE ON routing_classifierversion
WHEN OLD.status <> 'draft' AND (
  {changed}
  OR (NEW.status <> OLD.status AND NOT (OLD.status = 'frozen' AND NEW.status = 'retired'))
  OR (NEW.frozen_by_id IS NOT NULL AND NEW.frozen_by_id IS NOT OLD.frozen_by_id)
  OR (NEW.created_by_id IS NOT NULL AND NEW.created_by_id IS NOT OLD.created_by_id))
BEGIN SELECT RAISE(ABORT, 'classifier version is immutable'); END;
""",
    ]


def install(columns: list[str]):
    def run(apps, schema_editor):
        vendor = schema_editor.connection.vendor
        if vendor == "postgresql":
            schema_editor.execute(pg_function(columns), params=None)
        elif vendor == "sqlite":
            for statement in sqlite_trigger(columns):
                schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("routing", "0003_immutability_triggers")]
    operations = [migrations.RunPython(install(["id", *GUARDED]), install(GUARDED))]
