"""A reviewer labels a blind batch from the keyboard; a hostile prompt stays inert."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from labeling import services
from labeling.models import BatchKind, Label, Trace
from labeling.sync import input_fingerprint

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
XSS = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2"> 정렬 코드 리뷰'


@pytest.fixture
def blind_batch(transactional_db, django_user_model):
    texts = [XSS, "파이썬 리스트 정렬 방법", "Refactor the payment module across services"]
    for n, text in enumerate(texts):
        Trace.objects.create(
            langfuse_id=f"trace-{n}",
            started_at=T0 + timedelta(minutes=n),
            user_id="u1",
            messages=[{"role": "user", "content": text}],
            input_text=text,
            input_hash=input_fingerprint(text),
            char_count=len(text),
            turn_count=1,
            tier="strong" if n == 2 else "weak",
            matched_keywords=["refactor"] if n == 2 else [],
            output="```python\nsorted(xs)\n```",
        )
    operator = django_user_model.objects.create_user(username="otto", password="x")
    batch = services.batch_create(
        actor=operator,
        kind=BatchKind.HEADLINE,
        period_start=T0,
        period_end=T0 + timedelta(hours=1),
        size=3,
        seed=1,
    )
    reviewer = django_user_model.objects.create_user(username="rita", password="pw-for-tests-only")
    reviewer.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    return batch


def test_reviewer_labels_a_blind_batch_with_the_keyboard(page, live_server, blind_batch):
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{live_server.url}/login/?next=/labeling/batches/{blind_batch.pk}/work/")
    page.fill("input[name=username]", "rita")
    page.fill("input[name=password]", "pw-for-tests-only")
    page.click("button[type=submit]")

    labeled = []
    for key in ("2", "1", "2"):
        expect(page.locator(".blind-note")).to_be_visible()  # blind: no tier before labeling
        expect(page.locator(".tier-pill")).to_have_count(0)
        labeled.append(page.url)
        page.wait_for_load_state()  # the keyboard script is loaded
        page.keyboard.press(key)
        expect(page).not_to_have_url(labeled[-1])

    # All three labeled: back on the batch page, 100% done.
    expect(page.locator(".messages")).to_contain_text("Nothing left for you")
    values = dict(Label.objects.values_list("item__trace__langfuse_id", "value"))
    assert sorted(values.values()) == ["strong_needed", "strong_needed", "weak_sufficient"]

    # After labeling, the item reveals the tier; "u" takes back the last label, wherever
    # the reviewer is, and shows its item again.
    page.goto(labeled[0])
    expect(page.locator(".tier-pill")).to_be_visible()
    page.keyboard.press("?")
    expect(page.locator("#cheatsheet")).to_be_visible()
    page.keyboard.press("u")
    expect(page).to_have_url(labeled[2])
    expect(page.locator(".blind-note")).to_be_visible()  # unlabeled again: blind again
    assert Label.objects.count() == 2

    # The hostile prompt is shown as text and never ran.
    xss_position = blind_batch.items.get(trace__langfuse_id="trace-0").position
    page.goto(f"{live_server.url}/labeling/batches/{blind_batch.pk}/items/{xss_position}/")
    expect(page.locator(".conversation .prose").first).to_contain_text(
        "<script>window.pwned = 1</script>"
    )
    assert page.evaluate("window.pwned === undefined")
    assert dialogs == []


def start_work_as_rita(page, live_server, batch) -> None:
    """Log in as the reviewer and land on the first item of ``batch``, blind."""
    page.goto(f"{live_server.url}/login/?next=/labeling/batches/{batch.pk}/work/")
    page.fill("input[name=username]", "rita")
    page.fill("input[name=password]", "pw-for-tests-only")
    page.click("button[type=submit]")
    expect(page.locator(".blind-note")).to_be_visible()


def test_a_skipped_item_stays_blind_when_the_reviewer_goes_back(page, live_server, blind_batch):
    start_work_as_rita(page, live_server, blind_batch)
    skipped = page.url
    page.wait_for_load_state()  # the keyboard script is loaded
    page.keyboard.press("s")
    expect(page).not_to_have_url(skipped)
    assert Label.objects.get().value == "skipped"

    page.wait_for_load_state()
    page.keyboard.press("u")  # the skip is taken back: the item just passed shows again
    expect(page).to_have_url(skipped)
    assert not Label.objects.exists()
    expect(page.locator(".blind-note")).to_be_visible()
    expect(page.locator(".tier-pill")).to_have_count(0)
    expect(page.locator("#routing-panel")).not_to_contain_text("Matched")

    # Judging it after all is still blind; only the judgement reveals the tier.
    page.wait_for_load_state()
    page.keyboard.press("1")
    expect(page).not_to_have_url(skipped)
    page.goto(skipped)
    expect(page.locator(".tier-pill")).to_be_visible()


def test_undo_takes_back_a_label_so_the_item_can_be_labeled_again(page, live_server, blind_batch):
    start_work_as_rita(page, live_server, blind_batch)
    first = page.url
    page.wait_for_load_state()  # the keyboard script is loaded
    page.keyboard.press("1")
    expect(page).not_to_have_url(first)
    label = Label.objects.get()
    assert label.value == "weak_sufficient"

    page.wait_for_load_state()
    page.keyboard.press("u")
    expect(page).to_have_url(first)  # the same item, to label afresh
    expect(page.locator(".messages")).to_contain_text("undone")
    expect(page.locator("#label-form input[name=value]:checked")).to_have_count(0)
    expect(page.locator(".blind-note")).to_be_visible()  # no judgement: the tier stays hidden
    assert not Label.objects.exists()

    page.wait_for_load_state()
    page.keyboard.press("2")
    expect(page).not_to_have_url(first)
    relabeled = Label.objects.get()
    assert relabeled.value == "strong_needed"
    assert relabeled.item_id == label.item_id and relabeled.pk != label.pk


def test_the_labeling_pages_work_at_phone_width(browser, live_server, blind_batch):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/login/?next=/labeling/")
        page.fill("input[name=username]", "rita")
        page.fill("input[name=password]", "pw-for-tests-only")
        page.click("button[type=submit]")
        page.wait_for_url("**/labeling/")
        page.goto(f"{live_server.url}/labeling/batches/{blind_batch.pk}/items/1/")

        conversation = page.locator("section.conversation").bounding_box()
        label_card = page.locator("#label-form").bounding_box()
        assert conversation["width"] > 300  # the whole width, not a 30 px sliver
        assert label_card["width"] > 300
        assert label_card["y"] >= conversation["y"] + conversation["height"]  # below, no overlap
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways ({width} px)"
        for link in page.locator("header.topbar nav a").all():
            box = link.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390

        page.goto(f"{live_server.url}/labeling/")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.goto(f"{live_server.url}/labeling/batches/{blind_batch.pk}/")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()


def test_reasons_have_keys_and_esc_leaves_the_comment(page, live_server, blind_batch):
    start_work_as_rita(page, live_server, blind_batch)
    page.wait_for_url("**/items/**")
    page.wait_for_load_state("load")  # the keys' script has run
    first_reason = page.locator("input[name=reasons]").first

    page.keyboard.press("3")
    expect(first_reason).to_be_checked()
    page.keyboard.press("3")
    expect(first_reason).not_to_be_checked()
    page.locator("textarea[name=comment]").click()
    page.keyboard.type("2 s u")  # typed into the comment, not taken as keys
    page.keyboard.press("Escape")
    page.keyboard.press("4")
    expect(page.locator("input[name=reasons]").nth(1)).to_be_checked()
    expect(page.locator("textarea[name=comment]")).to_have_value("2 s u")
    page.keyboard.press("?")
    expect(page.locator("#cheatsheet")).to_contain_text("Esc")
    expect(page.locator("#cheatsheet")).to_contain_text("tick or untick a reason")


def test_an_operator_settles_a_dispute_with_a_key_after_confirming(
    page, live_server, blind_batch, django_user_model
):
    item = blind_batch.items.select_related("trace").first()
    rita = django_user_model.objects.get(username="rita")
    rob = django_user_model.objects.create_user(username="rob", password="x")
    rob.groups.add(*rita.groups.all())
    item.reviews_required = 2
    item.save(update_fields=["reviews_required"])
    services.label_submit(reviewer=rita, item=item, value="strong_needed", comment="hard")
    services.label_submit(reviewer=rob, item=item, value="weak_sufficient", comment="easy")
    otto = django_user_model.objects.get(username="otto")
    otto.set_password("pw-for-tests-only")
    otto.save()
    otto.groups.add(Group.objects.get_or_create(name="operator")[0])
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))

    page.goto(f"{live_server.url}/login/?next=/labeling/adjudication/{item.pk}/")
    page.fill("input[name=username]", "otto")
    page.fill("input[name=password]", "pw-for-tests-only")
    page.click("button[type=submit]")
    page.wait_for_url(f"**/labeling/adjudication/{item.pk}/")
    page.wait_for_load_state("load")  # the keys' script has run
    expect(page.locator(".reviewer-label")).to_have_count(2)
    expect(page.locator("#adjudicate")).to_contain_text("hard")
    page.keyboard.press("2")

    expect(page).to_have_url(f"{live_server.url}/labeling/adjudication/")
    assert dialogs and dialogs[0].startswith("Settle this item?")
    item.refresh_from_db()
    assert item.final_value == "strong_needed"
