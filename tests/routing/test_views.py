"""Pages: login everywhere, roles, htmx partials, and untrusted text escaped."""

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from routing import services
from routing.models import VersionStatus

pytestmark = pytest.mark.django_db

PAGES = [
    "/versions/",
    "/versions/v7/",
    "/versions/diff/?old=v7&new=v8",
    "/playground/",
]


@pytest.mark.parametrize("path", [*PAGES, "/versions/v8/edit/", "/audit/"])
def test_every_page_needs_a_login(client, draft, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


@pytest.mark.parametrize("path", PAGES)
def test_reviewers_see_the_reading_pages(client, reviewer, draft, path):
    client.force_login(reviewer)
    assert client.get(path).status_code == 200


@pytest.mark.parametrize("path", PAGES)
def test_users_without_a_role_are_turned_away(client, nobody, draft, path):
    client.force_login(nobody)
    response = client.get(path)
    assert response.status_code == 403
    assert b"no role yet" in response.content


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", "/versions/v8/edit/"),
        ("get", "/audit/"),
        ("post", "/versions/v7/copy/"),
        ("post", "/versions/v8/freeze/"),
        ("post", "/versions/v8/delete/"),
        ("post", "/versions/v7/retire/"),
        ("post", "/versions/v8/keywords/"),
        ("post", "/versions/v8/keywords/{kw}/remove/"),
    ],
)
def test_reviewers_cannot_change_anything(client, reviewer, draft, method, path):
    path = path.replace("{kw}", str(draft.keyword_set.keywords.first().pk))
    client.force_login(reviewer)
    assert getattr(client, method)(path, {"name": "v9", "text": "x"}).status_code == 403
    draft.refresh_from_db()
    assert draft.status == VersionStatus.DRAFT
    assert draft.keyword_set.keywords.count() == 17


def test_login_page_logs_in(client, reviewer, v7):
    response = client.post(
        reverse("login"), {"username": "rita", "password": "pw-for-tests-only"}, follow=True
    )
    # Reviewers land on their labeling work (operators on the versions).
    assert response.redirect_chain[-1][0] == reverse("labeling:home")
    assert b"Batches" in response.content


def test_version_list_shows_reported_figures_as_reported(client, reviewer, v7):
    client.force_login(reviewer)
    html = client.get("/versions/").content.decode()
    assert "4.20%" in html and "68.00%" in html and "$5.80" in html
    assert "reported" in html.lower()


def test_version_detail_lists_keywords_with_rationale(client, reviewer, v7):
    client.force_login(reviewer)
    html = client.get("/versions/v7/").content.decode()
    assert "마이그레이션" in html and "security" in html
    assert "stack traces" in html  # a rationale
    assert "Copy to draft" not in html  # reviewers get no write buttons


def test_copy_to_draft_then_edit_via_htmx(client, operator, v7):
    client.force_login(operator)
    response = client.post("/versions/v7/copy/", {"name": "v8"})
    assert response.status_code == 302 and response.url == "/versions/v8/edit/"
    response = client.post(
        "/versions/v8/keywords/",
        {"text": "benchmark", "language": "", "rationale": "perf"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert 'id="keyword-panel"' in response.content.decode()
    assert "benchmark" in response.content.decode()
    assert AuditEvent.objects.filter(action="keyword.add", actor=operator).exists()


def test_an_operator_removes_a_keyword_via_htmx(client, operator, draft):
    keyword = draft.keyword_set.keywords.first()
    client.force_login(operator)
    response = client.post(f"/versions/v8/keywords/{keyword.pk}/remove/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert 'id="keyword-panel"' in response.content.decode()
    assert not draft.keyword_set.keywords.filter(pk=keyword.pk).exists()
    assert AuditEvent.objects.filter(action="keyword.remove", actor=operator).exists()


def test_a_bad_keyword_shows_the_error_in_the_panel(client, operator, draft):
    client.force_login(operator)
    response = client.post("/versions/v8/keywords/", {"text": "Design"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "duplicates" in response.content.decode()


def test_thresholds_form_rejects_zero(client, operator, draft):
    client.force_login(operator)
    response = client.post("/versions/v8/edit/", {"token_threshold": 0, "turn_threshold": 5})
    assert response.status_code == 200
    assert "greater than or equal to 1" in response.content.decode()


def test_editing_a_frozen_version_redirects_with_a_message(client, operator, v7):
    client.force_login(operator)
    response = client.get("/versions/v7/edit/", follow=True)
    assert b"copy it to a draft" in response.content


def test_diff_page_shows_changes_and_markdown(client, operator, draft):
    services.keyword_add(actor=operator, version=draft, text="benchmark")
    services.version_update_draft(actor=operator, version=draft, turn_threshold=6)
    client.force_login(operator)
    html = client.get("/versions/diff/?old=v7&new=v8").content.decode()
    assert "+ benchmark" in html
    assert "| turn_threshold | 5 | 6 |" in html


def test_freeze_from_the_page(client, operator, draft):
    client.force_login(operator)
    client.post("/versions/v8/freeze/")
    draft.refresh_from_db()
    assert draft.status == VersionStatus.FROZEN


def test_playground_classifies_and_escapes_pasted_text(client, reviewer, v7, draft):
    client.force_login(reviewer)
    response = client.post(
        "/playground/",
        {
            "conversation": "user: <script>alert(1)</script> please refactor\nassistant: ok",
            "versions": ["v7", "v8"],
        },
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '<mark class="mark-keyword" title="refactor">refactor</mark>' in html
    assert html.count('class="card result tier-strong"') == 2


def test_playground_reports_bad_json(client, reviewer, v7):
    client.force_login(reviewer)
    response = client.post("/playground/", {"conversation": "[{oops", "versions": ["v7"]})
    assert "Not valid JSON" in response.content.decode()


def test_playground_reports_a_lone_surrogate(client, reviewer, v7):
    client.force_login(reviewer)
    pasted = '[{"role": "user", "content": "a\\ud800b"}]'
    response = client.post("/playground/", {"conversation": pasted, "versions": ["v7"]})
    assert response.status_code == 200
    assert "lone surrogate" in response.content.decode()


def test_audit_log_page_lists_changes(client, operator, draft):
    client.force_login(operator)
    html = client.get("/audit/").content.decode()
    assert "version.create" in html and "v8" in html


def test_reviewers_land_on_labeling_and_operators_on_versions(client, reviewer, operator):
    client.force_login(reviewer)
    assert client.get("/").url == "/labeling/"
    client.force_login(operator)
    assert client.get("/").url == "/versions/"
    client.logout()
    response = client.post("/login/", {"username": "rita", "password": "pw-for-tests-only"})
    assert response.status_code == 302 and client.get(response.url).url == "/labeling/"


def test_the_audit_log_filters_and_shows_values_as_json(client, operator, draft):
    from routing import services as routing_services

    routing_services.keyword_add(
        actor=operator, version=draft, text="벤치마크", language="ko", rationale="perf"
    )
    client.force_login(operator)

    everything = client.get("/audit/").content.decode()
    only_keywords = client.get("/audit/", {"action": "keyword.", "actor": "otto"}).content.decode()
    nobody = client.get("/audit/", {"actor": "no-such-person"}).content.decode()

    assert "version.create" in everything
    assert "keyword.add" in only_keywords and "version.create" not in only_keywords
    assert "Nothing recorded yet" in nobody
    assert "&quot;text&quot;: &quot;벤치마크&quot;" in only_keywords  # indented JSON, escaped
    assert "{'" not in only_keywords  # no Python reprs
    older = client.get("/audit/", {"until": "2000-01-01"}).content.decode()
    assert "Nothing recorded yet" in older
