"""Batches, claims, labels, agreement, adjudication, write-back and the reviewer's pages."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from cascade_admin.errors import Conflict
from labeling import services
from labeling.langfuse_adapter import LangfuseAdapter, RetryPolicy
from labeling.models import Batch, BatchKind, Label, LabelValue
from labeling.selectors import batch_agreement, batch_progress, cohens_kappa, disagreements
from labeling.writeback import final_push, final_score_id, label_push, score_id

from .conftest import TRAFFIC_END

pytestmark = pytest.mark.django_db


@pytest.fixture
def batch(synced, make_batch):
    return make_batch(size=20, seed=5, double_review_share=0.25)


def test_a_batch_records_its_strategy_and_seed(batch):
    assert batch.seed == 5 and batch.strategy["kind"] == "headline"
    assert batch.blind is True  # headline batches are blind by default
    assert batch.items.count() == 20
    assert batch.items.filter(reviews_required=2).count() == 5
    assert AuditEvent.objects.filter(action="batch.create", object_id=str(batch.pk)).exists()


def test_bad_batch_requests_name_the_field(synced, operator):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as raised:
        services.batch_create(
            actor=operator,
            kind="nope",
            period_start=TRAFFIC_END,
            period_end=TRAFFIC_END - timedelta(days=1),
            size=0,
        )
    assert set(raised.value.message_dict) == {"kind", "size", "period_end"}


def test_two_reviewers_never_get_the_same_single_review_item(batch, reviewer, make_user):
    other = make_user("rob", "reviewer")
    first = services.item_claim_next(batch=batch, reviewer=reviewer)
    second = services.item_claim_next(batch=batch, reviewer=other)
    assert first.pk != second.pk
    # Asking again returns the item already held, not a new one.
    assert services.item_claim_next(batch=batch, reviewer=reviewer).pk == first.pk


def test_labeling_moves_on_and_counts_progress(batch, reviewer):
    item = services.item_claim_next(batch=batch, reviewer=reviewer)
    services.label_submit(reviewer=reviewer, item=item, value=LabelValue.STRONG_NEEDED)
    following = services.item_claim_next(batch=batch, reviewer=reviewer)
    assert following.pk != item.pk
    services.label_submit(reviewer=reviewer, item=following, value=LabelValue.SKIPPED)
    progress = batch_progress(batch)
    assert (progress.labels, progress.skipped) == (1, 1)
    assert progress.done == (1 if item.reviews_required == 1 else 0)


def test_relabeling_changes_the_one_label_and_is_audited(batch, reviewer):
    item = batch.items.first()
    services.label_submit(reviewer=reviewer, item=item, value=LabelValue.WEAK_SUFFICIENT)
    services.label_submit(
        reviewer=reviewer, item=item, value=LabelValue.STRONG_NEEDED, comment="second look"
    )
    assert Label.objects.filter(item=item).count() == 1
    assert (
        AuditEvent.objects.filter(action="label.change").get().before["value"] == "weak_sufficient"
    )


def test_the_database_allows_one_label_per_reviewer_and_item(batch, reviewer):
    item = batch.items.first()
    Label.objects.create(item=item, reviewer=reviewer, value=LabelValue.WEAK_SUFFICIENT)
    with pytest.raises(IntegrityError), transaction.atomic():
        Label.objects.create(item=item, reviewer=reviewer, value=LabelValue.STRONG_NEEDED)


def test_a_single_review_item_refuses_a_second_reviewer(batch, reviewer, make_user):
    item = batch.items.filter(reviews_required=1).first()
    services.label_submit(reviewer=reviewer, item=item, value=LabelValue.WEAK_SUFFICIENT)
    with pytest.raises(Conflict):
        services.label_submit(
            reviewer=make_user("rob", "reviewer"), item=item, value=LabelValue.STRONG_NEEDED
        )


def test_disagreements_reach_adjudication_and_kappa_is_computed(
    batch, reviewer, make_user, operator
):
    other = make_user("rob", "reviewer")
    doubled = list(batch.items.filter(reviews_required=2))
    for n, item in enumerate(doubled):
        services.label_submit(reviewer=reviewer, item=item, value=LabelValue.WEAK_SUFFICIENT)
        value = LabelValue.STRONG_NEEDED if n == 0 else LabelValue.WEAK_SUFFICIENT
        services.label_submit(reviewer=other, item=item, value=value)
    agreement = batch_agreement(batch)
    assert agreement.pairs == len(doubled) and agreement.agreed == len(doubled) - 1
    [open_item] = disagreements(batch)
    assert open_item.pk == doubled[0].pk
    services.item_adjudicate(actor=operator, item=open_item, value=LabelValue.STRONG_NEEDED)
    assert list(disagreements(batch)) == []


def test_only_open_disagreements_can_be_adjudicated(batch, reviewer, make_user, operator):
    other = make_user("rob", "reviewer")
    single = batch.items.filter(reviews_required=1).first()
    services.label_submit(reviewer=reviewer, item=single, value=LabelValue.WEAK_SUFFICIENT)
    agreed, disputed = batch.items.filter(reviews_required=2)[:2]
    for item, second in ((agreed, "weak_sufficient"), (disputed, "strong_needed")):
        services.label_submit(reviewer=reviewer, item=item, value=LabelValue.WEAK_SUFFICIENT)
        services.label_submit(reviewer=other, item=item, value=second)
    for item in (single, agreed):
        with pytest.raises(Conflict, match="not disputed"):
            services.item_adjudicate(actor=operator, item=item, value=LabelValue.STRONG_NEEDED)
    services.item_adjudicate(actor=operator, item=disputed, value=LabelValue.STRONG_NEEDED)
    with pytest.raises(Conflict, match="settled already"):
        services.item_adjudicate(actor=operator, item=disputed, value=LabelValue.WEAK_SUFFICIENT)
    single.refresh_from_db()
    assert single.final_value == "" and single.adjudicated_at is None


def test_a_settled_item_is_final_for_its_reviewers(batch, reviewer, make_user, operator):
    other = make_user("rob", "reviewer")
    item = batch.items.filter(reviews_required=2).first()
    services.label_submit(reviewer=reviewer, item=item, value=LabelValue.WEAK_SUFFICIENT)
    services.label_submit(reviewer=other, item=item, value=LabelValue.STRONG_NEEDED)
    services.item_adjudicate(actor=operator, item=item, value=LabelValue.STRONG_NEEDED)

    with pytest.raises(Conflict, match="settled this item"):
        services.label_submit(reviewer=reviewer, item=item, value=LabelValue.STRONG_NEEDED)

    assert Label.objects.get(item=item, reviewer=reviewer).value == "weak_sufficient"


@pytest.fixture
def eager_tasks():
    """Queued tasks run here and now, in this test's transaction."""
    from cascade_admin.celery import app

    before = app.conf.task_always_eager
    app.conf.update(task_always_eager=True)
    yield
    app.conf.update(task_always_eager=before)


@pytest.fixture(params=["v4", "v3"])
def scores_at(request, langfuse, traffic, monkeypatch):
    """Where write-backs go: the v4 stand-in the batch was synced from, or a Langfuse v3
    stand-in holding the same traffic (one score per write, 202 deletes)."""
    from labeling.standin import Store, start_in_thread

    if request.param == "v4":
        yield langfuse
        return
    store = Store(api_generation="v3")
    store.load(traffic)
    url, stop = start_in_thread(store)
    monkeypatch.setenv("LANGFUSE_BASE_URL", url)
    yield store
    stop()


def test_an_adjudicated_value_is_queued_and_written_back_to_langfuse(
    batch, reviewer, make_user, operator, scores_at, eager_tasks, django_capture_on_commit_callbacks
):
    langfuse = scores_at
    from labeling.tasks import push_pending_labels

    other = make_user("rob", "reviewer")
    item = batch.items.filter(reviews_required=2).first()
    services.label_submit(reviewer=reviewer, item=item, value=LabelValue.WEAK_SUFFICIENT)
    services.label_submit(reviewer=other, item=item, value=LabelValue.STRONG_NEEDED)
    with django_capture_on_commit_callbacks(execute=True) as queued:
        services.item_adjudicate(actor=operator, item=item, value=LabelValue.STRONG_NEEDED)
    assert len(queued) == 1
    item.refresh_from_db()
    assert item.final_sent_at is not None and item.final_error == ""
    [score] = [s for s in langfuse.scores() if s["id"] == final_score_id(item)]
    assert score["subject"] == {"kind": "trace", "id": item.trace.langfuse_id}
    assert (score["name"], score["value"], score["source"]) == (
        "routing_label",
        "strong_needed",
        "ANNOTATION",
    )
    assert score["metadata"] == {"final": True, "adjudicated_by": "otto", "batch": batch.pk}

    # A push that never happened (broker down) is sent by the beat's sweep; once, by its id.
    past = item.adjudicated_at - timedelta(hours=1)
    type(item).objects.filter(pk=item.pk).update(final_sent_at=None, adjudicated_at=past)
    assert push_pending_labels() == 1
    item.refresh_from_db()
    assert item.final_sent_at is not None
    assert len([s for s in langfuse.scores() if s["id"] == final_score_id(item)]) == 1


@pytest.mark.parametrize(
    "pairs,kappa",
    [
        ([("weak_sufficient", "weak_sufficient"), ("strong_needed", "strong_needed")], 1.0),
        ([("weak_sufficient", "strong_needed"), ("strong_needed", "weak_sufficient")], -1.0),
        ([("weak_sufficient", "weak_sufficient")] * 3, None),
        ([], None),
    ],
)
def test_cohens_kappa(pairs, kappa):
    assert cohens_kappa(pairs) == kappa


def test_labels_are_written_back_to_langfuse_as_scores(batch, reviewer, scores_at):
    item = batch.items.first()
    label = services.label_submit(
        reviewer=reviewer, item=item, value=LabelValue.STRONG_NEEDED, comment="multi-file"
    )
    adapter = LangfuseAdapter.from_env(retry=RetryPolicy(attempts=2), sleep=lambda s: None)
    label = label_push(label.pk, adapter=adapter)
    assert label.langfuse_sent_at is not None and label.langfuse_error == ""
    [score] = adapter.fetch_scores([item.trace.langfuse_id], name="routing_label")
    assert score.id == score_id(label)
    assert score.value == "strong_needed" and score.source == "ANNOTATION"
    assert score.comment == "multi-file"


def test_the_label_score_name_comes_from_the_environment(batch, reviewer, langfuse, monkeypatch):
    monkeypatch.setenv("LANGFUSE_LABEL_SCORE_NAME", "console_review")
    item = batch.items.first()
    label = services.label_submit(reviewer=reviewer, item=item, value=LabelValue.STRONG_NEEDED)
    label = label_push(label.pk)  # its own adapter, from the environment
    assert label.langfuse_sent_at is not None, label.langfuse_error
    [score] = [s for s in langfuse.scores() if s["id"] == score_id(label)]
    assert score["name"] == "console_review"
    assert [c["name"] for c in langfuse.score_configs()] == ["console_review"]


def test_final_push_keeps_a_permanent_error_on_the_item(
    batch, reviewer, make_user, operator, langfuse, monkeypatch
):
    item = batch.items.filter(reviews_required=2).first()
    services.label_submit(reviewer=reviewer, item=item, value=LabelValue.WEAK_SUFFICIENT)
    services.label_submit(
        reviewer=make_user("rob", "reviewer"), item=item, value=LabelValue.STRONG_NEEDED
    )
    services.item_adjudicate(actor=operator, item=item, value=LabelValue.WEAK_SUFFICIENT)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "wrong")
    item = final_push(item.pk, adapter=LangfuseAdapter.from_env(sleep=lambda s: None))
    assert item.final_sent_at is None and "401" in item.final_error


def test_a_permanent_langfuse_error_is_kept_on_the_label(batch, reviewer, langfuse, monkeypatch):
    label = services.label_submit(
        reviewer=reviewer, item=batch.items.first(), value=LabelValue.WEAK_SUFFICIENT
    )
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "wrong")
    label = label_push(label.pk, adapter=LangfuseAdapter.from_env(sleep=lambda s: None))
    assert label.langfuse_sent_at is None and "401" in label.langfuse_error


# --- pages -------------------------------------------------------------------------------


def test_labeling_pages_need_a_login(client, batch):
    for path in (
        "/labeling/",
        f"/labeling/batches/{batch.pk}/",
        f"/labeling/batches/{batch.pk}/items/1/",
    ):
        assert client.get(path).status_code == 302


def test_reviewers_label_but_cannot_draw_batches_sync_or_adjudicate(client, batch, reviewer):
    client.force_login(reviewer)
    assert client.get(f"/labeling/batches/{batch.pk}/items/1/").status_code == 200
    assert client.post("/labeling/batches/new/", {"kind": "headline"}).status_code == 403
    assert client.post("/labeling/sync/").status_code == 403
    assert client.get("/labeling/adjudication/").status_code == 403
    item = batch.items.first()
    assert (
        client.post(f"/labeling/adjudication/{item.pk}/", {"value": "strong_needed"}).status_code
        == 403
    )


def test_work_sends_the_reviewer_to_their_next_item_and_label_posts_move_on(
    client, batch, reviewer
):
    client.force_login(reviewer)
    response = client.get(f"/labeling/batches/{batch.pk}/work/")
    assert response.status_code == 302
    position = int(response.url.rstrip("/").split("/")[-1])
    response = client.post(response.url, {"value": "weak_sufficient", "reasons": ["simple-query"]})
    assert response.url == f"/labeling/batches/{batch.pk}/work/"
    label = Label.objects.get(reviewer=reviewer)
    assert label.item.position == position and label.reasons == ["simple-query"]


def test_blind_mode_hides_the_tier_until_labeled(client, batch, reviewer):
    client.force_login(reviewer)
    item = batch.items.exclude(trace__tier="").first()
    url = f"/labeling/batches/{batch.pk}/items/{item.position}/"
    html = client.get(url).content.decode()
    assert "Blind batch" in html and "tier-pill" not in html
    client.post(url, {"value": "strong_needed"})
    html = client.get(url).content.decode()
    assert f"tier-pill tier-{item.trace.tier}" in html


def test_a_skip_does_not_reveal_the_tier_of_a_blind_item(client, batch, reviewer):
    client.force_login(reviewer)
    item = batch.items.exclude(trace__tier="").exclude(trace__model="").first()
    url = f"/labeling/batches/{batch.pk}/items/{item.position}/"
    client.post(url, {"value": "skipped"})
    html = client.get(url).content.decode()  # back to the skipped item
    assert "blind-note" in html and "tier-pill" not in html and "Matched:" not in html
    assert item.trace.model not in html
    # Labeling it after the skip is a blind judgement; only that reveals the tier.
    client.post(url, {"value": "weak_sufficient"})
    assert Label.objects.get(item=item, reviewer=reviewer).value == "weak_sufficient"
    html = client.get(url).content.decode()
    assert f"tier-pill tier-{item.trace.tier}" in html and "Matched:" in html


def test_the_batch_page_shows_a_reviewer_the_tier_of_the_items_they_judged_only(
    client, batch, reviewer, operator
):
    judged, skipped = batch.items.exclude(trace__tier="").order_by("position")[:2]
    services.label_submit(reviewer=reviewer, item=judged, value="strong_needed")
    services.label_submit(reviewer=reviewer, item=skipped, value="skipped")
    client.force_login(reviewer)

    html = client.get(f"/labeling/batches/{batch.pk}/").content.decode()

    rows = {row.split("</a>")[0].rsplit(">", 1)[-1]: row for row in html.split("<tr>")[2:]}
    assert f"<td>{judged.trace.tier}</td>" in rows[str(judged.position)]
    assert "hidden" in rows[str(skipped.position)]
    client.force_login(operator)
    html = client.get(f"/labeling/batches/{batch.pk}/").content.decode()
    assert "hidden</span>" not in html


def test_prompts_are_rendered_as_text(client, batch, reviewer):
    item = batch.items.first()
    trace = item.trace
    trace.messages = [
        {
            "role": "user",
            "content": "<script>alert('x')</script>\n```js\n<img src=x onerror=alert(1)>\n```",
        }
    ]
    trace.save()
    client.force_login(reviewer)
    html = client.get(f"/labeling/batches/{batch.pk}/items/{item.position}/").content.decode()
    assert "<script>alert('x')</script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert (
        '<pre class="code" data-lang="js"><code>&lt;img src=x onerror=alert(1)&gt;</code></pre>'
        in html
    )


def test_operator_draws_a_batch_from_the_page(client, synced, operator):
    client.force_login(operator)
    response = client.post(
        "/labeling/batches/new/",
        {
            "kind": "fn",
            "size": 10,
            "period_start": (TRAFFIC_END - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M"),
            "period_end": TRAFFIC_END.strftime("%Y-%m-%dT%H:%M"),
            "double_review_share": 0,
        },
    )
    batch = Batch.objects.get()
    assert response.url == f"/labeling/batches/{batch.pk}/"
    assert batch.kind == "fn" and batch.blind is False


def test_near_threshold_batches_use_the_versions_thresholds(
    synced, make_batch, v7, draft, operator
):
    from routing import services as routing_services

    routing_services.version_update_draft(actor=operator, version=draft, token_threshold=300)
    routing_services.version_freeze(actor=operator, version=draft)
    batch = make_batch(kind=BatchKind.NEAR_THRESHOLD, size=20)
    assert batch.strategy["options"]["token_threshold"] == 300  # the newest frozen: v8
    # The traffic v7 routed is judged near v7's own thresholds.
    batch = make_batch(kind=BatchKind.NEAR_THRESHOLD, size=20, seed=3, classifier_version="v7")
    assert batch.strategy["options"]["token_threshold"] == 500


def test_the_sync_panel_polls_only_while_a_sync_runs(client, langfuse, operator):
    from labeling.sync import sync_start

    client.force_login(operator)
    htmx = {"HX-Request": "true"}  # the panel's own refresh
    assert "hx-trigger" not in client.get("/labeling/sync/runs/", headers=htmx).content.decode()
    sync_start(since=TRAFFIC_END - timedelta(days=1), until=TRAFFIC_END)
    html = client.get("/labeling/sync/runs/", headers=htmx).content.decode()
    assert 'hx-trigger="every 2s"' in html and "running" in html


def test_the_batch_page_pages_its_items_with_a_fixed_number_of_queries(
    client, synced, make_batch, reviewer
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    batch = make_batch(size=180, seed=3)
    count = batch.items.count()
    assert count > 100
    for item in batch.items.all()[:30]:
        services.label_submit(reviewer=reviewer, item=item, value=LabelValue.WEAK_SUFFICIENT)
    client.force_login(reviewer)
    client.get(f"/labeling/batches/{batch.pk}/")
    with CaptureQueriesContext(connection) as queries:
        html = client.get(f"/labeling/batches/{batch.pk}/").content.decode()
    assert f"items 1–100 of {count}" in html
    assert len(queries) <= 14, [q["sql"][:80] for q in queries]
    second = client.get(f"/labeling/batches/{batch.pk}/?page=2").content.decode()
    assert f"items 101–{count} of {count}" in second


def test_a_skip_leaves_the_item_open_for_the_other_reviewers(
    synced, make_batch, reviewer, make_user
):
    batch = make_batch(size=1, seed=1)
    [item] = batch.items.all()
    services.label_submit(reviewer=reviewer, item=item, value=LabelValue.SKIPPED)
    assert services.item_claim_next(batch=batch, reviewer=reviewer) is None  # no second offer
    other = make_user("rob", "reviewer")
    assert services.item_claim_next(batch=batch, reviewer=other).pk == item.pk
    services.label_submit(reviewer=other, item=item, value=LabelValue.STRONG_NEEDED)
    assert batch_progress(batch).done == 1


def test_a_judgement_cannot_be_turned_into_a_skip(batch, reviewer):
    item = batch.items.first()
    services.label_submit(reviewer=reviewer, item=item, value=LabelValue.STRONG_NEEDED)
    with pytest.raises(Conflict, match="change the label instead"):
        services.label_submit(reviewer=reviewer, item=item, value=LabelValue.SKIPPED)


def test_reviewers_see_only_their_own_labels_and_no_model_in_blind_pages(
    client, batch, reviewer, make_user
):
    other = make_user("rob", "reviewer")
    item = batch.items.filter(reviews_required=2).first()
    services.label_submit(reviewer=other, item=item, value=LabelValue.STRONG_NEEDED)
    item.trace.model = "qwen3-4b"
    item.trace.save()
    client.force_login(reviewer)
    html = client.get(f"/labeling/batches/{batch.pk}/").content.decode()
    assert 'title="rob"' not in html and "label-strong_needed" not in html
    html = client.get(f"/labeling/batches/{batch.pk}/items/{item.position}/").content.decode()
    assert "qwen3-4b" not in html


def test_the_labeling_home_costs_the_same_queries_for_one_batch_or_five(
    client, synced, make_batch, operator
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(operator)
    make_batch(size=10, seed=1)
    client.get("/labeling/")
    with CaptureQueriesContext(connection) as one:
        client.get("/labeling/")
    for seed in range(2, 6):
        make_batch(size=10, seed=seed)
    with CaptureQueriesContext(connection) as five:
        html = client.get("/labeling/").content.decode()
    assert len(five) == len(one)
    assert html.count('class="bar"') == 5  # a progress bar for each batch


# --- undo --------------------------------------------------------------------------------


def test_undo_takes_back_the_last_label_and_serves_its_item_again(batch, reviewer):
    first = services.item_claim_next(batch=batch, reviewer=reviewer)
    services.label_submit(reviewer=reviewer, item=first, value=LabelValue.WEAK_SUFFICIENT)
    second = services.item_claim_next(batch=batch, reviewer=reviewer)
    label = services.label_submit(
        reviewer=reviewer, item=second, value=LabelValue.STRONG_NEEDED, comment="hm"
    )

    item = services.label_undo(reviewer=reviewer, batch=batch)

    assert item.pk == second.pk
    assert not Label.objects.filter(pk=label.pk).exists()
    assert Label.objects.filter(reviewer=reviewer).get().item_id == first.pk  # only the last
    assert (item.claimed_by, item.claimed_until > timezone.now()) == (reviewer, True)
    assert services.item_claim_next(batch=batch, reviewer=reviewer).pk == second.pk
    event = AuditEvent.objects.get(action="label.undo")
    assert event.object_id == str(label.pk) and event.actor == reviewer
    assert (event.before["value"], event.before["comment"]) == ("strong_needed", "hm")
    assert event.after["value"] is None
    # Labeled afresh, it counts once.
    services.label_submit(reviewer=reviewer, item=item, value=LabelValue.WEAK_SUFFICIENT)
    assert batch_progress(batch).labels == 2


def test_undo_takes_back_a_skip_too(synced, make_batch, reviewer):
    batch = make_batch(size=1, seed=1)
    [item] = batch.items.all()
    services.label_submit(reviewer=reviewer, item=item, value=LabelValue.SKIPPED)
    assert services.item_claim_next(batch=batch, reviewer=reviewer) is None
    assert services.label_undo(reviewer=reviewer, batch=batch).pk == item.pk
    assert services.item_claim_next(batch=batch, reviewer=reviewer).pk == item.pk


def test_undo_touches_only_the_reviewers_own_labels_in_this_batch(
    synced, make_batch, reviewer, make_user
):
    batch, other_batch = make_batch(size=3, seed=1), make_batch(size=3, seed=2)
    other = make_user("rob", "reviewer")
    elsewhere = other_batch.items.first()
    services.label_submit(reviewer=reviewer, item=elsewhere, value="weak_sufficient")
    services.label_submit(reviewer=other, item=batch.items.first(), value="strong_needed")
    with pytest.raises(Conflict, match="no label in this batch"):
        services.label_undo(reviewer=reviewer, batch=batch)
    assert Label.objects.count() == 2


def test_a_repeated_undo_stops_instead_of_taking_back_the_label_before(batch, reviewer):
    first, second = batch.items.filter(reviews_required=1)[:2]
    services.label_submit(reviewer=reviewer, item=first, value=LabelValue.WEAK_SUFFICIENT)
    label = services.label_submit(reviewer=reviewer, item=second, value=LabelValue.STRONG_NEEDED)
    services.label_undo(reviewer=reviewer, batch=batch, label_id=label.pk)
    with pytest.raises(Conflict, match="undone already"):
        services.label_undo(reviewer=reviewer, batch=batch, label_id=label.pk)
    assert Label.objects.get(reviewer=reviewer).item_id == first.pk


def test_an_adjudicated_item_cannot_be_undone(batch, reviewer, make_user, operator):
    item = batch.items.filter(reviews_required=2).first()
    services.label_submit(reviewer=make_user("rob", "reviewer"), item=item, value="strong_needed")
    services.label_submit(reviewer=reviewer, item=item, value="weak_sufficient")
    services.item_adjudicate(actor=operator, item=item, value=LabelValue.STRONG_NEEDED)
    with pytest.raises(Conflict, match="settled"):
        services.label_undo(reviewer=reviewer, batch=batch)
    assert Label.objects.filter(item=item).count() == 2
    assert not AuditEvent.objects.filter(action="label.undo").exists()


def test_an_undone_skip_is_not_taken_from_another_reviewer(synced, make_batch, reviewer, make_user):
    batch = make_batch(size=1, seed=1)
    [item] = batch.items.all()
    services.label_submit(reviewer=reviewer, item=item, value=LabelValue.SKIPPED)
    other = make_user("rob", "reviewer")
    assert services.item_claim_next(batch=batch, reviewer=other).pk == item.pk  # rob holds it
    with pytest.raises(Conflict, match="Another reviewer"):
        services.label_undo(reviewer=reviewer, batch=batch)
    services.label_submit(reviewer=other, item=item, value=LabelValue.STRONG_NEEDED)
    with pytest.raises(Conflict, match="needs no label from you"):  # rob labeled it meanwhile
        services.label_undo(reviewer=reviewer, batch=batch)
    assert Label.objects.get(reviewer=reviewer).value == "skipped"  # nothing changed


def test_an_undone_label_is_taken_back_from_langfuse(
    client, batch, reviewer, scores_at, eager_tasks, django_capture_on_commit_callbacks
):
    from labeling.models import ScoreRetraction
    from labeling.writeback import retractions_verify

    langfuse = scores_at
    item = batch.items.filter(reviews_required=1).first()
    with django_capture_on_commit_callbacks(execute=True):
        label = services.label_submit(reviewer=reviewer, item=item, value="weak_sufficient")
    old_score = score_id(label)
    assert old_score in {s["id"] for s in langfuse.scores()}

    with django_capture_on_commit_callbacks(execute=True) as queued:
        services.label_undo(reviewer=reviewer, batch=batch)
    assert len(queued) == 1
    # Langfuse took the delete (202) but deletes later: the retraction is pending.
    retraction = ScoreRetraction.objects.get(score_id=old_score)
    assert retraction.item == item and retraction.attempts == 1 and retraction.sent_at
    assert retraction.confirmed_at is None
    assert old_score in {s["id"] for s in langfuse.scores()}
    client.force_login(reviewer)
    page = client.get(f"/labeling/batches/{batch.pk}/items/{item.position}/").content.decode()
    assert "Retraction pending" in page

    later = retraction.sent_at + timedelta(minutes=1)
    with LangfuseAdapter.from_env(sleep=lambda s: None) as adapter:
        assert retractions_verify(adapter, now=later) == {"confirmed": 0, "resent": 0}
        langfuse.apply_due_deletes(everything=True)  # Langfuse's queue runs
        assert retractions_verify(adapter, now=later) == {"confirmed": 1, "resent": 0}
    assert old_score not in {s["id"] for s in langfuse.scores()}
    page = client.get(f"/labeling/batches/{batch.pk}/items/{item.position}/").content.decode()
    assert "Retraction pending" not in page

    with django_capture_on_commit_callbacks(execute=True):
        label = services.label_submit(reviewer=reviewer, item=item, value="strong_needed")
    scores = [s for s in langfuse.scores() if s["subject"]["id"] == item.trace.langfuse_id]
    assert [(s["id"], s["value"]) for s in scores if s["name"] == "routing_label"] == [
        (score_id(label), "strong_needed")
    ]


def test_a_delete_langfuse_lost_is_sent_again(
    batch, reviewer, scores_at, eager_tasks, django_capture_on_commit_callbacks
):
    from labeling.models import ScoreRetraction
    from labeling.writeback import RESEND_AFTER, retractions_verify

    langfuse = scores_at
    item = batch.items.filter(reviews_required=1).first()
    with django_capture_on_commit_callbacks(execute=True):
        label = services.label_submit(reviewer=reviewer, item=item, value="weak_sufficient")
    with django_capture_on_commit_callbacks(execute=True):
        services.label_undo(reviewer=reviewer, batch=batch)
    langfuse.drop_pending_deletes()  # its queue lost the job: the score stays
    retraction = ScoreRetraction.objects.get(score_id=score_id(label))

    with LangfuseAdapter.from_env(sleep=lambda s: None) as adapter:
        later = retraction.sent_at + RESEND_AFTER + timedelta(seconds=1)
        assert retractions_verify(adapter, now=later) == {"confirmed": 0, "resent": 1}
        langfuse.apply_due_deletes(everything=True)
        assert retractions_verify(adapter, now=later + RESEND_AFTER) == {
            "confirmed": 1,
            "resent": 0,
        }
    retraction.refresh_from_db()
    assert retraction.attempts == 2 and retraction.confirmed_at is not None


def test_a_label_undone_while_its_push_waited_is_not_sent(batch, reviewer, langfuse, eager_tasks):
    item = batch.items.first()
    label = services.label_submit(reviewer=reviewer, item=item, value="weak_sufficient")
    services.label_undo(reviewer=reviewer, batch=batch)  # its retraction not run (no commit)
    assert label_push(label.pk) is None
    assert score_id(label) not in {s["id"] for s in langfuse.scores()}


def test_a_label_undone_while_its_push_was_on_the_way_is_taken_back(
    batch, reviewer, langfuse, eager_tasks, monkeypatch
):
    from labeling import writeback

    item = batch.items.first()
    label = services.label_submit(reviewer=reviewer, item=item, value="weak_sufficient")
    send = writeback._send

    def send_then_undo(score, adapter):
        result = send(score, adapter)
        Label.objects.filter(pk=label.pk).delete()  # the undo commits meanwhile
        return result

    monkeypatch.setattr(writeback, "_send", send_then_undo)
    assert label_push(label.pk) is None
    langfuse.apply_due_deletes(everything=True)  # Langfuse deletes it some seconds later
    assert score_id(label) not in {s["id"] for s in langfuse.scores()}


def test_the_undo_page_is_a_csrf_protected_post_for_reviewers(batch, reviewer, nobody):
    from django.test import Client

    item = batch.items.first()
    url = f"/labeling/batches/{batch.pk}/undo/"
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(reviewer)
    page = csrf_client.get(f"/labeling/batches/{batch.pk}/items/{item.position}/")
    assert 'id="undo-form"' not in page.content.decode()  # nothing to undo yet
    services.label_submit(reviewer=reviewer, item=item, value=LabelValue.WEAK_SUFFICIENT)

    assert csrf_client.get(url).status_code == 405
    assert csrf_client.post(url).status_code == 403  # no CSRF token
    assert Label.objects.exists()
    page = csrf_client.get(f"/labeling/batches/{batch.pk}/items/{item.position}/")
    html = page.content.decode()
    assert 'id="undo-form"' in html
    token = csrf_client.cookies["csrftoken"].value
    label = Label.objects.get()
    response = csrf_client.post(url, {"csrfmiddlewaretoken": token, "label": label.pk})
    assert response.status_code == 302
    assert response.url == f"/labeling/batches/{batch.pk}/items/{item.position}/"
    assert not Label.objects.exists()

    # Again (a second key press): nothing more is undone, the reviewer stays where they were.
    response = csrf_client.post(
        url, {"csrfmiddlewaretoken": token, "label": label.pk, "position": item.position}
    )
    assert response.url == f"/labeling/batches/{batch.pk}/items/{item.position}/"

    nobody_client = Client()
    nobody_client.force_login(nobody)
    assert nobody_client.post(url).status_code == 403


def test_an_item_another_reviewer_has_open_cannot_be_labeled_until_the_claim_expires(
    batch, reviewer, make_user
):
    from django.utils import timezone

    from labeling.models import BatchItem

    other = make_user("rob", "reviewer")
    item = services.item_claim_next(batch=batch, reviewer=other)

    with pytest.raises(Conflict, match="has this item open"):
        services.label_submit(reviewer=reviewer, item=item, value=LabelValue.WEAK_SUFFICIENT)
    services.label_submit(reviewer=other, item=item, value=LabelValue.WEAK_SUFFICIENT)  # the holder

    expired = services.item_claim_next(batch=batch, reviewer=other)
    BatchItem.objects.filter(pk=expired.pk).update(claimed_until=timezone.now())
    services.label_submit(reviewer=reviewer, item=expired, value=LabelValue.STRONG_NEEDED)


def test_a_label_without_langfuse_settings_is_kept_with_the_reason(batch, reviewer, monkeypatch):
    from labeling.writeback import label_push

    for name in (
        "LANGFUSE_BASE_URL",
        "LANGFUSE_HOST",
        "LANGFUSE_PUBLIC_KEY",
        "LANGFUSE_SECRET_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    label = services.label_submit(
        reviewer=reviewer, item=batch.items.first(), value=LabelValue.STRONG_NEEDED
    )

    label = label_push(label.pk)

    assert label.langfuse_sent_at is None and "not configured" in label.langfuse_error


def test_the_periodic_resend_leaves_queued_labels_alone_and_the_page_shows_the_backlog(
    client, batch, reviewer, operator, monkeypatch
):
    from datetime import timedelta

    from django.utils import timezone

    from labeling import tasks

    queued = []
    monkeypatch.setattr(tasks.push_label, "delay", lambda label_id: queued.append(label_id))
    waiting, lost = (
        services.label_submit(reviewer=reviewer, item=item, value=LabelValue.STRONG_NEEDED)
        for item in batch.items.all()[:2]
    )
    old = timezone.now() - timedelta(minutes=30)
    Label.objects.filter(pk=waiting.pk).update(updated_at=old, langfuse_queued_at=old)
    Label.objects.filter(pk=lost.pk).update(
        updated_at=old - timedelta(hours=2), langfuse_queued_at=old - timedelta(hours=2)
    )

    assert tasks.push_pending_labels() == 1
    assert queued == [lost.pk]  # still in the queue: not queued again

    client.force_login(operator)
    page = client.get("/labeling/").content.decode()
    assert "Langfuse write-back: 2 labels waiting" in page


def test_a_scorer_versions_trace_shows_its_score_only_once_the_routing_may_be_seen(
    client, batch, reviewer, operator
):
    from routing import services as routing_services
    from routing.models import ClassifierVersion

    item = batch.items.exclude(trace__tier="").first()
    words = item.trace.input_text.lower().split()
    feature = next(w for w in words if len(w) >= 3)[:4]
    v7 = ClassifierVersion.objects.get(name=item.trace.classifier_version)
    draft = routing_services.version_copy(actor=operator, source=v7, name="v9")
    routing_services.version_update_draft(
        actor=operator,
        version=draft,
        scorer={"bias": -1.0, "threshold": 0.0, "features": [[feature, 2.5], ["zzqx", -1.0]]},
    )
    item.trace.classifier_version = "v9"
    item.trace.save(update_fields=["classifier_version"])
    client.force_login(reviewer)
    url = f"/labeling/batches/{batch.pk}/items/{item.position}/"

    assert "threshold 0.0" not in client.get(url).content.decode()  # blind: nothing given away
    client.post(url, {"value": "strong_needed"})
    html = client.get(url).content.decode()

    assert "Score <strong>1.500</strong> ≥ threshold 0.0" in html
    assert f'<mark class="mark-strong" title="{feature} +2.5">' in html


@pytest.fixture
def small_batch(db, operator, make_user):
    from labeling.models import BatchKind, Trace
    from labeling.sync import input_fingerprint

    t0 = datetime(2026, 11, 2, 9, tzinfo=UTC)
    system = "You are a coding assistant. Answer briefly."
    rows = [("정렬 코드 부탁해", "weak"), ("Refactor the payment module", "strong"), ("hi", "weak")]
    for n, (text, tier) in enumerate(rows):
        messages = [{"role": "system", "content": system}, {"role": "user", "content": text}]
        joined = f"{system} {text}"
        Trace.objects.create(
            langfuse_id=f"t-{n}", started_at=t0 + timedelta(minutes=n), messages=messages,
            input_text=joined, input_hash=input_fingerprint(joined), char_count=len(joined),
            turn_count=2, tier=tier,
        )  # fmt: skip
    return services.batch_create(
        actor=operator, kind=BatchKind.HEADLINE, period_start=t0,
        period_end=t0 + timedelta(hours=1), size=3, seed=1, double_review_share=1.0,
    )  # fmt: skip


def test_the_item_list_previews_the_request_and_filters_items(
    client, small_batch, reviewer, make_user, operator
):
    rob = make_user("rob", "reviewer")
    items = {it.trace.langfuse_id: it for it in small_batch.items.select_related("trace")}
    services.label_submit(reviewer=reviewer, item=items["t-1"], value="strong_needed")
    services.label_submit(reviewer=rob, item=items["t-1"], value="strong_needed")
    services.label_submit(reviewer=reviewer, item=items["t-0"], value="weak_sufficient")
    services.label_submit(reviewer=rob, item=items["t-0"], value="strong_needed")
    services.label_submit(reviewer=rob, item=items["t-2"], value="weak_sufficient")
    url = f"/labeling/batches/{small_batch.pk}/"

    def rows(query="", who=operator):
        client.force_login(who)
        html = client.get(url + query).content.decode()
        return [t for t in ("정렬 코드 부탁해", "Refactor the payment", ">hi<") if t in html], html

    shown, html = rows()
    assert len(shown) == 3 and "You are a coding assistant" not in html  # no system prompt
    assert rows("?agreement=agree")[0] == ["Refactor the payment"]
    assert rows("?agreement=disagree")[0] == ["정렬 코드 부탁해"]
    assert rows("?state=open")[0] == [">hi<"]
    assert rows("?label=strong_needed")[0] == ["정렬 코드 부탁해", "Refactor the payment"]
    assert rows("?tier=strong")[0] == ["Refactor the payment"]
    assert "No item matches." in rows("?state=settled")[1]
    # A reviewer of a blind batch cannot filter by tier, and sees that others labeled.
    shown, html = rows("?tier=strong", who=reviewer)
    assert len(shown) == 3 and 'name="tier"' not in html
    assert "1 by others" in html  # rob's label of "hi", its value hidden


def test_the_settle_page_shows_everything_and_an_own_label_needs_a_reason(
    client, small_batch, reviewer, make_user, operator
):
    from audit.models import AuditEvent

    item = small_batch.items.select_related("trace").get(trace__langfuse_id="t-1")
    services.label_submit(reviewer=reviewer, item=item, value="strong_needed",
                          comment="touches three services", reasons=["multi-file"])  # fmt: skip
    operator.groups.add(*reviewer.groups.all())
    services.label_submit(reviewer=operator, item=item, value="weak_sufficient", comment="small")
    client.force_login(operator)
    url = f"/labeling/adjudication/{item.pk}/"

    page = client.get(url).content.decode()
    assert "You are a coding assistant" in page and "Refactor the payment module" in page
    assert "<strong>rita</strong>" in page and "touches three services" in page
    assert "Multi-file / codebase context" in page and "(you)" in page
    assert 'data-confirm="Settle this item?' in page and "<kbd>1</kbd>" in page
    refused = client.post(url, {"value": "strong_needed"}, follow=True).content.decode()
    assert "say why you settle it" in refused
    item.refresh_from_db()
    assert item.final_value == ""

    client.post(url, {"value": "strong_needed", "note": "rita is right: three services"})

    item.refresh_from_db()
    assert item.final_value == "strong_needed"
    event = AuditEvent.objects.get(action="item.adjudicate")
    assert event.after["own_label"] is True and event.message == "rita is right: three services"
