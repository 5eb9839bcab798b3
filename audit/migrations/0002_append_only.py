"""The audit log is append-only: the database refuses edits and deletes.

One update is allowed: actor set to NULL when the user is deleted (actor_name keeps who it was).
"""

from django.db import migrations

PG_FORWARD = r"""
CREATE OR REPLACE FUNCTION audit_guard_event() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.actor_id IS NULL AND
     (NEW.created_at, NEW.actor_name, NEW.action, NEW.object_type, NEW.object_id,
      NEW.object_repr, NEW.before, NEW.after, NEW.message)
     IS NOT DISTINCT FROM
     (OLD.created_at, OLD.actor_name, OLD.action, OLD.object_type, OLD.object_id,
      OLD.object_repr, OLD.before, OLD.after, OLD.message) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = 'restrict_violation';
END $$ LANGUAGE plpgsql;

CREATE TRIGGER audit_guard_event BEFORE UPDATE OR DELETE ON audit_auditevent
  FOR EACH ROW EXECUTE FUNCTION audit_guard_event();
"""

PG_REVERSE = r"""
DROP TRIGGER IF EXISTS audit_guard_event ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_guard_event();
"""

_SAME = " AND ".join(
    f"NEW.{c} IS OLD.{c}"
    for c in [
        "created_at",
        "actor_name",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "before",
        "after",
        "message",
    ]
)
SQLITE_FORWARD = [
    f"""
CREATE TRIGGER audit_guard_event_update BEFORE UPDATE ON audit_auditevent
WHEN NOT (NEW.actor_id IS NULL AND {_SAME})
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
""",
    """
CREATE TRIGGER audit_guard_event_delete BEFORE DELETE ON audit_auditevent
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
""",
]


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FORWARD, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE_FORWARD:
            schema_editor.execute(statement)


def reverse(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_REVERSE, params=None)
    elif vendor == "sqlite":
        for name in ("audit_guard_event_update", "audit_guard_event_delete"):
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]
    operations = [migrations.RunPython(forward, reverse)]
