"""Logins and tokens in a real browser: a locked-out person sees when to come back; a
reviewer makes an API token, copies it once and revokes it, at desktop and phone width."""

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def rita(transactional_db, django_user_model):
    user = django_user_model.objects.create_user(username="rita", password="pw-for-tests-only")
    user.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    return user


def log_in(page, live_server, password):
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "rita")
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def test_a_locked_out_person_is_told_when_to_come_back(page, live_server, rita, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(2):
        log_in(page, live_server, "wrong")
        expect(page.locator(".error")).to_contain_text("did not match")
    log_in(page, live_server, "wrong")
    expect(page.locator("#lockout")).to_contain_text("Try again in 15 minutes")
    log_in(page, live_server, "pw-for-tests-only")
    expect(page.locator("#lockout")).to_be_visible()
    assert "/login/" in page.url


@pytest.mark.parametrize("width", [1280, 390])
def test_a_reviewer_makes_and_revokes_an_api_token(browser, live_server, rita, width):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        log_in(page, live_server, "pw-for-tests-only")
        page.click("text=API tokens")
        page.fill("input[name=name]", "my-notebook")
        page.fill("input[name=expires_in_days]", "7")
        page.click("text=Create token")
        secret = page.locator("#new-token code").inner_text()
        assert secret.startswith("cc_")
        row = page.locator("#tokens tbody tr", has_text="my-notebook")
        expect(row).to_contain_text(secret[:15])
        assert page.evaluate("document.documentElement.scrollWidth") <= max(width, 390)
        page.goto(f"{live_server.url}/account/tokens/")  # shown once: not on the next view
        expect(page.locator("#new-token")).to_have_count(0)
        page.on("dialog", lambda dialog: dialog.accept())
        row.get_by_role("button", name="Revoke").click()
        expect(page.locator(".messages")).to_contain_text("revoked")
        expect(page.locator("#tokens tbody tr", has_text="my-notebook")).to_have_count(0)
    finally:
        context.close()
