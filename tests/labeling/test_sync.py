"""Syncing traces from the Langfuse stand-in through the real SDK into PostgreSQL."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command

from labeling.langfuse_adapter import LangfuseAdapter, RetryPolicy
from labeling.models import SyncRun, SyncStatus, Trace
from labeling.standin import Fault
from labeling.sync import sync_execute, sync_resume, sync_start
from routing.errors import Conflict

from .conftest import TRAFFIC_END

pytestmark = pytest.mark.django_db

SINCE = TRAFFIC_END - timedelta(days=3)


def no_sleep_adapter():
    return LangfuseAdapter.from_env(retry=RetryPolicy(attempts=3), sleep=lambda s: None)


def run_sync(**kwargs):
    run = sync_start(since=SINCE, until=TRAFFIC_END)
    return sync_execute(run.pk, adapter=no_sleep_adapter(), page_size=100, **kwargs)


def test_a_sync_stores_every_wellformed_trace_and_counts_the_rest(langfuse, traffic):
    run = run_sync()
    assert run.status == SyncStatus.SUCCEEDED
    roots = traffic.roots
    assert run.fetched == len(roots)
    assert run.created == Trace.objects.count()
    assert run.skipped > 0 and run.created + run.skipped == len(roots)
    assert sum(run.skip_reasons.values()) == run.skipped
    assert run.pages == -(-len(roots) // 100)

    trace = Trace.objects.exclude(tier="").first()
    assert trace.tier in ("weak", "strong")
    assert trace.classifier_version == "v7"
    assert trace.char_count == len(trace.input_text) and trace.turn_count == len(trace.messages)
    assert Trace.objects.filter(thumbs_down=True).exists()
    assert Trace.objects.filter(feedback_score__isnull=False).exists()
    assert run.feedback_scores > 0


def test_syncing_the_same_window_twice_adds_nothing(langfuse):
    first = run_sync()
    count = Trace.objects.count()
    second = run_sync()
    assert Trace.objects.count() == count
    assert second.created == 0 and second.updated == first.created


def test_the_next_sync_starts_at_the_watermark(langfuse):
    first = run_sync()
    run = sync_start()
    assert run.since == first.until


def test_a_second_sync_cannot_start_while_one_runs(langfuse):
    sync_start(since=SINCE, until=TRAFFIC_END)
    with pytest.raises(Conflict, match="still running"):
        sync_start(since=SINCE, until=TRAFFIC_END)


def test_retryable_errors_are_retried_transparently(langfuse):
    langfuse.inject_fault(Fault(status=503, count=2, path="/api/public/v2/observations"))
    run = run_sync()
    assert run.status == SyncStatus.SUCCEEDED


def test_a_permanent_error_fails_the_run_and_says_so(langfuse, monkeypatch):
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "wrong")
    run = run_sync()
    assert run.status == SyncStatus.FAILED
    assert run.retryable is False
    assert "401" in run.error


def test_a_failed_run_resumes_from_its_cursor_without_duplicates(langfuse, traffic):
    pages_before_failure = 3
    seen = []

    def fail_after_three_pages(run):
        seen.append(run.pages)
        if run.pages == pages_before_failure:
            # Every retry of the next page fails: the run must stop, keeping its cursor.
            langfuse.inject_fault(Fault(status=500, count=10, path="/api/public/v2/observations"))

    run = run_sync(on_page=fail_after_three_pages)
    assert run.status == SyncStatus.FAILED and run.retryable is True
    assert run.pages == pages_before_failure and run.cursor
    stored = Trace.objects.count()
    assert 0 < stored < len(traffic.roots)

    langfuse.clear_faults()
    sync_resume(run=run)
    run = sync_execute(run.pk, adapter=no_sleep_adapter(), page_size=100)
    assert run.status == SyncStatus.SUCCEEDED
    assert run.fetched == len(traffic.roots)  # no page fetched twice
    assert Trace.objects.count() == run.created


def test_the_management_command_syncs_a_window(langfuse):
    call_command("sync_traces", "--since", SINCE.isoformat(), "--until", TRAFFIC_END.isoformat())
    assert SyncRun.objects.get().status == SyncStatus.SUCCEEDED
    assert Trace.objects.exists()


def test_the_management_command_rejects_bad_dates(langfuse):
    with pytest.raises(CommandError, match="not a date"):
        call_command("sync_traces", "--since", "last tuesday")


def test_feedback_given_after_a_trace_was_synced_reaches_it_on_the_next_sync(langfuse, traffic):
    first = run_sync()
    trace = Trace.objects.filter(feedback_score__isnull=True, thumbs_down__isnull=True).first()
    later = TRAFFIC_END + timedelta(hours=1)
    langfuse.add_scores(
        [
            {
                **traffic.scores[0],
                "id": "late-feedback-1",
                "timestamp": later.isoformat().replace("+00:00", "Z"),
                "subject": {"kind": "trace", "id": trace.langfuse_id},
                "name": "user_feedback",
                "dataType": "NUMERIC",
                "value": 1.0,
                "comment": "wrong answer, had to ask again",
            }
        ]
    )
    run = sync_start(until=TRAFFIC_END + timedelta(hours=2))
    assert run.since == first.until
    run = sync_execute(run.pk, adapter=no_sleep_adapter(), page_size=100)
    trace.refresh_from_db()
    assert run.status == SyncStatus.SUCCEEDED and run.feedback_scores == 1
    assert trace.feedback_score == 1.0 and trace.thumbs_down is True
    assert trace.feedback_comment == "wrong answer, had to ask again"


def test_upserting_counts_new_and_known_rows_and_keeps_feedback(langfuse):
    from django.utils import timezone

    from labeling.sync import upsert_traces

    run_sync()
    known = list(Trace.objects.order_by("id")[:3])
    Trace.objects.filter(pk=known[0].pk).update(feedback_score=5.0, thumbs_down=False)
    fresh = Trace(
        **{**{f.attname: getattr(known[1], f.attname) for f in Trace._meta.concrete_fields}}
    )
    fresh.pk, fresh.langfuse_id, fresh.output = None, "brand-new-trace", "new answer"
    for trace in known:
        trace.pk, trace.feedback_score, trace.output = None, None, "refreshed"
    created, updated = upsert_traces([*known, known[2], fresh])  # known[2] twice in one page
    assert (created, updated) == (1, 3)
    first = Trace.objects.get(langfuse_id=known[0].langfuse_id)
    assert first.output == "refreshed" and first.feedback_score == 5.0  # feedback kept
    assert Trace.objects.get(langfuse_id="brand-new-trace").synced_at <= timezone.now()
