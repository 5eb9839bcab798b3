"""Services: the one place versions change. Immutability is enforced twice: here and in SQL."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from audit.models import AuditEvent
from routing import services
from routing.errors import Conflict, VersionNotEditable
from routing.models import ClassifierVersion, Keyword, VersionStatus

pytestmark = pytest.mark.django_db


def test_the_seeded_v7_is_the_spec_baseline(v7):
    assert v7.status == VersionStatus.FROZEN
    assert (v7.token_threshold, v7.turn_threshold, v7.byte_threshold) == (500, 5, None)
    keywords = list(v7.keyword_set.keywords.all())
    assert len(keywords) == 17
    assert sum(k.language == "ko" for k in keywords) == 7
    assert all(k.rationale for k in keywords)
    assert str(v7.reported_misroute_rate) == "4.20"
    assert str(v7.reported_slm_usage) == "68.00"
    assert str(v7.reported_cost_per_1k) == "5.80"
    assert v7.config["sha256"] == v7.config_sha256
    assert len(v7.config["strong_keywords"]) == 17


def test_copying_makes_a_draft_with_the_same_rules_and_a_parent(draft, v7):
    assert draft.status == VersionStatus.DRAFT
    assert draft.parent == v7
    assert draft.keyword_set_id != v7.keyword_set_id
    assert sorted(draft.config["strong_keywords"]) == sorted(v7.config["strong_keywords"])
    # Same content, other name: the hash covers the version name pods report.
    assert draft.config_sha256 != v7.config_sha256


def test_adding_a_keyword_updates_the_config_and_is_audited(draft, operator):
    services.keyword_add(actor=operator, version=draft, text="Benchmark", rationale="perf asks")
    draft.refresh_from_db()
    assert "benchmark" in draft.config["strong_keywords"]
    event = AuditEvent.objects.filter(action="keyword.add").latest("id")
    assert event.actor == operator
    assert event.after == {"text": "Benchmark", "language": "en", "rationale": "perf asks"}


def test_keyword_language_is_guessed_when_not_given(draft, operator):
    keyword = services.keyword_add(actor=operator, version=draft, text="리뷰")
    assert keyword.language == "ko"


def test_a_duplicate_keyword_is_refused_naming_the_field(draft, operator):
    with pytest.raises(ValidationError) as raised:
        services.keyword_add(actor=operator, version=draft, text="REFACTOR")
    assert "duplicates" in " ".join(raised.value.message_dict["keywords"])


def test_removing_a_keyword(draft, operator):
    keyword = draft.keyword_set.keywords.get(text="complex")
    services.keyword_remove(actor=operator, version=draft, keyword_id=keyword.pk)
    draft.refresh_from_db()
    assert "complex" not in draft.config["strong_keywords"]
    assert AuditEvent.objects.filter(action="keyword.remove", before__text="complex").exists()


def test_updating_thresholds_records_before_and_after(draft, operator):
    services.version_update_draft(actor=operator, version=draft, token_threshold=450)
    draft.refresh_from_db()
    assert draft.config["token_threshold"] == 450
    event = AuditEvent.objects.filter(action="version.update").latest("id")
    assert event.before["token_threshold"] == 500
    assert event.after["token_threshold"] == 450


def test_invalid_thresholds_are_refused_and_nothing_changes(draft, operator):
    with pytest.raises(ValidationError) as raised:
        services.version_update_draft(
            actor=operator, version=draft, token_threshold=0, turn_threshold=10**6
        )
    assert set(raised.value.message_dict) == {"token_threshold", "turn_threshold"}
    draft.refresh_from_db()
    assert (draft.token_threshold, draft.turn_threshold) == (500, 5)


def test_replacing_all_keywords(draft, operator):
    services.version_update_draft(
        actor=operator, version=draft, keywords=[{"text": "alpha"}, {"text": "베타"}]
    )
    assert list(draft.keyword_set.keywords.values_list("text", "language")) == [
        ("alpha", "en"),
        ("베타", "ko"),
    ]


def test_names_must_be_unique_and_well_formed(v7, operator):
    with pytest.raises(ValidationError, match="already exists"):
        services.version_copy(actor=operator, source=v7, name="v7")
    with pytest.raises(ValidationError, match="letters, digits"):
        services.version_copy(actor=operator, source=v7, name="bad name!")


def test_freezing_locks_the_version_and_its_keywords(draft, operator):
    services.version_freeze(actor=operator, version=draft)
    draft.refresh_from_db()
    assert draft.status == VersionStatus.FROZEN and draft.frozen_at and draft.frozen_by == operator
    assert draft.keyword_set.frozen
    with pytest.raises(VersionNotEditable):
        services.keyword_add(actor=operator, version=draft, text="late")
    with pytest.raises(VersionNotEditable):
        services.version_update_draft(actor=operator, version=draft, notes="edit")
    with pytest.raises(VersionNotEditable):
        services.version_freeze(actor=operator, version=draft)
    with pytest.raises(VersionNotEditable):
        services.version_delete_draft(actor=operator, version=draft)


def test_retiring_needs_a_frozen_version(draft, v7, operator):
    with pytest.raises(Conflict):
        services.version_retire(actor=operator, version=draft)
    services.version_retire(actor=operator, version=v7, reason="superseded")
    v7.refresh_from_db()
    assert v7.status == VersionStatus.RETIRED
    assert AuditEvent.objects.filter(action="version.retire", message="superseded").exists()


def test_deleting_a_draft_removes_its_keywords(draft, operator):
    keyword_set_id = draft.keyword_set_id
    services.version_delete_draft(actor=operator, version=draft)
    assert not ClassifierVersion.objects.filter(name="v8").exists()
    assert not Keyword.objects.filter(keyword_set_id=keyword_set_id).exists()
    assert AuditEvent.objects.filter(action="version.delete", object_repr="v8").exists()


def _refused_by_database(sql, params):
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_the_database_refuses_to_change_a_frozen_version(v7):
    _refused_by_database(
        "UPDATE routing_classifierversion SET token_threshold = 900 WHERE id = %s", [v7.pk]
    )
    _refused_by_database(
        "UPDATE routing_classifierversion SET status = 'draft' WHERE id = %s", [v7.pk]
    )
    _refused_by_database("DELETE FROM routing_classifierversion WHERE id = %s", [v7.pk])


def test_the_database_refuses_to_change_a_frozen_keyword_set(v7):
    _refused_by_database(
        "UPDATE routing_keyword SET text = 'x' WHERE keyword_set_id = %s", [v7.keyword_set_id]
    )
    _refused_by_database(
        "DELETE FROM routing_keyword WHERE keyword_set_id = %s", [v7.keyword_set_id]
    )
    _refused_by_database(
        "INSERT INTO routing_keyword (keyword_set_id, text, normalized, language, rationale,"
        " position) VALUES (%s, 'new', 'new', 'en', '', 99)",
        [v7.keyword_set_id],
    )
    _refused_by_database(
        "UPDATE routing_keywordset SET frozen = false WHERE id = %s", [v7.keyword_set_id]
    )


def test_the_database_allows_retiring_a_frozen_version(v7):
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE routing_classifierversion SET status = 'retired', retired_at = now()"
            " WHERE id = %s",
            [v7.pk],
        )
    v7.refresh_from_db()
    assert v7.status == VersionStatus.RETIRED


def test_the_audit_log_is_append_only(draft):
    event = AuditEvent.objects.latest("id")
    _refused_by_database("UPDATE audit_auditevent SET action = 'x' WHERE id = %s", [event.pk])
    _refused_by_database("DELETE FROM audit_auditevent WHERE id = %s", [event.pk])


def test_deleting_a_user_keeps_their_audit_trail(draft, operator):
    count = AuditEvent.objects.filter(actor_name=operator.username).count()
    assert count > 0
    operator.delete()
    assert AuditEvent.objects.filter(actor_name="otto", actor__isnull=True).count() == count


SCORER = {"bias": -1.0, "threshold": 0.0, "features": [["Race", 2.0], ["설계", 0.5]]}


def test_a_draft_takes_a_scorer_in_canonical_form_and_audits_its_summary(draft, operator):
    services.version_update_draft(actor=operator, version=draft, scorer=SCORER)
    draft.refresh_from_db()

    assert draft.scorer == {
        "bias": -1.0,
        "threshold": 0.0,
        "features": [["race", 2.0], ["설계", 0.5]],
    }
    assert draft.config["schema"] == "cascade-classifier/2"
    assert draft.config["scorer"] == draft.scorer
    event = AuditEvent.objects.filter(action="version.update").latest("id")
    assert event.before["scorer"] is None
    assert event.after["scorer"] == {"features": 2, "bias": -1.0, "threshold": 0.0}
    assert event.after["config_sha256"] == draft.config_sha256


def test_a_bad_scorer_is_refused_naming_the_field_and_nothing_changes(draft, operator):
    sha = draft.config_sha256
    bad = {**SCORER, "features": [["race", float("nan")]]}

    with pytest.raises(ValidationError) as err:
        services.version_update_draft(actor=operator, version=draft, scorer=bad)

    assert "finite" in " ".join(err.value.message_dict["scorer.features"])
    draft.refresh_from_db()
    assert draft.scorer is None and draft.config_sha256 == sha


def test_a_scorer_is_copied_frozen_and_guarded_like_the_rest(draft, operator):
    services.version_update_draft(actor=operator, version=draft, scorer=SCORER)
    frozen = services.version_freeze(actor=operator, version=draft)
    child = services.version_copy(actor=operator, source=frozen, name="v9")

    assert child.scorer == frozen.scorer and child.parent == frozen
    with pytest.raises(VersionNotEditable):
        services.version_update_draft(actor=operator, version=frozen, scorer=None)
    cleared = services.version_update_draft(actor=operator, version=child, scorer=None)
    assert cleared.scorer is None and cleared.config["schema"] == "cascade-classifier/1"
    assert "scorer" not in cleared.config
