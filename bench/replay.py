"""Replay throughput over synced traces in PostgreSQL, and its memory.

    DATABASE_URL=postgres://... SECRET_KEY=... .venv/bin/python -m bench.replay \
        [--traces 1000000] [--sizes 100000,1000000] [--chunk 5000]

Creates a throwaway test database (``test_<name>``), fills it with N traces copied from the
traffic generator's requests (real conversations, routed by v7), then times
``tuning.replay.replay_traffic`` of v7 end to end: the query, streaming rows in chunks
through a server-side cursor, the engine's decision on each, the tallies. Each size runs in
a fresh process so peak RSS (``VmHWM``) is that run's own: flat memory means the
figure does not grow with N.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time


def _setup():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cascade_admin.settings")
    import django

    django.setup()


def fill(n: int) -> None:
    """Insert n traces with COPY (fast), cycling through a day of generated requests."""
    from datetime import UTC, datetime, timedelta

    from django.db import connection

    from labeling.standin import generate_traffic
    from routing.engine import conversation_text

    end = datetime(2026, 11, 20, tzinfo=UTC)
    roots = generate_traffic(seed=3, days=1, per_day=3000, end=end).roots
    templates = []
    for root in roots:
        try:
            messages = json.loads(root["input"])
            text = conversation_text(messages)
        except Exception:  # noqa: S112 - malformed traces are part of the generator's mix
            continue
        tier = next((t.split(":")[1] for t in root.get("tags", []) if t.startswith("tier:")), "")
        templates.append(
            (json.dumps(messages, ensure_ascii=False), text, len(text), len(messages), tier)
        )
    start = end - timedelta(days=7)
    step = timedelta(days=7) / n
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE labeling_trace CASCADE")
        copy_sql = (
            "COPY labeling_trace (langfuse_id, observation_id, started_at, name, user_id, "
            "session_id, messages, input_text, input_hash, char_count, turn_count, output, "
            "tags, tier, classifier_version, matched_keywords, cost_usd, latency_s, ttft_s, "
            "model, feedback_comment, metadata, synced_at) FROM STDIN"
        )
        raw = cursor.cursor
        batch = 50_000
        for first in range(0, n, batch):
            buffer = io.StringIO()
            for i in range(first, min(n, first + batch)):
                messages, text, chars, turns, tier = templates[i % len(templates)]
                at = (start + step * i).isoformat()
                cost = 0.012 if tier == "strong" else 0.0003
                latency = 18.0 if tier == "strong" else 3.0
                row = [
                    f"bench-{i}", "", at, "llm_request", "u", "s", messages, text,
                    f"h{i % len(templates)}", str(chars), str(turns), "", "[]", tier, "v7", "[]",
                    str(cost), str(latency), "0.5", "", "", "{}", at,
                ]  # fmt: skip
                buffer.write("\t".join(_escape(v) for v in row) + "\n")
            with raw.copy(copy_sql) as copy:
                copy.write(buffer.getvalue())
        cursor.execute("ANALYZE labeling_trace")


def _escape(value: str) -> str:
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def measure(limit: int, chunk: int) -> dict:
    """Replay the first ``limit`` traces (by time) with v7; this process's figures."""
    from datetime import UTC, datetime, timedelta

    from django.utils import timezone

    from labeling.models import Trace
    from routing.baseline import ensure_v7
    from routing.models import ClassifierVersion, Keyword, KeywordSet
    from tuning.replay import replay_traffic

    v7 = ensure_v7(ClassifierVersion, KeywordSet, Keyword, timezone.now())
    start = datetime(2026, 11, 13, tzinfo=UTC)
    ordered = Trace.objects.order_by("started_at").values_list("started_at", flat=True)
    end = ordered[limit - 1] + timedelta(microseconds=1)
    rss_before = _peak_rss_kb()
    began = time.perf_counter()
    result = replay_traffic(v7, start, end, chunk_size=chunk)
    seconds = time.perf_counter() - began
    rss_after = _peak_rss_kb()
    return {
        "traces": result["requests"],
        "seconds": round(seconds, 2),
        "traces_per_second": round(result["requests"] / seconds),
        "peak_rss_mb": round(rss_after / 1024, 1),
        "rss_growth_mb": round((rss_after - rss_before) / 1024, 1),
        "moved": result["moved_to_strong"] + result["moved_to_weak"],
    }


def _peak_rss_kb() -> int:
    """This process's peak resident set (VmHWM): unlike ru_maxrss, not inherited across exec."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=1_000_000)
    parser.add_argument("--sizes", default="", help="Comma-separated replay sizes (<= traces).")
    parser.add_argument("--chunk", type=int, default=5_000)
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    _setup()
    from django.db import connection

    if args.child:  # one measurement in its own process, on the database the parent made
        name, limit = args.child.rsplit(":", 1)
        connection.settings_dict["NAME"] = name
        print(json.dumps(measure(int(limit), args.chunk)))
        return

    original = connection.settings_dict["NAME"]
    name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        began = time.perf_counter()
        fill(args.traces)
        print(f"filled {args.traces:,} traces in {time.perf_counter() - began:.1f} s")
        sizes = [int(s) for s in args.sizes.split(",") if s] or [args.traces // 10, args.traces]
        for size in sizes:
            out = subprocess.run(  # noqa: S603 - our own module, our own arguments
                [sys.executable, "-m", "bench.replay", "--chunk", str(args.chunk),
                 "--child", f"{name}:{size}"],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"replay {figures['traces']:>9,} traces: {figures['seconds']:6.2f} s, "
                f"{figures['traces_per_second']:>8,} traces/s, peak RSS "
                f"{figures['peak_rss_mb']} MB (+{figures['rss_growth_mb']} MB during replay), "
                f"{figures['moved']} decisions differ from live"
            )
    finally:
        connection.creation.destroy_test_db(original, verbosity=0)


if __name__ == "__main__":
    main()
