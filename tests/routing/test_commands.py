import io
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


def test_classify_reports_bad_unicode_by_line_and_classifies_the_rest(v7, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_bytes(
        b'{"messages": [{"role": "user", "content": "hi"}]}\n'
        b'{"messages": [{"role": "user", "content": "a\\ud800b"}]}\n'  # a lone surrogate
        b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n'  # Latin-1, not UTF-8
        b'{"messages": [{"role": "user", "content": "\xec\x84\xa4\xea\xb3\x84"}]}\n'
    )
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="2 line"):
        call_command("classify", "--version", "v7", "--input", str(source), stdout=out, stderr=err)
    assert [json.loads(line)["tier"] for line in out.getvalue().splitlines()] == [
        "weak",
        "strong",  # 설계, on the line after the bad ones
    ]
    assert "line 2: messages[0] contains a lone surrogate" in err.getvalue()
    assert "line 3: not valid UTF-8" in err.getvalue()


def test_classify_reads_stdin_and_writes_stdout(v7, monkeypatch):
    stdin = io.TextIOWrapper(io.BytesIO(b'{"messages": [{"role": "user", "content": "hi"}]}\n'))
    monkeypatch.setattr("sys.stdin", stdin)
    out = StringIO()
    call_command("classify", "--version", "v7", stdout=out)
    assert json.loads(out.getvalue())["tier"] == "weak"


def test_seed_demo_is_idempotent_and_prints_credentials(db, settings):
    settings.EMBEDDED = True  # as bin/console runs it: DATABASE_URL unset
    out = StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", "--keep-passwords", stdout=StringIO())
    assert "admin" in out.getvalue() and "password:" in out.getvalue()
    from routing.models import ClassifierVersion

    v8 = ClassifierVersion.objects.get(name="v8")
    assert v8.parent.name == "v7" and v8.keyword_set.keywords.count() == 20


@pytest.fixture
def production_admin(db, settings):
    """A real database (DATABASE_URL set) whose admin has a password of its own."""
    settings.EMBEDDED = False
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("admin", password="the-real-one")


def test_seed_demo_refuses_outside_the_embedded_mode(production_admin):
    out = StringIO()
    with pytest.raises(CommandError, match="--force"):
        call_command("seed_demo", stdout=out)
    production_admin.refresh_from_db()
    assert production_admin.check_password("the-real-one")
    assert "password:" not in out.getvalue()
    from routing.models import ClassifierVersion

    assert not ClassifierVersion.objects.filter(name="v8").exists()


def test_seed_demo_runs_outside_the_embedded_mode_when_forced(production_admin):
    out = StringIO()
    call_command("seed_demo", "--force", stdout=out)
    production_admin.refresh_from_db()
    assert not production_admin.check_password("the-real-one")
    assert "password:" in out.getvalue()


def test_seed_demo_prints_the_passwords_last_and_keeps_them_in_a_private_file(
    production_admin, settings, tmp_path, monkeypatch
):
    settings.VAR_DIR = tmp_path
    monkeypatch.setenv("LANGFUSE_BASE_URL", "")  # no stand-in: no traffic step
    out = StringIO()

    call_command("seed_demo", "--force", stdout=out)

    printed = out.getvalue().strip().splitlines()
    assert printed[-1].strip().startswith("reviewer")  # the passwords close the output
    kept = (tmp_path / "demo-accounts.txt").read_text().splitlines()
    password = next(line.split()[1] for line in kept if line.startswith("operator "))
    from django.contrib.auth import get_user_model

    assert get_user_model().objects.get(username="operator").check_password(password)
    assert (tmp_path / "demo-accounts.txt").stat().st_mode & 0o077 == 0
