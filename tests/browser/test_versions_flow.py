"""An operator's first tuning step, in a real browser: draft v8, add a keyword, diff, try it."""

import re

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from playwright.sync_api import expect

from routing.baseline import ensure_v7
from routing.models import ClassifierVersion, Keyword, KeywordSet

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def operator_login(transactional_db, django_user_model):
    ensure_v7(ClassifierVersion, KeywordSet, Keyword, timezone.now())
    user = django_user_model.objects.create_user(username="otto", password="pw-for-tests-only")
    user.groups.add(Group.objects.get_or_create(name="operator")[0])
    return "otto", "pw-for-tests-only"


def test_operator_drafts_v8_adds_a_keyword_diffs_and_classifies(page, live_server, operator_login):
    username, password = operator_login
    page.goto(f"{live_server.url}/versions/")
    # Not logged in: the console sends us to the login page first.
    expect(page).to_have_url(f"{live_server.url}/login/?next=/versions/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")

    page.click("text=v7")
    expect(page.locator("#keyword-table tbody tr")).to_have_count(17)
    page.fill(".copy-form input[name=name]", "v8")
    page.click(".copy-form button")
    expect(page).to_have_url(f"{live_server.url}/versions/v8/edit/")

    # htmx swaps the keyword panel in place.
    assert page.evaluate("typeof htmx") == "object"
    page.fill("#keyword-panel input[name=text]", "benchmark")
    page.fill("#keyword-panel input[name=rationale]", "perf comparisons were routed weak")
    page.click("#keyword-panel button.primary")
    expect(page.locator('#keyword-table tr[data-keyword="benchmark"]')).to_be_visible()
    expect(page.locator("#keyword-table tbody tr")).to_have_count(18)
    expect(page).to_have_url(f"{live_server.url}/versions/v8/edit/")

    page.click("text=Diff vs v7")
    expect(page.locator(".kw-list.added")).to_contain_text("+ benchmark")
    expect(page.locator("#diff-markdown")).to_have_value(re.compile(r"Keywords added \(1\)"))

    page.click("nav >> text=Playground")
    page.fill("textarea[name=conversation]", "user: 이 두 정렬 함수 benchmark 결과 비교해줘")
    page.click("button:has-text('Classify')")
    v8 = page.locator('.result[data-version="v8"]')
    v7 = page.locator('.result[data-version="v7"]')
    expect(v8.locator(".tier")).to_have_text("strong")
    expect(v8.locator("mark")).to_have_text("benchmark")
    expect(v7.locator(".tier")).to_have_text("weak")

    # Freezing asks first (a data-confirm handler: the CSP allows no inline script).
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    page.goto(f"{live_server.url}/versions/v8/")
    page.click("button:has-text('Freeze')")
    expect(page.locator("h1 .status")).to_have_text("Frozen")
    assert dialogs == ["Freeze v8? A frozen version can never change again."]
