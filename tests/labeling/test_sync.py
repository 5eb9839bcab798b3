"""Syncing traces from the Langfuse stand-in through the real SDK into PostgreSQL."""

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from cascade_admin.errors import Conflict
from labeling.langfuse_adapter import LangfuseAdapter, RetryPolicy
from labeling.models import SyncRun, SyncStatus, Trace
from labeling.standin import Fault
from labeling.standin.store import iso
from labeling.sync import STALE_AFTER, ingest_lag, sync_execute, sync_resume, sync_start

from .conftest import TRAFFIC_END

pytestmark = pytest.mark.django_db

SINCE = TRAFFIC_END - timedelta(days=3)


def no_sleep_adapter():
    return LangfuseAdapter.from_env(retry=RetryPolicy(attempts=3), sleep=lambda s: None)


def run_sync(since=SINCE, until=TRAFFIC_END, page_size=100, **kwargs):
    run = sync_start(since=since, until=until)
    return sync_execute(run.pk, adapter=no_sleep_adapter(), page_size=page_size, **kwargs)


def wellformed_root(traffic, **changes):
    """A copy of a root observation the parser accepts, changed as given."""
    root = next(o for o in traffic.roots if o["traceId"] not in traffic.malformed)
    return {**root, **changes}


class WorkerDied(BaseException):
    """Stands for a killed worker: nothing in the sync may catch it."""


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


def test_the_next_sync_starts_an_overlap_before_the_watermark(langfuse, settings):
    first = run_sync()
    run = sync_start()
    assert run.since == first.until - timedelta(hours=1)
    assert run.until <= timezone.now() - ingest_lag()
    SyncRun.objects.filter(pk=run.pk).delete()
    settings.LANGFUSE_SYNC_OVERLAP_MINUTES = 0
    assert sync_start().since == first.until


def test_a_late_ingested_trace_is_picked_up_by_the_next_sync(langfuse, traffic):
    watermark = TRAFFIC_END - timedelta(minutes=30)
    run_sync(until=watermark)
    # Ingested after that sync, though it started before the watermark.
    late_start = watermark - timedelta(minutes=10)
    langfuse.add_observations(
        [wellformed_root(traffic, id="late-obs", traceId="late-trace", startTime=iso(late_start))]
    )
    run = sync_start(until=TRAFFIC_END)
    assert run.since < late_start
    run = sync_execute(run.pk, adapter=no_sleep_adapter(), page_size=100)
    assert run.status == SyncStatus.SUCCEEDED
    assert Trace.objects.filter(langfuse_id="late-trace").exists()
    count = Trace.objects.count()
    again = sync_execute(sync_start(until=TRAFFIC_END).pk, adapter=no_sleep_adapter())
    assert again.status == SyncStatus.SUCCEEDED and again.fetched > 0
    assert again.created == 0 and Trace.objects.count() == count


def test_a_requested_end_is_clamped_to_the_ingest_lag(langfuse):
    now = timezone.now()
    run = sync_start(since=now - timedelta(hours=1), until=now + timedelta(days=1))
    lag = ingest_lag()
    assert now - lag - timedelta(seconds=5) <= run.until <= timezone.now() - lag
    SyncRun.objects.all().delete()
    with pytest.raises(Conflict, match="Nothing to sync"):
        sync_start(since=now, until=now + timedelta(days=1))


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


@pytest.mark.parametrize(
    "since,until", [("2026-11-17", "2026-11-20"), ("2026-11-17T00:00:00", "2026-11-20T00:00")]
)
def test_the_management_command_reads_plain_dates_and_naive_times_as_utc(langfuse, since, until):
    call_command("sync_traces", "--since", since, "--until", until, stdout=io.StringIO())
    run = SyncRun.objects.get()
    assert (
        (run.since, run.until)
        == (SINCE, TRAFFIC_END)
        == (
            datetime(2026, 11, 17, tzinfo=UTC),
            datetime(2026, 11, 20, tzinfo=UTC),
        )
    )
    assert run.status == SyncStatus.SUCCEEDED


def test_a_sync_that_finds_nothing_names_its_window_and_what_to_try(langfuse):
    out = io.StringIO()
    # The stand-in holds the two days before TRAFFIC_END; a month before it holds nothing.
    later = TRAFFIC_END - timedelta(days=60)
    until = (later + timedelta(days=30)).isoformat()
    call_command(
        "sync_traces",
        "--since",
        later.isoformat(),
        "--until",
        until,
        stdout=out,
        stderr=io.StringIO(),
    )

    run = SyncRun.objects.get()
    assert run.status == SyncStatus.SUCCEEDED and run.fetched == 0
    text = out.getvalue()
    assert f"between {later:%Y-%m-%d %H:%M} and" in text and "--since" in text and "--all" in text
    assert run.empty_note in text


def test_sync_all_reads_everything_with_a_warning(langfuse, traffic):
    err = io.StringIO()
    call_command("sync_traces", "--all", "--until", TRAFFIC_END.isoformat(), stdout=io.StringIO(),
                 stderr=err)  # fmt: skip

    run = SyncRun.objects.get()
    assert run.since == datetime(2000, 1, 1, tzinfo=UTC) and not run.empty_note
    assert Trace.objects.count() == run.created > 0
    assert "Warning: --all reads every trace" in err.getvalue()
    with pytest.raises(CommandError, match="not both"):
        call_command("sync_traces", "--all", "--since", "2026-11-01")


def test_the_api_starts_a_sync_of_everything_and_lists_the_empty_note(api, operator, langfuse):
    client = api.as_(operator)

    response = client.post("/api/v1/sync-runs/", {"all": True}, format="json")
    both = client.post("/api/v1/sync-runs/", {"all": True, "since": "2026-11-01T00:00:00Z"},
                       format="json")  # fmt: skip

    assert response.status_code == 202, response.content
    assert response.json()["since"].startswith("2000-01-01")
    assert "empty_note" in response.json()
    assert both.status_code == 400 and "all" in both.json()


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
    assert run.since == first.until - timedelta(hours=1)
    run = sync_execute(run.pk, adapter=no_sleep_adapter(), page_size=100)
    trace.refresh_from_db()
    assert run.status == SyncStatus.SUCCEEDED and run.feedback_scores >= 1
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


def test_a_sync_whose_worker_died_is_resumed_from_its_cursor_by_the_command(langfuse, traffic):
    def die_after_the_first_page(run):
        raise WorkerDied

    run = sync_start(since=SINCE, until=TRAFFIC_END)
    with pytest.raises(WorkerDied):
        sync_execute(
            run.pk, adapter=no_sleep_adapter(), page_size=100, on_page=die_after_the_first_page
        )
    run.refresh_from_db()
    assert (run.status, run.pages, run.fetched) == (SyncStatus.RUNNING, 1, 100) and run.cursor
    with pytest.raises(Conflict, match="still running"):  # until it is known to be dead
        sync_start(since=SINCE, until=TRAFFIC_END)
    SyncRun.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now() - STALE_AFTER - timedelta(minutes=1)
    )
    langfuse.request_log.clear()

    err = io.StringIO()
    call_command(
        "sync_traces",
        "--since",
        SINCE.isoformat(),
        "--until",
        TRAFFIC_END.isoformat(),
        "--page-size",
        "100",
        stdout=io.StringIO(),
        stderr=err,
    )
    assert f"Resuming sync run {run.pk}" in err.getvalue()
    resumed = SyncRun.objects.get()  # the same run, not a new one
    assert resumed.pk == run.pk and resumed.status == SyncStatus.SUCCEEDED
    pages = langfuse.requests_to("/api/public/v2/observations")
    assert pages[0]["cursor"] == [run.cursor]  # went on from page 2
    assert all("cursor" in query for query in pages)  # page 1 was not read again
    assert resumed.fetched == len(traffic.roots) and resumed.pages == -(-len(traffic.roots) // 100)
    assert Trace.objects.count() == resumed.created


def test_the_next_sync_resumes_a_run_that_failed_retryably(langfuse):
    run_sync()
    failing = {"armed": True}

    def fail_after_the_first_page(run):
        if failing.pop("armed", False):
            langfuse.inject_fault(Fault(status=503, count=10, path="/api/public/v2/observations"))

    # The default window: from the watermark (less the overlap) on.
    run = sync_start(until=TRAFFIC_END + timedelta(hours=1))
    run = sync_execute(
        run.pk, adapter=no_sleep_adapter(), page_size=5, on_page=fail_after_the_first_page
    )
    assert run.status == SyncStatus.FAILED and run.retryable and run.cursor
    langfuse.clear_faults()

    again = sync_start(until=TRAFFIC_END + timedelta(hours=1))
    assert again.pk == run.pk and again.resumed and again.cursor == run.cursor
    again = sync_execute(again.pk, adapter=no_sleep_adapter(), page_size=5)
    assert again.status == SyncStatus.SUCCEEDED and again.pages > 1
    # A permanent failure is not resumed: the next sync starts afresh.
    SyncRun.objects.filter(pk=again.pk).update(status=SyncStatus.FAILED, retryable=False)
    assert sync_start(until=TRAFFIC_END + timedelta(hours=1)).pk != run.pk


def test_malformed_shapes_are_skipped_or_read_as_missing_and_the_run_finishes(langfuse, traffic):
    since = TRAFFIC_END + timedelta(days=1)  # past the generated traffic: only these

    def obs(n):
        return wellformed_root(
            traffic,
            id=f"odd-{n}",
            traceId=f"odd-trace-{n}",
            startTime=iso(since + timedelta(minutes=n)),
            endTime=None,
            completionStartTime=None,
        )

    odd = [
        {**obs(1), "costDetails": [0.1], "usageDetails": "lots", "totalCost": None},
        {**obs(2), "output": '{"choices": ["plain text, not a message"]}'},
        {**obs(3), "userId": 42, "sessionId": {"id": "s"}, "name": ["x"], "traceName": 7},
        {**obs(4), "tags": 5, "metadata": "not an object", "model": 3, "latency": "NaN"},
        {**obs(5), "input": '[{"role": "user", "content": "nul \\u0000 inside"}]'},
        {**obs(6), "input": {"messages": "not a list"}},  # skipped: no messages
        {**obs(7), "id": 7},  # skipped: no id
    ]
    langfuse.add_observations(odd)
    odd_score = {
        **traffic.scores[0],
        "id": "odd-score",
        "timestamp": iso(since + timedelta(minutes=1)),
        "subject": {"kind": "trace", "id": "odd-trace-1"},
        "name": "user_feedback",
        "dataType": "NUMERIC",
        "value": 1.0,
        "comment": {"text": "an object, not text"},
    }
    langfuse.add_scores([odd_score])

    run = sync_start(since=since, until=since + timedelta(hours=1))
    run = sync_execute(run.pk, adapter=no_sleep_adapter(), page_size=100)

    assert run.status == SyncStatus.SUCCEEDED, run.error
    assert (run.fetched, run.created, run.skipped) == (7, 5, 2)
    traces = {t.langfuse_id: t for t in Trace.objects.all()}
    first = traces["odd-trace-1"]
    assert first.cost_usd is None
    assert (first.feedback_score, first.feedback_comment) == (1.0, "")
    assert traces["odd-trace-2"].output == '{"choices": ["plain text, not a message"]}'
    third = traces["odd-trace-3"]
    assert (third.user_id, third.session_id, third.name) == ("", "", "")
    fourth = traces["odd-trace-4"]
    assert (fourth.tags, fourth.tier, fourth.model, fourth.latency_s) == ([], "", "", None)
    assert traces["odd-trace-5"].input_text == "nul  inside"  # PostgreSQL keeps no NUL


def test_an_unexpected_error_fails_the_run_instead_of_leaving_it_running(langfuse):
    def broken(run):
        raise RuntimeError("a bug")

    run = sync_start(since=SINCE, until=TRAFFIC_END)
    with pytest.raises(RuntimeError):
        sync_execute(run.pk, adapter=no_sleep_adapter(), page_size=100, on_page=broken)
    run.refresh_from_db()
    assert run.status == SyncStatus.FAILED and run.retryable is False
    assert "RuntimeError: a bug" in run.error
    assert sync_start(since=SINCE, until=TRAFFIC_END).pk != run.pk  # not blocked by it


def test_a_sync_window_in_antiquity_is_a_400_naming_the_field(api, operator, langfuse):
    response = api.as_(operator).post(
        "/api/v1/sync-runs/", {"since": "0462-01-01T00:00:00Z"}, format="json"
    )
    assert response.status_code == 400 and "since" in response.json()


def test_an_operator_ends_a_stuck_sync_at_once_and_the_next_one_resumes_it(
    client, api, operator, langfuse
):
    from audit.models import AuditEvent
    from labeling.sync import sync_start

    stuck = sync_start(since=SINCE, until=TRAFFIC_END)  # its worker died: heartbeat fresh
    SyncRun.objects.filter(pk=stuck.pk).update(pages=3, cursor="page-4")
    with pytest.raises(Conflict, match="still running"):
        sync_start(since=SINCE, until=TRAFFIC_END)

    response = api.as_(operator).post(f"/api/v1/sync-runs/{stuck.pk}/end/", {"reason": "dead"},
                                      format="json")  # fmt: skip

    assert response.status_code == 200 and response.json()["status"] == "failed"
    assert AuditEvent.objects.filter(action="sync.end", object_id=str(stuck.pk)).exists()
    resumed = sync_start(since=SINCE, until=TRAFFIC_END)
    assert resumed.pk == stuck.pk and resumed.resumed and resumed.cursor == "page-4"
    assert api.as_(operator).post(f"/api/v1/sync-runs/{stuck.pk}/end/").status_code == 200
    again = api.as_(operator).post(f"/api/v1/sync-runs/{stuck.pk}/end/")
    assert again.status_code == 409


def test_a_sync_without_langfuse_settings_is_failed_not_left_running(monkeypatch, db):
    from labeling.langfuse_adapter import LangfuseConfigError
    from labeling.sync import sync_execute, sync_start

    for name in (
        "LANGFUSE_BASE_URL",
        "LANGFUSE_HOST",
        "LANGFUSE_PUBLIC_KEY",
        "LANGFUSE_SECRET_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    run = sync_start(since=SINCE, until=TRAFFIC_END)

    with pytest.raises(LangfuseConfigError):
        sync_execute(run.pk)

    run.refresh_from_db()
    assert run.status == SyncStatus.FAILED and "not configured" in run.error


def test_a_sync_against_langfuse_v3_stores_the_same_traces_as_against_v4(
    langfuse, traffic, monkeypatch
):
    from labeling.standin import Store, start_in_thread

    fields = ("langfuse_id", "tier", "classifier_version", "input_text", "turn_count", "model")
    v4 = run_sync()
    stored_v4 = sorted(Trace.objects.values_list(*fields))
    feedback_v4 = Trace.objects.filter(feedback_score__isnull=False).count()
    Trace.objects.all().delete()
    SyncRun.objects.all().delete()
    store = Store(api_generation="v3")
    store.load(traffic)
    url, stop = start_in_thread(store)
    monkeypatch.setenv("LANGFUSE_BASE_URL", url)
    try:
        v3 = run_sync()
    finally:
        stop()

    assert v3.status == SyncStatus.SUCCEEDED, v3.error
    assert (v3.created, v3.skipped) == (v4.created, v4.skipped)
    assert sorted(Trace.objects.values_list(*fields)) == stored_v4
    assert Trace.objects.filter(feedback_score__isnull=False).count() == feedback_v4
    assert not store.requests_to("/api/public/v2/observations")


def test_the_ingest_lag_is_a_setting(langfuse, settings):
    # A bad value stops start-up: tests/deploy/test_settings.py.
    settings.LANGFUSE_INGEST_LAG_SECONDS = 5
    now = timezone.now()

    run = sync_start(since=now - timedelta(hours=1))

    assert now - timedelta(seconds=5) <= run.until <= timezone.now() - timedelta(seconds=5)
