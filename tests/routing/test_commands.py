import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from routing.engine import build_classifier, verify_canonical

pytestmark = pytest.mark.django_db


def test_export_config_prints_the_canonical_config(v7):
    out = StringIO()
    call_command("export_config", "--version", "v7", stdout=out)
    document = json.loads(out.getvalue())
    verify_canonical(document)
    assert document["version"] == "v7" and document["sha256"] == v7.config_sha256
    assert (
        build_classifier(document).classify([{"role": "user", "content": "debug"}]).tier == "strong"
    )


def test_export_config_of_an_unknown_version_fails(db):
    with pytest.raises(CommandError, match="No version named 'v99'"):
        call_command("export_config", "--version", "v99")


def test_classify_reads_jsonl_and_reports_bad_lines_by_number(v7, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(
        "\n".join(
            [
                json.dumps(
                    {"messages": [{"role": "user", "content": "보안 취약점 security 점검"}]}
                ),
                "{not json",
                json.dumps({"messages": [{"role": "user", "content": "hello"}]}),
                json.dumps({"prompt": "no messages"}),
            ]
        ),
        encoding="utf-8",
    )
    target = tmp_path / "out.jsonl"
    err = StringIO()
    with pytest.raises(CommandError, match="2 line"):
        call_command(
            "classify",
            "--version",
            "v7",
            "--input",
            str(source),
            "--output",
            str(target),
            stderr=err,
        )
    rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert rows == [
        {"tier": "strong", "reasons": ["keyword:security"], "matched_keywords": ["security"]},
        {"tier": "weak", "reasons": ["default"], "matched_keywords": []},
    ]
    assert "line 2:" in err.getvalue() and "line 4:" in err.getvalue()


def test_classify_reads_stdin_and_writes_stdout(v7, monkeypatch):
    monkeypatch.setattr(
        "sys.stdin", StringIO('{"messages": [{"role": "user", "content": "hi"}]}\n')
    )
    out = StringIO()
    call_command("classify", "--version", "v7", stdout=out)
    assert json.loads(out.getvalue())["tier"] == "weak"


def test_seed_demo_is_idempotent_and_prints_credentials(db):
    out = StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", "--keep-passwords", stdout=StringIO())
    assert "admin" in out.getvalue() and "password:" in out.getvalue()
    from routing.models import ClassifierVersion

    v8 = ClassifierVersion.objects.get(name="v8")
    assert v8.parent.name == "v7" and v8.keyword_set.keywords.count() == 20
