"""Labeling benchmarks: Langfuse sync throughput, and reviewers' server times at 1M traces.

    .venv/bin/python -m bench.labeling [--days 17] [--per-day 3000] [--page-size 500]
                                       [--traces 1000000] [--claims 300] [--requests 60]
                                       [--try-fixes] [--skip-sync] [--skip-store]

Needs DATABASE_URL (PostgreSQL; SQLite figures would not be comparable, so it refuses),
SECRET_KEY, CELERY_BROKER_URL (label write-backs are queued there, as in production; nothing
consumes them) and STATIC_ROOT with collected static files (pages render hashed URLs). Use a
database of its own: the synthetic traces (``bench-`` Langfuse ids, in 2024) are kept between
runs so the next run skips the bulk load; the batches it draws are deleted at the end.

1. Sync: a Langfuse stand-in (``python -m labeling.standin``) runs as a separate process on
   127.0.0.1 with generated traffic; the real sync service (``sync_start`` + ``sync_execute``,
   the real SDK through the adapter) stores it. Reports traces/s and where the time goes:
   observation pages (HTTP + SDK models), parsing, feedback-score queries, and the rest
   (row building + PostgreSQL writes). A second pass over the same pages, without the
   database, splits a page fetch into HTTP, SDK pydantic models and our parser.
2. Store: tops the trace store up to ``--traces`` rows with one server-side INSERT ... SELECT
   that reuses the synced texts, draws a headline batch with ``batch_create``, then times
   ``item_claim_next`` + ``label_submit`` (the "next item" loop) and, through Django's test
   client as a logged-in reviewer, the work redirect, the item page, the label POST and the
   batch page. ``--try-fixes`` measures a rewrite not made yet (the draw in SQL).

Figures are printed, never asserted. The machine is shared: other processes skew them.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

BENCH_PREFIX = "bench-"
SYNTH_START = datetime(2024, 1, 1, tzinfo=UTC)
SYNTH_PER_DAY = 3_000  # the stand-in's default volume: 1M traces span about 11 months
HISTORY_BATCHES = 40  # past weekly batches, each fully labeled, so the item tables are not empty
HISTORY_SIZE = 1_000
INSERT_CHUNK = 100_000
STANDIN_START_TIMEOUT = 120

# ---------------------------------------------------------------- helpers


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


def ms_summary(seconds: list[float]) -> str:
    values = [s * 1000 for s in seconds]
    return (
        f"n={len(values):<4} p50 {percentile(values, 50):7.1f} ms   "
        f"p95 {percentile(values, 95):7.1f} ms   p99 {percentile(values, 99):7.1f} ms   "
        f"max {max(values):7.1f} ms"
    )


@contextmanager
def timed(label: str):
    start = time.perf_counter()
    yield
    print(f"  {label}: {time.perf_counter() - start:.1f} s", flush=True)


def section(title: str) -> None:
    print(f"\n== {title}", flush=True)


# ---------------------------------------------------------------- 1. sync


def start_standin(seed: int, days: int, per_day: int):
    """The stand-in in its own process; returns (process, base URL, first line it printed)."""
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, fixed args
        [
            sys.executable,
            "-m",
            "labeling.standin",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--seed",
            str(seed),
            "--days",
            str(days),
            "--per-day",
            str(per_day),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + STANDIN_START_TIMEOUT
    line = ""
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        found = re.search(r"at (http://127\.0\.0\.1:\d+)", line)
        if found:
            process.stdout.readline()  # the environment line
            return process, found.group(1), line.strip()
    stop_process(process)
    raise SystemExit(f"the Langfuse stand-in did not start: {line.strip() or 'no output'}")


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()  # the stand-in stops its server on SIGTERM
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    if process.stdout:
        process.stdout.close()


def timed_adapter_class():
    """The real adapter with a stopwatch around each read the sync makes."""
    from labeling.langfuse_adapter import LangfuseAdapter

    class TimedMixin:
        """A stopwatch around each read the sync makes."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.seconds = Counter()

        def iter_root_observations(self, *args, **kwargs):
            pages = super().iter_root_observations(*args, **kwargs)
            while True:
                start = time.perf_counter()
                try:
                    page = next(pages)
                except StopIteration:
                    return
                finally:
                    self.seconds["observations"] += time.perf_counter() - start
                yield page

        def iter_trace_records(self, *args, **kwargs):
            pages = super().iter_trace_records(*args, **kwargs)
            while True:
                start = time.perf_counter()
                fetched = self.seconds["observations"]
                try:
                    item = next(pages)
                except StopIteration:
                    return
                finally:
                    # What the page took beyond fetching it: parse_page.
                    elapsed = time.perf_counter() - start
                    self.seconds["parse"] += elapsed - (self.seconds["observations"] - fetched)
                yield item

        def fetch_scores(self, *args, **kwargs):
            start = time.perf_counter()
            try:
                return super().fetch_scores(*args, **kwargs)
            finally:
                self.seconds["scores"] += time.perf_counter() - start

        def iter_scores(self, *args, **kwargs):
            scores = super().iter_scores(*args, **kwargs)
            while True:
                start = time.perf_counter()
                try:
                    score = next(scores)
                except StopIteration:
                    return
                finally:
                    self.seconds["scores"] += time.perf_counter() - start
                yield score

    return type("TimedAdapter", (TimedMixin, LangfuseAdapter), {})


def sync_benchmark(args) -> None:
    from django.db import connection
    from django.utils import timezone

    from labeling.langfuse_adapter import settings_from_env
    from labeling.models import Trace
    from labeling.standin import DEFAULT_PUBLIC_KEY, DEFAULT_SECRET_KEY
    from labeling.sync import sync_execute, sync_start

    seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000
    section(
        f"Sync: stand-in with --days {args.days} --per-day {args.per_day} --seed {seed} "
        f"(separate process), page size {args.page_size}"
    )
    real = timed_adapter_class()
    # (title, adapter, stand-in seed): the what-if gets traffic of its own, so it inserts
    # new ids as the first pass did, rather than ids deleted a moment ago.
    passes = [("real adapter (inserts)", real, seed)]
    if args.resync:
        passes.append(("real adapter, same traffic again (updates)", real, seed))
    print(f"  trace store before: {Trace.objects.count():,} rows")
    first_started = None
    process, running_seed = None, None
    try:
        for title, adapter_class, pass_seed in passes:
            if pass_seed != running_seed:
                if process is not None:
                    stop_process(process)
                started = time.perf_counter()
                process, url, banner = start_standin(pass_seed, args.days, args.per_day)
                running_seed = pass_seed
                print(f"  {banner} (up after {time.perf_counter() - started:.1f} s)")
                settings = settings_from_env(
                    {
                        "LANGFUSE_BASE_URL": url,
                        "LANGFUSE_PUBLIC_KEY": DEFAULT_PUBLIC_KEY,
                        "LANGFUSE_SECRET_KEY": DEFAULT_SECRET_KEY,
                        "LANGFUSE_TIMEOUT": "60",
                    }
                )
                until = timezone.now()
                since = until - timedelta(days=args.days + 2)
            adapter = adapter_class(settings)
            page_marks = []
            try:
                run = sync_start(since=since, until=until)
                start, cpu = time.perf_counter(), time.process_time()
                run = sync_execute(
                    run.pk,
                    adapter=adapter,
                    page_size=args.page_size,
                    on_page=lambda _run, marks=page_marks: marks.append(time.perf_counter()),
                )
                wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            finally:
                adapter.close()
            first_started = first_started or run.started_at
            report_sync(title, run, start, wall, cpu, adapter, page_marks)
            if adapter_class is real and pass_seed == seed and not args.resync:
                raw_page_breakdown(settings, since, until, args.page_size, run)
    finally:
        if process is not None:
            stop_process(process)
            print("  stand-in stopped")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM labeling_trace WHERE langfuse_id LIKE %s", [BENCH_PREFIX + "%"]
        )
        (synthetic,) = cursor.fetchone()
        if synthetic and first_started:
            # The store is loaded: drop what this section synced, so every run measures
            # the same store. (A first run keeps them: their texts seed the synthetic load.)
            cursor.execute(
                "DELETE FROM labeling_trace WHERE langfuse_id NOT LIKE %s AND synced_at >= %s",
                [BENCH_PREFIX + "%", first_started],
            )
            print(f"  removed the {cursor.rowcount:,} traces this section synced")


def report_sync(title, run, start, wall, cpu, adapter, page_marks) -> None:
    stored = run.created + run.updated
    fetched = run.fetched
    seconds = adapter.seconds
    pages_phase = (page_marks[-1] - start) if page_marks else wall
    feedback_phase = wall - pages_phase
    print(f"  {title}: status {run.status}, {run.pages} pages, {wall:.1f} s")
    print(
        f"    fetched {fetched:,} traces, stored {stored:,} (created {run.created:,}, "
        f"updated {run.updated:,}), skipped {run.skipped} {dict(run.skip_reasons)}, "
        f"feedback scores applied {run.feedback_scores:,}"
    )
    print(
        f"    THROUGHPUT: {fetched / wall:,.0f} traces/s fetched, {stored / wall:,.0f} stored/s"
        f"   (this process used {cpu:.1f} s CPU: {1e6 * cpu / max(fetched, 1):.0f} µs/trace)"
    )
    gaps = [b - a for a, b in zip(page_marks, page_marks[1:], strict=False)]
    if gaps:
        print(f"    per page: {ms_summary(gaps)}")
    parts = [
        ("trace pages: fetch (HTTP + decoding)", seconds["observations"]),
        ("trace pages: parse_page (TraceRecords)", seconds["parse"]),
        (
            "trace pages: rows + PostgreSQL upsert + run row",
            pages_phase - seconds["observations"] - seconds["parse"],
        ),
        ("feedback: scores by time window (HTTP + decoding)", seconds["scores"]),
        ("feedback: PostgreSQL (select, UPDATE FROM unnest)", feedback_phase - seconds["scores"]),
    ]
    for name, value in parts:
        print(
            f"    {name:<57} {value:6.1f} s  {100 * value / wall:5.1f}%  "
            f"{1e6 * value / max(fetched, 1):6.0f} µs/trace"
        )


def raw_page_breakdown(
    settings, since, until, page_size: int, run, max_pages: int = 20, score_pages: int = 10
) -> None:
    """Take the reads apart without the database, on the first pages again.

    Observations: HTTP (stand-in + transfer), JSON decoding, the SDK's alias conversion
    (``convert_and_respect_annotation_metadata``), pydantic validation, our parser; and the
    same parser on plain JSON dicts; building rows, and writing them. Feedback
    scores (the first ``score_pages`` pages of the window): HTTP + JSON, then the SDK's
    models; their cost per trace is scaled by the run's scores per trace.
    """
    import json

    import httpx
    import pydantic
    from django.db import transaction
    from langfuse.api.core.pydantic_utilities import parse_obj_as
    from langfuse.api.core.serialization import convert_and_respect_annotation_metadata
    from langfuse.api.observations.types.observations_v2response import ObservationsV2Response
    from langfuse.api.scores.types.get_scores_v3response import GetScoresV3Response

    from labeling.langfuse_adapter import (
        EXPANDED_METADATA_KEYS,
        MAX_SCORE_PAGE,
        OBSERVATION_FIELDS,
        _iso,
        observation_filter,
        parse_page,
    )
    from labeling.sync import FEEDBACK_NAMES, trace_from_record, upsert_traces

    params = {
        "fields": OBSERVATION_FIELDS,
        "expandMetadata": ",".join(EXPANDED_METADATA_KEYS),
        "limit": str(page_size),
        "filter": json.dumps(observation_filter(since, until, None), separators=(",", ":")),
    }
    validator = pydantic.TypeAdapter(ObservationsV2Response)
    now = datetime.now(UTC)
    seconds = Counter()
    rows, trace_ids, scores = 0, [], 0

    def clock(key, func, *args, **kwargs):
        start = time.perf_counter()
        result = func(*args, **kwargs)
        seconds[key] += time.perf_counter() - start
        return result

    with httpx.Client(
        base_url=settings.host,
        auth=(settings.public_key, settings.secret_key),
        timeout=settings.timeout,
    ) as client:
        cursor = None
        for _ in range(max_pages):
            query = {**params, "cursor": cursor} if cursor else params
            response = clock("http", client.get, "/api/public/v2/observations", params=query)
            response.raise_for_status()
            data = clock("json", json.loads, response.content)
            converted = clock(
                "convert",
                convert_and_respect_annotation_metadata,
                object_=data,
                annotation=ObservationsV2Response,
                direction="read",
            )
            typed = clock("validate", validator.validate_python, converted)
            parsed = clock("parse", parse_page, typed.data)
            built = clock("rows", lambda p=parsed: [trace_from_record(r, now) for r in p.records])
            for trace in built:  # new ids: the insert path, as in a first sync
                trace.langfuse_id += "-bench"
            with transaction.atomic():
                clock("upsert", upsert_traces, built)
                transaction.set_rollback(True)
            clock("parse dicts", parse_page, data["data"])
            rows += len(data["data"])
            trace_ids += [o.get("traceId") or o["id"] for o in data["data"]]
            cursor = (data.get("meta") or {}).get("cursor")
            if not cursor:
                break
        query = {
            "fromTimestamp": _iso(since),
            "toTimestamp": _iso(until),
            "name": ",".join(FEEDBACK_NAMES),
            "limit": str(MAX_SCORE_PAGE),
            "fields": "details,subject,annotation",
        }
        cursor = None
        for _ in range(score_pages):
            page_query = {**query, "cursor": cursor} if cursor else query
            response = clock("score http", client.get, "/api/public/v3/scores", params=page_query)
            response.raise_for_status()
            data = clock("score json", json.loads, response.content)
            clock("score sdk", parse_obj_as, GetScoresV3Response, data)
            scores += len(data["data"])
            cursor = (data.get("meta") or {}).get("cursor")
            if not cursor:
                break
    if not rows:
        return
    # Scores cost per score; a sync reads (scores per trace) of them for every trace.
    per_trace = run.feedback_scores / max(run.fetched, 1)
    for key in ("score http", "score json", "score sdk"):
        seconds[key] = seconds[key] / max(scores, 1) * per_trace * rows
    print(f"  one sync taken apart (first {rows:,} traces again, nothing kept):")
    for name, key in (
        ("HTTP: stand-in query + JSON encode + transfer", "http"),
        ("json.loads", "json"),
        ("SDK alias conversion (Fern convert_and_respect...)", "convert"),
        ("SDK pydantic validation", "validate"),
        ("parse_page on SDK models", "parse"),
        ("parse_page on plain dicts (no SDK models)", "parse dicts"),
        ("trace_from_record (Trace objects, NFC text, sha256)", "rows"),
        ("upsert_traces: COPY + INSERT ON CONFLICT (rolled back)", "upsert"),
        ("feedback scores: HTTP + json.loads", ("score http", "score json")),
        ("feedback scores: SDK models (parse_obj_as)", "score sdk"),
    ):
        value = sum(seconds[k] for k in key) if isinstance(key, tuple) else seconds[key]
        print(f"    {name:<57} {1e6 * value / rows:6.0f} µs/trace")
    if scores:
        print(
            f"    (feedback: {per_trace:.3f} scores per trace; timed on {scores:,} of them, the "
            f"SDK's models cost {1000 * seconds['score sdk'] / (per_trace * rows):.2f} ms each)"
        )
    wire = sum(seconds[k] for k in ("http", "json", "score http", "score json"))
    sdk_path = wire + sum(seconds[k] for k in ("convert", "validate", "parse", "score sdk"))
    dict_path = wire + seconds["parse dicts"]
    write = seconds["rows"] + seconds["upsert"]
    print(
        f"    fetch+parse ceiling: {rows / sdk_path:,.0f} traces/s through the SDK's models, "
        f"{rows / dict_path:,.0f} traces/s from plain JSON"
    )
    print(
        f"    with writes: {rows / (dict_path + write):,.0f} traces/s from plain JSON, as the "
        f"adapter reads; {rows / (sdk_path + write):,.0f} through the SDK's models "
        "(commits excluded)"
    )


def ensure_user(username: str, role: str):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user, _ = get_user_model().objects.get_or_create(username=username)
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


def top_up_store(target: int) -> tuple[datetime, datetime]:
    """Add synthetic traces (texts of synced ones) until the store holds ``target`` rows.

    Returns the synthetic period. Ids ``bench-00000001``...; every 50th input repeats one
    seen before, about the duplicate share of real traffic, so de-duplication has work.
    """
    from django.db import connection

    from labeling.models import Trace

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), coalesce(max(substr(langfuse_id, %s)::bigint), 0) "
            "FROM labeling_trace WHERE langfuse_id LIKE %s",
            [len(BENCH_PREFIX) + 1, BENCH_PREFIX + "%"],
        )
        synthetic, last = cursor.fetchone()
    total = Trace.objects.count()
    missing = target - total
    step = 86_400 / SYNTH_PER_DAY
    if missing <= 0:
        print(f"  store already holds {total:,} traces ({synthetic:,} synthetic): no load")
    else:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS bench_template")
            cursor.execute(
                "CREATE TEMP TABLE bench_template AS "
                "SELECT (row_number() OVER (ORDER BY id)) - 1 AS rn, * FROM ("
                "  SELECT id, name, messages, input_text, input_hash, char_count, turn_count,"
                "         output, tags, tier, classifier_version, matched_keywords, cost_usd,"
                "         latency_s, ttft_s, model, feedback_score, thumbs_down,"
                "         feedback_comment, metadata"
                "  FROM labeling_trace WHERE langfuse_id NOT LIKE %s ORDER BY id DESC LIMIT 20000"
                ") t",
                [BENCH_PREFIX + "%"],
            )
            cursor.execute("SELECT count(*) FROM bench_template")
            (templates,) = cursor.fetchone()
        if not templates:
            raise SystemExit("no synced traces to copy texts from: run without --skip-sync first")
        print(f"  loading {missing:,} synthetic traces (texts of {templates:,} synced ones)")
        start = time.perf_counter()
        first = last + 1
        for lo in range(first, first + missing, INSERT_CHUNK):
            hi = min(lo + INSERT_CHUNK, first + missing) - 1
            with connection.cursor() as cursor:
                cursor.execute(
                    """
                    INSERT INTO labeling_trace (
                        langfuse_id, observation_id, started_at, name, user_id, session_id,
                        messages, input_text, input_hash, char_count, turn_count, output,
                        tags, tier, classifier_version, matched_keywords, cost_usd,
                        latency_s, ttft_s, model, feedback_score, thumbs_down,
                        feedback_comment, metadata, synced_at)
                    SELECT %(prefix)s || lpad(g::text, 8, '0'), 'obs-' || g,
                           %(start)s + make_interval(secs => g * %(step)s), t.name,
                           'bench-user-' || (g %% 400), 'bench-sess-' || (g / 3),
                           t.messages, t.input_text,
                           CASE WHEN g %% 50 = 0 THEN t.input_hash
                                ELSE encode(sha256(convert_to(t.input_hash || g, 'UTF8')), 'hex')
                           END,
                           t.char_count, t.turn_count, t.output, t.tags, t.tier,
                           t.classifier_version, t.matched_keywords, t.cost_usd, t.latency_s,
                           t.ttft_s, t.model, t.feedback_score, t.thumbs_down,
                           t.feedback_comment, t.metadata, now()
                    FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g
                    JOIN bench_template t ON t.rn = g %% %(templates)s
                    """,
                    {
                        "prefix": BENCH_PREFIX,
                        "start": SYNTH_START,
                        "step": step,
                        "lo": lo,
                        "hi": hi,
                        "templates": templates,
                    },
                )
            done = hi - first + 1
            rate = done / (time.perf_counter() - start)
            print(f"    {done:>9,} rows, {rate:,.0f} rows/s", flush=True)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE labeling_trace")
        last = first + missing - 1
    end = SYNTH_START + timedelta(seconds=(last + 1) * step)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_size_pretty(pg_total_relation_size('labeling_trace')), count(*) "
            "FROM labeling_trace"
        )
        size, count = cursor.fetchone()
    print(f"  trace store: {count:,} rows, {size} with indexes and TOAST")
    return SYNTH_START, end


def ensure_history(reviewer, period_start: datetime) -> None:
    """Past weekly batches, fully labeled, inserted directly (they are only ballast)."""
    from django.db import connection

    from labeling.models import Batch

    have = Batch.objects.filter(name__startswith="bench history").count()
    if have >= HISTORY_BATCHES:
        return
    start = time.perf_counter()
    with connection.cursor() as cursor:
        for number in range(have, HISTORY_BATCHES):
            week = period_start + timedelta(weeks=number)
            batch = Batch.objects.create(
                name=f"bench history {number + 1}",
                kind="headline",
                strategy={"kind": "headline", "size": HISTORY_SIZE, "bench": True},
                seed=number,
                period_start=week,
                period_end=week + timedelta(weeks=1),
                population=HISTORY_SIZE,
                blind=True,
            )
            first_trace = number * 7 * SYNTH_PER_DAY + 1  # that week's first trace
            cursor.execute(
                "INSERT INTO labeling_batchitem (batch_id, trace_id, position, stratum, weight,"
                " reviews_required, final_value, final_error) "
                "SELECT %s, t.id, row_number() OVER (ORDER BY t.id), '', 1.0, 1, '', '' "
                "FROM labeling_trace t WHERE t.langfuse_id >= %s ORDER BY t.langfuse_id "
                "LIMIT %s",
                [batch.pk, f"{BENCH_PREFIX}{first_trace:08d}", HISTORY_SIZE],
            )
            cursor.execute(
                "INSERT INTO labeling_label (item_id, reviewer_id, value, comment, reasons,"
                " created_at, updated_at, langfuse_sent_at, langfuse_error) "
                "SELECT i.id, %s, CASE WHEN i.id %% 3 = 0 THEN 'strong_needed'"
                " ELSE 'weak_sufficient' END, '', '[]', now(), now(), now(), '' "
                "FROM labeling_batchitem i WHERE i.batch_id = %s",
                [reviewer.pk, batch.pk],
            )
        cursor.execute("ANALYZE labeling_batchitem")
        cursor.execute("ANALYZE labeling_label")
    print(
        f"  history: {HISTORY_BATCHES} past batches of {HISTORY_SIZE:,} labeled items "
        f"({time.perf_counter() - start:.1f} s)"
    )


def time_draws(period_start: datetime, period_end: datetime, seed: int) -> None:
    from labeling.sampling import draw, period_traces

    week_end = period_start + timedelta(weeks=1)
    for title, start, end, options in (
        ("one week", period_start, week_end, {}),
        ("one week, stratified by tier", period_start, week_end, {"stratify_by_tier": True}),
        ("whole store", period_start, period_end, {}),
    ):
        began = time.perf_counter()
        sample = draw("headline", period_traces(start, end), 1000, seed, options)
        elapsed = time.perf_counter() - began
        print(
            f"  sampling.draw headline 1,000 from {title:<30} population {sample.population:>9,}"
            f"   {elapsed * 1000:8.0f} ms"
        )


def slowest_queries(func, top: int = 2):
    """Run ``func`` once with query capture; returns (result, [(ms, sql), ...] slowest first)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        result = func()
    queries = sorted(
        ((float(q["time"]) * 1000, q["sql"]) for q in captured.captured_queries), reverse=True
    )
    return result, len(captured.captured_queries), queries[:top]


def explain(sql: str) -> list[str]:
    """EXPLAIN ANALYZE a captured query inside a rolled-back transaction."""
    from django.db import connection, transaction

    if not sql.lstrip().upper().startswith("SELECT"):
        return []
    lines = []
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                lines = [row[0] for row in cursor.fetchall()]
            transaction.set_rollback(True)
    except Exception as exc:  # a captured query may not replay; say so
        lines = [f"(could not EXPLAIN: {exc})"]
    return lines


def labeling_loop(batch, reviewer, count: int, rng: random.Random) -> dict[str, list[float]]:
    """The reviewer's service calls: claim the next item, label it; ``count`` times."""
    from labeling.services import item_claim_next, label_submit

    times: dict[str, list[float]] = {"claim": [], "submit": [], "claim cpu": []}
    for _ in range(count):
        start, cpu = time.perf_counter(), time.process_time()
        item = item_claim_next(batch=batch, reviewer=reviewer)
        times["claim"].append(time.perf_counter() - start)
        times["claim cpu"].append(time.process_time() - cpu)
        if item is None:
            break
        value = rng.choices(["weak_sufficient", "strong_needed", "skipped"], [70, 27, 3])[0]
        start = time.perf_counter()
        label_submit(reviewer=reviewer, item=item, value=value)
        times["submit"].append(time.perf_counter() - start)
    return times


def page_loop(client, batch, count: int, rng: random.Random) -> dict[str, list[float]]:
    """A reviewer in the browser: /work/ (claim, redirect), the item page, the label POST."""
    from django.urls import reverse

    times: dict[str, list[float]] = {"work": [], "item": [], "post": []}
    work_url = reverse("labeling:work", args=[batch.pk])
    for _ in range(count):
        start = time.perf_counter()
        response = client.get(work_url)
        times["work"].append(time.perf_counter() - start)
        item_url = response.headers.get("Location", "")
        if response.status_code != 302 or "/items/" not in item_url:
            break
        start = time.perf_counter()
        response = client.get(item_url)
        times["item"].append(time.perf_counter() - start)
        if response.status_code != 200:
            raise SystemExit(f"item page answered {response.status_code}")
        value = rng.choices(["weak_sufficient", "strong_needed"], [70, 30])[0]
        start = time.perf_counter()
        response = client.post(item_url, {"value": value, "comment": ""})
        times["post"].append(time.perf_counter() - start)
        if response.status_code != 302:
            raise SystemExit(f"label POST answered {response.status_code}")
    return times


def batch_page_loop(client, batch, count: int) -> list[float]:
    from django.urls import reverse

    url = reverse("labeling:batch", args=[batch.pk])
    times = []
    for _ in range(count):
        start = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - start)
        if response.status_code != 200:
            raise SystemExit(f"batch page answered {response.status_code}")
    return times


def measure_reviewing(batch, reviewers, client, args, rng, heading: str) -> dict[str, list]:
    from django.urls import reverse

    print(f"  {heading}")
    service = labeling_loop(batch, reviewers[0], args.claims, rng)
    print(f"    item_claim_next (next item)     {ms_summary(service['claim'])}")
    cpu = [1000 * c for c in service["claim cpu"]]
    print(
        f"      (of which this process's own CPU: p50 {percentile(cpu, 50):.1f} ms, "
        f"p95 {percentile(cpu, 95):.1f} ms; the rest is PostgreSQL and waiting for a CPU)"
    )
    print(f"    label_submit                    {ms_summary(service['submit'])}")
    pages = page_loop(client, batch, args.requests, rng)
    print(f"    GET  /work/ (claim + redirect)  {ms_summary(pages['work'])}")
    print(f"    GET  item page                  {ms_summary(pages['item'])}")
    print(f"    POST label (+ redirect)         {ms_summary(pages['post'])}")
    batch_times = batch_page_loop(client, batch, max(10, args.requests // 2))
    print(f"    GET  batch page (500 rows)      {ms_summary(batch_times)}")

    # Where the time goes: query counts and the slowest statement of each.
    from labeling.services import item_claim_next

    probes = {
        "item_claim_next": lambda: item_claim_next(batch=batch, reviewer=reviewers[0]),
        "batch page": lambda: client.get(reverse("labeling:batch", args=[batch.pk])),
        "item page": lambda: client.get(reverse("labeling:item", args=[batch.pk, 1])),
    }
    plans = {}
    for name, probe in probes.items():
        _, count, slowest = slowest_queries(probe)
        ms, sql = slowest[0] if slowest else (0.0, "")
        print(f"    {name}: {count} queries, slowest {ms:.1f} ms: {sql[:160]}")
        plans[name] = sql
    return {"service": service, "pages": pages, "batch": batch_times, "plans": plans}


def store_benchmark(args) -> None:
    from django.test import Client

    from labeling.models import Batch
    from labeling.services import batch_create

    section(f"Store at {args.traces:,} traces")
    with timed("load"):
        period_start, period_end = top_up_store(args.traces)
    operator = ensure_user("bench-operator", "operator")
    reviewers = [
        ensure_user("bench-reviewer-1", "reviewer"),
        ensure_user("bench-reviewer-2", "reviewer"),
    ]
    ensure_history(ensure_user("bench-history-reviewer", "reviewer"), period_start)
    rng = random.Random(args.seed or 7)

    section("Sampling")
    time_draws(period_start, period_end, seed=7)
    start = time.perf_counter()
    batch = batch_create(
        actor=operator,
        kind="headline",
        period_start=period_start,
        period_end=period_end,
        size=1000,
        name=f"bench headline {datetime.now(UTC):%Y-%m-%d %H:%M:%S}",
        seed=11,
        double_review_share=0.1,
    )
    print(
        f"  batch_create headline 1,000 over the whole store: "
        f"{(time.perf_counter() - start) * 1000:.0f} ms ({batch.items.count()} items, "
        f"population {batch.population:,})"
    )

    client = Client(SERVER_NAME="127.0.0.1", **{"wsgi.url_scheme": "https"})
    client.force_login(reviewers[1])
    try:
        section("Reviewing (server time, in-process; test client as a logged-in reviewer)")
        baseline = measure_reviewing(batch, reviewers, client, args, rng, "as the code stands:")
        for name, sql in baseline["plans"].items():
            if args.explain:
                print(f"  EXPLAIN ANALYZE, slowest query of {name}:")
                for line in explain(sql):
                    print(f"    {line}")
        if args.try_fixes:
            what_ifs(period_start, period_end)
    finally:
        # The bench's own batches go; history and synthetic traces stay for the next run.
        for old in Batch.objects.filter(name__startswith="bench headline"):
            old.items.all().delete()
            old.delete()
        purge_queued_writebacks()


def what_ifs(period_start: datetime, period_end: datetime) -> None:
    """A rewrite not made yet, measured on the same data: the headline draw in SQL."""
    from django.db import connection, transaction

    from labeling.sampling import distinct_inputs, period_traces

    section("What-if (the headline draw sampled in SQL; nothing in the code changes)")
    size, seed = 1000, 7
    start = time.perf_counter()
    population = len(distinct_inputs(period_traces(period_start, period_end)))
    as_is = time.perf_counter() - start
    sample_sql = (
        "SELECT id, count(*) OVER () FROM ("
        " SELECT min(id) AS id FROM labeling_trace"
        " WHERE started_at >= %s AND started_at < %s GROUP BY input_hash) firsts "
        "ORDER BY md5(%s || ':' || id) LIMIT %s"
    )
    print(f"  headline draw over the whole store ({population:,} distinct inputs):")
    print(f"    {'distinct_inputs to Python, as the code stands':<48} {as_is * 1000:7.0f} ms")
    for title, work_mem in (("sampled in SQL", None), ("sampled in SQL, work_mem 64MB", "64MB")):
        with transaction.atomic(), connection.cursor() as cursor:
            if work_mem:
                cursor.execute(f"SET LOCAL work_mem = '{work_mem}'")
            start = time.perf_counter()
            cursor.execute(sample_sql, [period_start, period_end, str(seed), size])
            rows = cursor.fetchall()
            elapsed = time.perf_counter() - start
        print(f"    {title:<48} {elapsed * 1000:7.0f} ms ({len(rows)} ids)")


def purge_queued_writebacks() -> None:
    """Label write-backs queued on our broker database: nothing consumes them here."""
    from cascade_admin.celery import app

    try:
        purged = app.control.purge()
    except Exception as exc:  # a broker hiccup must not hide the figures
        print(f"  (could not purge queued write-backs: {exc})")
        return
    print(f"  purged {purged} queued label write-backs from the broker")


# ---------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=17, help="stand-in traffic days")
    parser.add_argument("--per-day", type=int, default=3000, help="stand-in requests a day")
    parser.add_argument("--page-size", type=int, default=500, help="sync page size (max 1000)")
    parser.add_argument("--seed", type=int, default=None, help="stand-in seed (default: new)")
    parser.add_argument("--resync", action="store_true", help="sync the same window twice")
    parser.add_argument("--traces", type=int, default=1_000_000, help="store size to reach")
    parser.add_argument("--claims", type=int, default=300, help="next-item service calls")
    parser.add_argument("--requests", type=int, default=60, help="page loops per measurement")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE slow queries")
    parser.add_argument(
        "--try-fixes", action="store_true", help="measure a rewrite not made yet (the draw in SQL)"
    )
    parser.add_argument("--skip-sync", action="store_true")
    parser.add_argument("--skip-store", action="store_true")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cascade_admin.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    if settings.CELERY_TASK_ALWAYS_EAGER:
        print(
            "Set CELERY_BROKER_URL (e.g. redis://127.0.0.1:6379/14): label write-backs are "
            "queued there as in production, not run in-process.",
            file=sys.stderr,
        )
        return 2
    if connection.vendor != "postgresql":
        print(
            f"Refusing to run on {connection.vendor}: set DATABASE_URL to a PostgreSQL database "
            "of its own; SQLite figures are not comparable with production.",
            file=sys.stderr,
        )
        return 2
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_database(), current_setting('server_version'),"
            " current_setting('shared_buffers'), current_setting('work_mem')"
        )
        database, version, shared_buffers, work_mem = cursor.fetchone()
    print(
        f"PostgreSQL {version} database {database} (shared_buffers {shared_buffers}, work_mem "
        f"{work_mem}); {os.cpu_count()} CPUs shared with the stand-in and the database; "
        f"broker {settings.CELERY_BROKER_URL.split('@')[-1]}"
    )
    print("load average at start: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    began = time.perf_counter()
    if not args.skip_sync:
        sync_benchmark(args)
    if not args.skip_store:
        store_benchmark(args)
    print(
        f"\ndone in {time.perf_counter() - began:.0f} s; load average at the end: "
        "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
