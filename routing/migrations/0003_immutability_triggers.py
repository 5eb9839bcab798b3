"""The database refuses changes to frozen versions, frozen keyword sets and their keywords.

The services already refuse; these triggers stop raw SQL, admin slips and future bugs too.
Only two changes to a non-draft version are allowed: frozen -> retired (with retired_at),
and created_by / frozen_by set to NULL when a user is deleted.
"""

from django.db import migrations

PG_FORWARD = r"""
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
       (NEW.name, NEW.parent_id, NEW.keyword_set_id, NEW.token_threshold, NEW.turn_threshold,
        NEW.byte_threshold, NEW.notes, NEW.config, NEW.config_sha256, NEW.frozen_at,
        NEW.reported_misroute_rate, NEW.reported_slm_usage, NEW.reported_cost_per_1k,
        NEW.reported_source, NEW.created_at)
       IS DISTINCT FROM
       (OLD.name, OLD.parent_id, OLD.keyword_set_id, OLD.token_threshold, OLD.turn_threshold,
        OLD.byte_threshold, OLD.notes, OLD.config, OLD.config_sha256, OLD.frozen_at,
        OLD.reported_misroute_rate, OLD.reported_slm_usage, OLD.reported_cost_per_1k,
        OLD.reported_source, OLD.created_at)
       OR (NEW.status <> OLD.status AND NOT (OLD.status = 'frozen' AND NEW.status = 'retired'))
       OR (NEW.frozen_by_id IS NOT NULL AND NEW.frozen_by_id IS DISTINCT FROM OLD.frozen_by_id)
       OR (NEW.created_by_id IS NOT NULL AND NEW.created_by_id IS DISTINCT FROM OLD.created_by_id)
     ) THEN
    RAISE EXCEPTION 'classifier version % is % and immutable', OLD.name, OLD.status
      USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER routing_guard_version BEFORE UPDATE OR DELETE ON routing_classifierversion
  FOR EACH ROW EXECUTE FUNCTION routing_guard_version();

CREATE OR REPLACE FUNCTION routing_guard_keyword_set() RETURNS trigger AS $$
BEGIN
  IF OLD.frozen AND (TG_OP = 'DELETE' OR NEW.frozen IS DISTINCT FROM OLD.frozen
                     OR NEW.name IS DISTINCT FROM OLD.name) THEN
    RAISE EXCEPTION 'keyword set % is frozen', OLD.id USING ERRCODE = 'restrict_violation';
  END IF;
  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER routing_guard_keyword_set BEFORE UPDATE OR DELETE ON routing_keywordset
  FOR EACH ROW EXECUTE FUNCTION routing_guard_keyword_set();

CREATE OR REPLACE FUNCTION routing_guard_keyword() RETURNS trigger AS $$
BEGIN
  IF (TG_OP <> 'INSERT' AND EXISTS (
        SELECT 1 FROM routing_keywordset s WHERE s.id = OLD.keyword_set_id AND s.frozen))
     OR (TG_OP <> 'DELETE' AND EXISTS (
        SELECT 1 FROM routing_keywordset s WHERE s.id = NEW.keyword_set_id AND s.frozen)) THEN
    RAISE EXCEPTION 'the keyword set is frozen' USING ERRCODE = 'restrict_violation';
  END IF;
  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER routing_guard_keyword BEFORE INSERT OR UPDATE OR DELETE ON routing_keyword
  FOR EACH ROW EXECUTE FUNCTION routing_guard_keyword();
"""

PG_REVERSE = r"""
DROP TRIGGER IF EXISTS routing_guard_keyword ON routing_keyword;
DROP FUNCTION IF EXISTS routing_guard_keyword();
DROP TRIGGER IF EXISTS routing_guard_keyword_set ON routing_keywordset;
DROP FUNCTION IF EXISTS routing_guard_keyword_set();
DROP TRIGGER IF EXISTS routing_guard_version ON routing_classifierversion;
DROP FUNCTION IF EXISTS routing_guard_version();
"""

_CHANGED = " OR ".join(
    f"NEW.{c} IS NOT OLD.{c}"
    for c in [
        "name",
        "parent_id",
        "keyword_set_id",
        "token_threshold",
        "turn_threshold",
        "byte_threshold",
        "notes",
        "config",
        "config_sha256",
        "frozen_at",
        "reported_misroute_rate",
        "reported_slm_usage",
        "reported_cost_per_1k",
        "reported_source",
        "created_at",
    ]
)

SQLITE_FORWARD = [
    f"""
CREATE TRIGGER routing_guard_version_update BEFORE UPDATE ON routing_classifierversion
WHEN OLD.status <> 'draft' AND (
  {_CHANGED}
  OR (NEW.status <> OLD.status AND NOT (OLD.status = 'frozen' AND NEW.status = 'retired'))
  OR (NEW.frozen_by_id IS NOT NULL AND NEW.frozen_by_id IS NOT OLD.frozen_by_id)
  OR (NEW.created_by_id IS NOT NULL AND NEW.created_by_id IS NOT OLD.created_by_id))
BEGIN SELECT RAISE(ABORT, 'classifier version is immutable'); END;
""",
    """
CREATE TRIGGER routing_guard_version_delete BEFORE DELETE ON routing_classifierversion
WHEN OLD.status <> 'draft'
BEGIN SELECT RAISE(ABORT, 'classifier version is immutable'); END;
""",
    """
CREATE TRIGGER routing_guard_keyword_set_update BEFORE UPDATE ON routing_keywordset
WHEN OLD.frozen AND (NEW.frozen IS NOT OLD.frozen OR NEW.name IS NOT OLD.name)
BEGIN SELECT RAISE(ABORT, 'keyword set is frozen'); END;
""",
    """
CREATE TRIGGER routing_guard_keyword_set_delete BEFORE DELETE ON routing_keywordset
WHEN OLD.frozen
BEGIN SELECT RAISE(ABORT, 'keyword set is frozen'); END;
""",
    """
CREATE TRIGGER routing_guard_keyword_insert BEFORE INSERT ON routing_keyword
WHEN (SELECT frozen FROM routing_keywordset WHERE id = NEW.keyword_set_id)
BEGIN SELECT RAISE(ABORT, 'keyword set is frozen'); END;
""",
    """
CREATE TRIGGER routing_guard_keyword_update BEFORE UPDATE ON routing_keyword
WHEN (SELECT frozen FROM routing_keywordset WHERE id = OLD.keyword_set_id)
  OR (SELECT frozen FROM routing_keywordset WHERE id = NEW.keyword_set_id)
BEGIN SELECT RAISE(ABORT, 'keyword set is frozen'); END;
""",
    """
CREATE TRIGGER routing_guard_keyword_delete BEFORE DELETE ON routing_keyword
WHEN (SELECT frozen FROM routing_keywordset WHERE id = OLD.keyword_set_id)
BEGIN SELECT RAISE(ABORT, 'keyword set is frozen'); END;
""",
]

SQLITE_TRIGGERS = [
    "routing_guard_version_update",
    "routing_guard_version_delete",
    "routing_guard_keyword_set_update",
    "routing_guard_keyword_set_delete",
    "routing_guard_keyword_insert",
    "routing_guard_keyword_update",
    "routing_guard_keyword_delete",
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
        for name in SQLITE_TRIGGERS:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("routing", "0002_seed_v7")]
    operations = [migrations.RunPython(forward, reverse)]
