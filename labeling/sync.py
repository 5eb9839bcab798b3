"""Pulling routed traces from Langfuse into the trace store.

Incremental (each run starts where the last successful one ended, less an overlap that
catches late-ingested traces and feedback), idempotent (upsert by Langfuse id), resumable
(the cursor of the next page is stored with every page; a new sync continues an interrupted
one), and tolerant (malformed traces are skipped and counted by reason, never fatal).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from audit.services import audit_record
from cascade_admin.actors import user_of
from cascade_admin.errors import Conflict
from routing.engine import conversation_text

from .langfuse_adapter import (
    FeedbackScore,
    LangfuseAdapter,
    LangfuseConfigError,
    LangfuseError,
    TraceRecord,
)
from .models import SyncRun, SyncStatus, Trace
from .writeback import retractions_verify

log = logging.getLogger(__name__)

DEFAULT_FIRST_WINDOW = timedelta(days=7)
ALL_SINCE = datetime(2000, 1, 1, tzinfo=UTC)  # "everything": before any Langfuse project
# Traces land in Langfuse a little after they start; leave the newest minutes for next time.
# Some land much later (batched exporters, a pod reconnecting): each sync re-reads this much
# before the watermark. Upserts make the re-read harmless.
# A running sync that stored nothing for this long is taken to have died with its worker.
STALE_AFTER = timedelta(minutes=10)
FEEDBACK_NAMES = ("user_feedback", "thumbs")
THUMBS_DOWN_AT_OR_BELOW = 2  # on the 1-5 user_feedback scale

_SPACE = re.compile(r"\s+")

UPDATE_FIELDS = [
    "observation_id",
    "started_at",
    "name",
    "user_id",
    "session_id",
    "messages",
    "input_text",
    "input_hash",
    "char_count",
    "turn_count",
    "output",
    "tags",
    "tier",
    "classifier_version",
    "matched_keywords",
    "cost_usd",
    "latency_s",
    "ttft_s",
    "model",
    "metadata",
    "synced_at",
]
FEEDBACK_FIELDS = ["feedback_score", "thumbs_down", "feedback_comment"]
COMMENT_FIELD = Trace._meta.get_field("feedback_comment")


def ingest_lag() -> timedelta:
    """LANGFUSE_INGEST_LAG_SECONDS (default 120): how far behind now a sync stops, so that
    traces still being ingested are read by a later sync, whole."""
    return timedelta(seconds=settings.LANGFUSE_INGEST_LAG_SECONDS)


def sync_overlap() -> timedelta:
    """LANGFUSE_SYNC_OVERLAP_MINUTES (default 60): how far before the watermark syncs start."""
    return timedelta(minutes=settings.LANGFUSE_SYNC_OVERLAP_MINUTES)


def input_fingerprint(text: str) -> str:
    """Same request, same fingerprint: case and runs of whitespace do not matter."""
    return hashlib.sha256(_SPACE.sub(" ", text.strip().lower()).encode("utf-8")).hexdigest()


def trace_from_record(record: TraceRecord, now: datetime) -> Trace:
    text = conversation_text(record.messages)
    return Trace(
        langfuse_id=record.langfuse_id,
        observation_id=record.observation_id,
        started_at=record.start_time,
        name=(record.name or "")[:200],
        user_id=(record.user_id or "")[:200],
        session_id=(record.session_id or "")[:200],
        messages=record.messages,
        input_text=text,
        input_hash=input_fingerprint(text),
        char_count=len(text),
        turn_count=len(record.messages),
        output=record.output,
        tags=list(record.tags),
        tier=record.tier or "",
        classifier_version=(record.classifier_version or "")[:64],
        matched_keywords=list(record.matched_keywords or ()),
        cost_usd=record.cost_usd,
        latency_s=record.latency_s,
        ttft_s=record.ttft_s,
        model=(record.model or "")[:200],
        metadata=record.metadata,
        synced_at=now,
    )


def apply_feedback(traces: dict[str, Trace], scores: list[FeedbackScore]) -> int:
    """Fold user feedback scores into the traces they belong to; returns how many applied."""
    applied = 0
    for score in sorted(scores, key=lambda s: s.timestamp):  # the latest wins
        trace = traces.get(score.trace_id or "")
        if trace is None:
            continue
        if score.name == "user_feedback" and isinstance(score.value, int | float):
            trace.feedback_score = float(score.value)
            trace.thumbs_down = score.value <= THUMBS_DOWN_AT_OR_BELOW
        elif score.name == "thumbs" and isinstance(score.value, bool | int | float):
            trace.thumbs_down = not bool(score.value)
        else:
            continue
        trace.feedback_comment = (score.comment or trace.feedback_comment or "")[:5000]
        applied += 1
    return applied


def upsert_traces(traces: list[Trace]) -> tuple[int, int]:
    """Insert new traces and refresh known ones (feedback aside); returns (created, updated).

    Duplicate ids within one page keep the last row. On PostgreSQL the page goes in by COPY
    and one INSERT ... ON CONFLICT: Django's bulk upsert escapes every value in Python and
    was most of a sync's time.
    """
    traces = list({t.langfuse_id: t for t in traces}.values())
    if not traces:
        return 0, 0
    if connection.vendor == "postgresql":
        return _copy_upsert(traces)
    ids = [t.langfuse_id for t in traces]
    known = set(Trace.objects.filter(langfuse_id__in=ids).values_list("langfuse_id", flat=True))
    Trace.objects.bulk_create(
        traces,
        update_conflicts=True,
        unique_fields=["langfuse_id"],
        update_fields=UPDATE_FIELDS,
        batch_size=1000,
    )
    return len(ids) - len(known), len(known)


def _column(name: str) -> str:
    """The quoted column of a concrete field of Trace."""
    field = Trace._meta.get_field(name)
    assert isinstance(field, models.Field) and field.column  # concrete: it has a column
    return connection.ops.quote_name(field.column)


def _copy_upsert(traces: list[Trace]) -> tuple[int, int]:
    fields = [f for f in Trace._meta.concrete_fields if f.attname != "id"]
    columns = ", ".join(_column(f.name) for f in fields)
    table = connection.ops.quote_name(Trace._meta.db_table)
    updates = ", ".join(f"{_column(name)} = EXCLUDED.{_column(name)}" for name in UPDATE_FIELDS)
    # Identifiers come from the model, quoted; every value travels by COPY.
    with transaction.atomic(), connection.cursor() as cursor:
        # The table's column types, no constraints, made anew each time (a migrated table
        # never meets a stale copy); a failure rolls its creation back with everything else.
        cursor.execute(
            f"CREATE TEMP TABLE trace_page AS SELECT {columns} FROM {table} WITH NO DATA"  # noqa: S608
        )
        with cursor.cursor.copy(f"COPY trace_page ({columns}) FROM STDIN") as copy:
            for trace in traces:
                copy.write_row([_copy_value(f, trace) for f in fields])
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM trace_page "  # noqa: S608
            f"ON CONFLICT (langfuse_id) DO UPDATE SET {updates} RETURNING (xmax = 0)"
        )
        inserted = sum(1 for (is_new,) in cursor.fetchall() if is_new)
        cursor.execute("DROP TABLE trace_page")
    return inserted, len(traces) - inserted


def _copy_value(field, trace: Trace):
    # PostgreSQL stores no NUL character, in text or JSON: one would fail the whole page.
    value = getattr(trace, field.attname)
    if isinstance(field, models.JSONField):
        text = json.dumps(value, ensure_ascii=False)
        return json.dumps(_without_nul(value), ensure_ascii=False) if "\\u0000" in text else text
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "")
    return value


def _without_nul(value):
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    return value


def sync_feedback(adapter: LangfuseAdapter, since: datetime, until: datetime) -> int:
    """Fold in user feedback given during ``[since, until)``, whichever trace it is about.

    Feedback comes after its trace, often after the trace was synced; reading it by its own
    time catches it for older traces too, and each window is read once.
    """
    scores = list(adapter.iter_scores(since, until, name=FEEDBACK_NAMES))
    trace_ids = list({s.trace_id for s in scores if s.trace_id})
    applied = 0
    for start in range(0, len(trace_ids), 1000):
        chunk = trace_ids[start : start + 1000]
        # Only what feedback changes: the full rows carry whole conversations.
        known = Trace.objects.filter(langfuse_id__in=chunk).only("langfuse_id", *FEEDBACK_FIELDS)
        traces = {t.langfuse_id: t for t in known}
        applied += apply_feedback(traces, [s for s in scores if s.trace_id in traces])
        _save_feedback(list(traces.values()))
    return applied


def _save_feedback(traces: list[Trace]) -> None:
    """Write the feedback fields of ``traces``; on PostgreSQL as one UPDATE ... FROM unnest:
    Django's bulk_update builds a CASE per column that PostgreSQL checks row by row against
    every id of the batch (quadratic, a quarter of a sync's time)."""
    if connection.vendor != "postgresql":
        Trace.objects.bulk_update(traces, FEEDBACK_FIELDS, batch_size=1000)
        return
    table = connection.ops.quote_name(Trace._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS t SET feedback_score = v.score, thumbs_down = v.down, "  # noqa: S608
            "feedback_comment = v.comment "
            "FROM unnest(%s::bigint[], %s::float8[], %s::boolean[], %s::text[]) "
            "AS v(id, score, down, comment) WHERE t.id = v.id",
            [
                [t.pk for t in traces],
                [t.feedback_score for t in traces],
                [t.thumbs_down for t in traces],
                [_copy_value(COMMENT_FIELD, t) for t in traces],  # NUL-free, as the upsert
            ],
        )


def next_window(now: datetime) -> tuple[datetime, datetime]:
    """From the watermark (the end of the last successful run) less the overlap, to now
    less the ingest lag."""
    last = SyncRun.objects.filter(status=SyncStatus.SUCCEEDED).order_by("-until").first()
    since = last.until - sync_overlap() if last else now - DEFAULT_FIRST_WINDOW
    return since, now - ingest_lag()


def sync_start(*, actor=None, since: datetime | None = None, until: datetime | None = None):
    """Open a sync run over ``[since, until)`` (default: see ``next_window``); ``until`` is
    never later than now less the ingest lag, whose traces may still be on their way.

    When the newest run of that window (of that start, if ``until`` is not given) was
    interrupted -- its worker stopped reporting, or it failed in a way retrying can fix --
    that run is resumed from its cursor instead (``run.resumed`` is then True).
    Raises Conflict while another run is live.
    """
    now = timezone.now()
    default_since, latest = next_window(now)
    window = {"since": since or default_since}
    if until is not None:
        window["until"] = min(until, latest)
    since, until = window["since"], window.get("until", latest)
    if since >= until:  # no run, interrupted or not, has an empty window
        raise Conflict(
            f"Nothing to sync: the window {since:%Y-%m-%d %H:%M} – {until:%H:%M} is empty."
        )
    with transaction.atomic():
        running = SyncRun.objects.select_for_update().filter(status=SyncStatus.RUNNING).first()
        if running and (running.heartbeat_at or running.created_at) > now - STALE_AFTER:
            raise Conflict(f"Sync run {running.pk} is still running.")
        newest = SyncRun.objects.filter(**window).order_by("-created_at", "-id").first()
        if running and running != newest:
            # A stale run of another window: fail it so it can be resumed by its own window.
            running.status = SyncStatus.FAILED
            running.error = "The worker stopped reporting; sync the same window to resume it."
            running.retryable = True
            running.save(update_fields=["status", "error", "retryable"])
        if newest and _interrupted(newest):
            return _reopen(newest, now)
        try:
            run = SyncRun.objects.create(
                since=since,
                until=until,
                status=SyncStatus.RUNNING,
                created_by=user_of(actor),
            )
        except IntegrityError:
            raise Conflict("Another sync started at the same moment.") from None
    run.resumed = False
    return run


def _interrupted(run: SyncRun) -> bool:
    # Only called once a running run is known to be stale.
    return run.status == SyncStatus.RUNNING or (
        run.status == SyncStatus.FAILED and run.retryable is True
    )


def _reopen(run: SyncRun, now: datetime) -> SyncRun:
    """Back to running from its stored cursor; the heartbeat keeps others from taking it."""
    run.status, run.error, run.retryable, run.heartbeat_at = SyncStatus.RUNNING, "", None, now
    try:
        with transaction.atomic():
            run.save(update_fields=["status", "error", "retryable", "heartbeat_at"])
    except IntegrityError:
        raise Conflict("Another sync started at the same moment.") from None
    run.resumed = True
    return run


def sync_resume(*, run: SyncRun) -> SyncRun:
    """Put a failed run back to running; it continues from its stored cursor."""
    with transaction.atomic():
        run = SyncRun.objects.select_for_update().get(pk=run.pk)
        if run.status != SyncStatus.FAILED:
            raise Conflict(f"Sync run {run.pk} is {run.status}; only failed runs resume.")
        return _reopen(run, timezone.now())


def sync_execute(
    run_id: int,
    *,
    adapter: LangfuseAdapter | None = None,
    page_size: int = 500,
    on_page: Callable[[SyncRun], None] | None = None,
) -> SyncRun:
    """Fetch every remaining page of a running sync and store it, page by page.

    Each page is stored in one transaction with the run's counters and next cursor, so a
    crash loses at most the page in flight, which the resumed run fetches again. After a
    Langfuse failure, ``run.retry_after`` (not stored) holds the wait the server asked for.
    """
    run = SyncRun.objects.get(pk=run_id)
    run.retry_after = None
    if run.status != SyncStatus.RUNNING:
        return run
    own_adapter = adapter is None
    try:
        adapter = adapter or LangfuseAdapter.from_env()
    except LangfuseConfigError as e:
        # Never left running: a run that cannot start would block every later sync.
        _fail(run, f"Langfuse is not configured: {e}", retryable=False)
        raise
    if run.started_at is None:
        run.started_at = timezone.now()
        run.save(update_fields=["started_at"])
    reasons = Counter(run.skip_reasons)
    try:
        pages_done = run.pages > 0 and not run.cursor  # a resumed run past its last page
        if not pages_done:
            pages = adapter.iter_trace_records(
                run.since, run.until, cursor=run.cursor or None, page_size=page_size
            )
            for page, parsed in pages:
                _store_page(run, page, parsed, reasons)
                if on_page:
                    on_page(run)
        run.feedback_scores = sync_feedback(adapter, run.since, run.until)
    except LangfuseError as e:
        log.warning("sync run %s stopped: %s", run.pk, e)
        _fail(run, str(e), retryable=e.retryable)
        run.retry_after = e.retry_after
        return run
    except Exception as e:
        # A bug, not Langfuse: the run must not stay "running" and block every other sync.
        log.exception("sync run %s crashed", run.pk)
        _fail(run, f"{type(e).__name__}: {e}", retryable=False)
        raise
    else:
        run.status, run.finished_at = SyncStatus.SUCCEEDED, timezone.now()
        run.save(update_fields=["status", "finished_at", "feedback_scores"])
        # The traces are in; a Langfuse failure while checking retractions only leaves
        # them pending for the next sync.
        try:
            retractions_verify(adapter)
        except LangfuseError as e:
            log.warning("retractions not checked after sync run %s: %s", run.pk, e)
    finally:
        if own_adapter:
            adapter.close()
    return run


def sync_end(*, actor, run: SyncRun, reason: str = "") -> SyncRun:
    """End a running sync now (its worker died, or it should stop): failed and resumable,
    so the next sync of that window goes on from its cursor. Audited."""
    with transaction.atomic():
        run = SyncRun.objects.select_for_update().get(pk=run.pk)
        if run.status != SyncStatus.RUNNING:
            raise Conflict(f"Sync run {run.pk} is {run.status}, not running.")
        user = user_of(actor)
        who = user.get_username() if user else str(actor)
        _fail(run, f"ended by {who}" + (f": {reason}" if reason else ""), retryable=True)
        audit_record(
            actor=actor,
            action="sync.end",
            obj=run,
            before={"status": SyncStatus.RUNNING, "pages": run.pages, "cursor": bool(run.cursor)},
            after={"status": run.status},
            message=reason,
        )
    return run


def _fail(run: SyncRun, error: str, *, retryable: bool) -> None:
    run.status, run.error, run.retryable = SyncStatus.FAILED, error[:2000], retryable
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "error", "retryable", "finished_at"])


def _store_page(run: SyncRun, page, parsed, reasons: Counter) -> None:
    """One page in one transaction, with the run's counters and the cursor of the next page."""
    now = timezone.now()
    traces = [trace_from_record(record, now) for record in parsed.records]
    with transaction.atomic():
        created, updated = upsert_traces(traces)
        for skipped in parsed.skipped:
            reasons[skipped.reason] += 1
        run.pages += 1
        run.fetched += len(page.observations)
        run.created += created
        run.updated += updated
        run.skipped += len(parsed.skipped)
        run.skip_reasons = dict(reasons)
        run.cursor = page.next_cursor or ""
        run.heartbeat_at = now
        run.save()
