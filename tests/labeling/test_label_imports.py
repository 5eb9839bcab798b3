"""Label import: the service, the command, the API and the upload page."""

import json

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import AuditEvent
from cascade_admin.errors import Conflict
from labeling.models import ImportedLabel, LabelImport, Trace
from labeling.services import label_import_create, label_import_undo
from tuning.selectors import labeled_rows, training_rows

pytestmark = pytest.mark.django_db


def jsonl(*records) -> bytes:
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in records).encode()


def record(text, label, **extra):
    return {"messages": [{"role": "user", "content": text}], "label": label, **extra}


GOOD = jsonl(
    record("이 모듈 아키텍처 설계 검토해줘", "strong", id="a"),
    record("How do I reverse a list?", "weak", id="b"),
    record("deadlock under load, why?", "strong_needed", id="c", comment="race"),
)


def active_labels():
    return {
        row.external_id: row.label
        for row in ImportedLabel.objects.filter(
            replaced_by__isnull=True, label_import__undone_at__isnull=True
        )
    }


def test_an_import_stores_every_row_as_a_training_label(operator):
    outcome = label_import_create(actor=operator, data=GOOD, filename="week12.jsonl")

    assert outcome.label_import.imported == 3
    assert active_labels() == {"a": "strong_needed", "b": "weak_sufficient", "c": "strong_needed"}
    row = ImportedLabel.objects.get(external_id="c")
    assert (row.turn_count, row.comment, row.input_text) == (1, "race", "deadlock under load, why?")
    event = AuditEvent.objects.get(action="label_import.create")
    assert event.after["imported"] == 3 and event.actor == operator


def test_imported_labels_feed_tuning_but_never_traffic_or_headline_estimates(operator):
    label_import_create(actor=operator, data=GOOD, filename="week12.jsonl")

    assert Trace.objects.count() == 0  # nothing looks like traffic
    assert labeled_rows(None, None)[0] == []  # headline estimates
    rows, summary = training_rows()
    assert {r.source for r in rows} == {"imported"}
    assert summary["counts"]["imported"] == {"inputs": 3, "requests": 3}
    rows, _ = training_rows(sources=("headline", "discovery"))
    assert rows == []


def test_a_file_with_a_bad_row_imports_nothing_and_lists_every_bad_row(operator):
    data = jsonl(record("fine", "weak"), record("no label", ""), {"label": "strong"})

    with pytest.raises(ValidationError) as error:
        label_import_create(actor=operator, data=data, filename="x.jsonl")

    rows = error.value.message_dict["rows"]
    assert rows == ["line 2: label: missing", "line 3: messages: missing"]
    assert not LabelImport.objects.exists() and not ImportedLabel.objects.exists()


def test_skip_bad_imports_the_rest_and_keeps_the_skipped_rows(operator):
    data = jsonl(record("fine", "weak"), record("no label", ""), record("good too", "strong"))

    outcome = label_import_create(actor=operator, data=data, filename="x.jsonl", skip_bad=True)

    assert outcome.label_import.imported == 2
    assert outcome.label_import.skipped == [[2, "label: missing"]]


def test_a_dry_run_counts_and_previews_but_writes_nothing(operator):
    label_import_create(actor=operator, data=jsonl(record("old", "weak", id="a")), filename="1")
    before = AuditEvent.objects.count()

    outcome = label_import_create(actor=operator, data=GOOD, filename="2.jsonl", dry_run=True)

    summary = outcome.summary()
    assert summary["valid"] == 3 and summary["imported"] == 0 and summary["replaces"] == 1
    assert [p["line"] for p in summary["preview"]] == [1, 2, 3]
    assert LabelImport.objects.count() == 1 and AuditEvent.objects.count() == before
    assert active_labels() == {"a": "weak_sufficient"}


def test_the_same_file_twice_is_refused_until_the_first_import_is_undone(operator):
    first = label_import_create(actor=operator, data=GOOD, filename="a.jsonl").label_import

    with pytest.raises(Conflict, match="imported already"):
        label_import_create(actor=operator, data=GOOD, filename="renamed.jsonl")

    label_import_undo(actor=operator, label_import=first)
    again = label_import_create(actor=operator, data=GOOD, filename="a.jsonl")
    assert again.label_import.imported == 3


def test_a_row_with_a_known_id_replaces_the_earlier_label_and_undo_brings_it_back(operator):
    first = label_import_create(actor=operator, data=GOOD, filename="1.jsonl").label_import
    newer = jsonl(record("이 모듈 아키텍처 설계 검토해줘", "weak", id="a"))

    second = label_import_create(actor=operator, data=newer, filename="2.jsonl").label_import

    assert active_labels()["a"] == "weak_sufficient"
    assert second.replaced == 1
    audit = AuditEvent.objects.get(action="label_import.create", object_id=str(second.pk))
    assert audit.after["replacements"] == [
        {"id": "a", "import": first.pk, "before": "strong_needed", "after": "weak_sufficient"}
    ]
    label_import_undo(actor=operator, label_import=second)
    assert active_labels()["a"] == "strong_needed"
    assert AuditEvent.objects.filter(action="label_import.undo").count() == 1
    with pytest.raises(Conflict, match="undone already"):
        label_import_undo(actor=operator, label_import=second)


def test_undoing_an_older_import_leaves_a_newer_label_for_the_same_id_in_place(operator):
    first = label_import_create(actor=operator, data=GOOD, filename="1").label_import
    second = label_import_create(
        actor=operator, data=jsonl(record("x", "weak", id="a")), filename="2"
    ).label_import
    label_import_create(actor=operator, data=jsonl(record("y", "strong", id="a")), filename="3")

    label_import_undo(actor=operator, label_import=second)

    assert active_labels()["a"] == "strong_needed"
    assert ImportedLabel.objects.filter(external_id="a", replaced_by__isnull=True).count() == 1
    label_import_undo(actor=operator, label_import=first)
    assert "b" not in active_labels()


def test_an_unreadable_file_is_refused_naming_the_file(operator):
    with pytest.raises(ValidationError) as error:
        label_import_create(actor=operator, data=b"", filename="empty.csv")
    assert "file" in error.value.message_dict


def test_the_command_imports_reports_and_honours_dry_run(operator, tmp_path, capsys):
    path = tmp_path / "labels.jsonl"
    path.write_bytes(GOOD)

    call_command("import_labels", str(path), "--dry-run")
    assert not LabelImport.objects.exists()
    call_command("import_labels", str(path), "--name", "week 12")

    out = capsys.readouterr().out
    assert "would import 3 labels" in out and "imported (import" in out
    assert LabelImport.objects.get().name == "week 12"
    with pytest.raises(CommandError, match="imported already"):
        call_command("import_labels", str(path))


def test_the_command_lists_bad_rows_and_skips_them_when_asked(tmp_path, capsys):
    path = tmp_path / "labels.csv"
    path.write_text('id,input,ground_truth\n1,"refactor this",strong\n2,hello,maybe\n')

    with pytest.raises(CommandError, match="line 3: ground_truth"):
        call_command("import_labels", str(path))
    call_command("import_labels", str(path), "--skip-bad")

    assert "skipped line 3" in capsys.readouterr().out
    assert active_labels() == {"1": "strong_needed"}


def test_the_api_imports_a_multipart_upload_and_undoes_it(api, operator):
    client = api.as_(operator)
    upload = SimpleUploadedFile("w.jsonl", GOOD, content_type="application/jsonl")

    dry = client.post("/api/v1/label-imports/", {"file": upload, "dry_run": "true"})
    assert dry.status_code == 200 and dry.json()["valid"] == 3
    upload.seek(0)
    done = client.post("/api/v1/label-imports/", {"file": upload, "name": "w12"})

    assert done.status_code == 201, done.content
    pk = done.json()["label_import"]["id"]
    assert client.get(f"/api/v1/label-imports/{pk}/").json()["imported"] == 3
    undo = client.post(f"/api/v1/label-imports/{pk}/undo/")
    assert undo.status_code == 200 and undo.json()["undone_at"]
    assert client.post(f"/api/v1/label-imports/{pk}/undo/").status_code == 409


def test_the_api_answers_bad_rows_with_400_listing_them(api, operator):
    bad = SimpleUploadedFile("b.jsonl", jsonl(record("x", "perhaps")))

    response = api.as_(operator).post("/api/v1/label-imports/", {"file": bad})

    assert response.status_code == 400
    assert response.json()["rows"] == [
        "line 1: label: 'perhaps' is not strong/weak/strong_needed/weak_sufficient"
    ]


def test_reviewers_may_list_imports_but_not_import(api, reviewer):
    client = api.as_(reviewer)
    upload = SimpleUploadedFile("w.jsonl", GOOD)

    assert client.get("/api/v1/label-imports/").status_code == 200
    assert client.post("/api/v1/label-imports/", {"file": upload}).status_code == 403
    assert not LabelImport.objects.exists()


def test_the_upload_page_previews_imports_and_undoes(client, operator):
    client.force_login(operator)

    preview = client.post(
        "/labeling/imports/",
        {"file": SimpleUploadedFile("w.jsonl", GOOD), "action": "preview"},
    )
    assert preview.status_code == 200
    assert "이 모듈 아키텍처" in preview.content.decode() and not LabelImport.objects.exists()

    done = client.post("/labeling/imports/", {"file": SimpleUploadedFile("w.jsonl", GOOD)})
    assert done.status_code == 302
    label_import = LabelImport.objects.get()
    page = client.get("/labeling/imports/").content.decode()
    assert "w.jsonl" in page and "3" in page
    client.post(f"/labeling/imports/{label_import.pk}/undo/")
    label_import.refresh_from_db()
    assert label_import.undone_at is not None


def test_the_upload_page_escapes_imported_text(client, operator):
    client.force_login(operator)
    data = jsonl(record("<script>alert(1)</script>", "weak"))

    page = client.post(
        "/labeling/imports/", {"file": SimpleUploadedFile("x.jsonl", data), "action": "preview"}
    ).content.decode()

    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


def test_reviewers_cannot_reach_the_upload_page(client, reviewer):
    client.force_login(reviewer)
    assert client.get("/labeling/imports/").status_code == 403
