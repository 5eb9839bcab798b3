"""How good is the proposal, measured on traffic it never saw?

    .venv/bin/python -m bench.tuning [--labels 400] [--seeds 5] [--test-size 3000]
        [--traffic-days 7] [--per-day 1500] [--kind keywords|scorer] [--timing]

For each seed: generate a week of the stand-in's traffic (the period's traffic, for the SLM
share), label a simple random sample of ``--labels`` requests from it with the generator's
ground truth (duplicate inputs collapsed into one item that counts once per request, as a
headline batch does), and run the proposal search on v7 exactly as the console does
(``tuning.proposals`` minus the database: same search, same cross-validation). Then decide
two fresh, labeled test sets of ``--test-size`` requests with the base and the proposal:

- *same wordings*: new requests from the templates the labels were drawn from (another seed);
- *new wordings*: the same tasks asked in the generator's second set of wordings, which is
  used for testing only; nothing in the console ever sees it.

It prints misroute, FN and FP rates and SLM share on both test sets, the proposal's
cross-validated estimate and its in-sample figures, and the proposal's changes.
``--timing`` instead times one proposal as a worker runs it, from PostgreSQL, over 5,000
labeled inputs and 100,000 traces (``DATABASE_URL`` must name PostgreSQL; a throwaway
``test_`` database is created and dropped).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta


def _setup():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cascade_admin.settings")
    import django

    django.setup()


END = datetime(2026, 11, 23, tzinfo=UTC)


def requests_of(traffic) -> list[dict]:
    """Well-formed requests of generated traffic: text, turns, label, tier, cost."""
    from labeling.sync import input_fingerprint
    from routing.engine import conversation_text

    out = []
    for root in traffic.roots:
        try:
            messages = json.loads(root["input"])
            text = conversation_text(messages)
        except Exception:  # noqa: S112 - the generator's malformed traces are skipped
            continue
        if not text or root["traceId"] not in traffic.truth:
            continue
        tags = root.get("tags") or []
        tier = next((t.split(":", 1)[1] for t in tags if t.startswith("tier:")), "")
        out.append(
            {
                "text": text,
                "turns": len(messages),
                "label": traffic.truth[root["traceId"]],
                "tier": tier,
                "cost": root.get("totalCost"),
                "hash": input_fingerprint(text),
                "id": root["traceId"],
                "at": root["startTime"],
                "messages": messages,
            }
        )
    return out


def sample_labels(requests: list[dict], size: int, rng: random.Random):
    """A headline-style sample: ``size`` requests drawn, collapsed by input."""
    from tuning.selectors import LabeledRow

    drawn = rng.sample(requests, min(size, len(requests)))
    groups: dict[str, list[dict]] = {}
    for r in drawn:
        groups.setdefault(r["hash"], []).append(r)
    rows = []
    for h, group in groups.items():
        r = group[0]
        rows.append(
            LabeledRow(
                item_id=None, batch_id=None, trace_id=None, langfuse_id=h, started_at=END,
                weight=1.0, label=r["label"], tier=r["tier"], version="v7", text=r["text"],
                turn_count=r["turns"], char_count=len(r["text"]), messages=[],
                matched_keywords=(), source="headline", requests=len(group), input_hash=h,
            )
        )  # fmt: skip
    return rows


def traffic_arrays(requests: list[dict], byte_threshold=None):
    import numpy as np

    from tuning.search import Traffic, TrafficMatcher

    def load(terms):
        matcher = TrafficMatcher(terms)
        for r in requests:
            matcher.add(r["text"].lower())
        return Traffic(
            chars=np.array([len(r["text"]) for r in requests], dtype=np.int64),
            turns=np.array([r["turns"] for r in requests], dtype=np.int64),
            forced=np.zeros(len(requests), dtype=bool),
            hits=matcher.hits(),
        )

    return load


def engine_config(rule: dict, scorer: dict | None = None) -> dict:
    """A proposal's rule (keywords and thresholds) and scorer as the engine's config."""
    config = {
        "strong_keywords": sorted(rule["keywords"]),
        "token_threshold": rule["token_threshold"],
        "turn_threshold": rule["turn_threshold"],
    }
    if scorer is not None:
        config["scorer"] = scorer
    return config


def score(config: dict, requests: list[dict]) -> dict:
    """Misroute, FN, FP and SLM share of a config on labeled requests (each counts once),
    decided by the engine the pods run."""
    from routing.engine import build_classifier

    classifier = build_classifier(config)
    fn = fp = weak = 0
    for r in requests:
        tier = classifier.classify_text(r["text"], r["turns"]).tier
        needed = r["label"] == "strong_needed"
        weak += tier == "weak"
        fn += tier == "weak" and needed
        fp += tier == "strong" and not needed
    n = len(requests)
    return {"misroute": (fn + fp) / n, "fn": fn / n, "fp": fp / n, "slm": weak / n}


def one_seed(seed: int, args) -> dict:
    import numpy as np

    from labeling.standin.traffic import V7_CONFIG as V7
    from labeling.standin.traffic import generate_traffic
    from tuning import proposal, scorer_proposal
    from tuning.proposals import labels_from
    from tuning.search import Rule, Settings
    from tuning.terms import terms_many

    period = requests_of(
        generate_traffic(seed=seed, days=args.traffic_days, per_day=args.per_day, end=END)
    )
    per_day = max(1, args.test_size // 1)
    same = requests_of(generate_traffic(seed=seed + 1000, days=1, per_day=per_day, end=END))
    new = requests_of(
        generate_traffic(seed=seed + 2000, days=1, per_day=per_day, end=END, wordings="test")
    )
    same, new = same[: args.test_size], new[: args.test_size]
    rows = sample_labels(period, args.labels, random.Random(seed))
    labels = labels_from(rows, None)
    base = Rule(frozenset(V7["strong_keywords"]), V7["token_threshold"], V7["turn_threshold"])
    started = time.perf_counter()
    if args.kind == "scorer":
        result = scorer_proposal.propose_scorer(
            labels, base, Settings(band=(0.60, 0.70)), traffic_arrays(period),
            folds=args.folds, seed=seed,
        )  # fmt: skip
    else:
        result = proposal.propose(
            labels, terms_many(labels.texts), base, Settings(band=(0.60, 0.70)),
            traffic_arrays(period), folds=args.folds, seed=seed,
        )  # fmt: skip
    elapsed = time.perf_counter() - started
    rule = engine_config(result["rule"], result.get("scorer"))
    base = engine_config(result["base_rule"])
    return {
        "seed": seed,
        "labeled_inputs": len(rows),
        "labeled_requests": int(np.sum(labels.weight)),
        "seconds": elapsed,
        "base_same": score(base, same),
        "base_new": score(base, new),
        "prop_same": score(rule, same),
        "prop_new": score(rule, new),
        "cv": result["estimate"]["misroute"]["value"],
        "cv_low": result["estimate"]["misroute"]["low"],
        "cv_high": result["estimate"]["misroute"]["high"],
        "in_sample": result["in_sample"]["misroute"]["value"],
        "slm_traffic": result["estimate"]["slm_share"]["value"],
        "beats": result["beats_base"],
        "p_mid": result["mcnemar"]["p_mid"],
        "changes": [
            f"{c['op']} {c.get('term') or c.get('field') or c.get('features')}"
            + (f" {c['from']}->{c['to']}" if c["op"] == "threshold" else "")
            for c in result["changes"]
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=int, default=400)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=101)
    parser.add_argument("--test-size", type=int, default=3000)
    parser.add_argument("--traffic-days", type=int, default=7)
    parser.add_argument("--per-day", type=int, default=1500)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--kind", choices=["keywords", "scorer"], default="keywords")
    parser.add_argument("--timing", action="store_true")
    args = parser.parse_args()
    _setup()
    if args.timing:
        return timing(kind=args.kind)
    results = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        r = one_seed(seed, args)
        results.append(r)
        print(
            f"seed {seed}: {r['labeled_inputs']} inputs / {r['labeled_requests']} requests, "
            f"{r['seconds']:.1f} s; beats={r['beats']} (mid-p {r['p_mid']})\n"
            f"  changes: {', '.join(r['changes']) or '(none)'}",
            flush=True,
        )
        for key in ("base_same", "prop_same", "base_new", "prop_new"):
            s = r[key]
            print(
                f"  {key:10} misroute {s['misroute']:6.1%}  FN {s['fn']:6.1%}  FP {s['fp']:6.1%}"
                f"  SLM {s['slm']:6.1%}"
            )
        print(
            f"  CV estimate {r['cv']:.1%} [{r['cv_low']:.1%}, {r['cv_high']:.1%}], in-sample "
            f"{r['in_sample']:.1%}, SLM on the period's traffic {r['slm_traffic']:.1%}",
            flush=True,
        )

    def mean(key, sub=None):
        values = [r[key][sub] if sub else r[key] for r in results]
        return statistics.mean(values)

    print(f"\nmean over {len(results)} seeds ({args.labels} labels each):")
    for key in ("base_same", "prop_same", "base_new", "prop_new"):
        print(
            f"  {key:10} misroute {mean(key, 'misroute'):6.1%}  FN {mean(key, 'fn'):6.1%}  "
            f"FP {mean(key, 'fp'):6.1%}  SLM {mean(key, 'slm'):6.1%}"
        )
    gap = statistics.mean(abs(r["cv"] - r["prop_same"]["misroute"]) for r in results)
    print(
        f"  CV estimate {mean('cv'):6.1%} (mean |CV - same-wording held-out| {gap:.1%}), "
        f"in-sample {mean('in_sample'):6.1%}"
    )


def timing(labels: int = 5_000, traces: int = 100_000, kind: str = "keywords") -> None:
    """One proposal as the worker runs it (``tuning.proposals.run``: reading labels and
    traffic from PostgreSQL, mining terms, searching, 10-fold cross-validation) over
    ``labels`` labeled inputs and ``traces`` traces, in a throwaway database."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from labeling.models import Batch, BatchItem, Label, Trace
    from labeling.standin.traffic import generate_traffic
    from routing.baseline import ensure_v7
    from routing.models import ClassifierVersion, Keyword, KeywordSet
    from tuning import proposals

    if connection.vendor != "postgresql":
        sys.exit("--timing needs PostgreSQL (DATABASE_URL)")
    original = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        began = time.perf_counter()
        generated = requests_of(
            generate_traffic(seed=7, days=7, per_day=traces // 7 + 500, end=END)
        )[:traces]
        rows = [
            Trace(
                langfuse_id=r["id"], started_at=r["at"], messages=r["messages"],
                input_text=r["text"], input_hash=r["hash"], char_count=len(r["text"]),
                turn_count=r["turns"], tier=r["tier"], classifier_version="v7",
                cost_usd=r["cost"],
            )
            for r in generated
        ]  # fmt: skip
        truth = {r["id"]: r["label"] for r in generated}
        Trace.objects.bulk_create(rows, batch_size=5_000)
        ensure_v7(ClassifierVersion, KeywordSet, Keyword, END)
        reviewer = get_user_model().objects.create_user("bench-reviewer")
        first_of_input: dict[str, Trace] = {}
        for trace in Trace.objects.order_by("id").only("id", "input_hash", "langfuse_id"):
            first_of_input.setdefault(trace.input_hash, trace)
        chosen = random.Random(7).sample(
            list(first_of_input.values()), min(labels, len(first_of_input))
        )
        batch = Batch.objects.create(
            name="bench", kind="headline", strategy={}, seed=7, population=len(rows),
            period_start=END - timedelta(days=8), period_end=END,
        )  # fmt: skip
        items = BatchItem.objects.bulk_create(
            BatchItem(batch=batch, trace=t, position=i) for i, t in enumerate(chosen, 1)
        )
        Label.objects.bulk_create(
            Label(item=item, reviewer=reviewer, value=truth[t.langfuse_id])
            for item, t in zip(items, chosen, strict=True)
        )
        print(
            f"filled {len(rows):,} traces ({len(first_of_input):,} distinct inputs) and "
            f"{len(chosen):,} labeled inputs in {time.perf_counter() - began:.1f} s",
            flush=True,
        )
        params = {"base": "v7", "since": (END - timedelta(days=8)).isoformat(),
                  "until": END.isoformat(), "kind": kind}  # fmt: skip
        began = time.perf_counter()
        stages = []
        result = proposals.run(params, progress=lambda p: stages.append((p, time.perf_counter())))
        seconds = time.perf_counter() - began
        print(
            f"proposal over {len(chosen):,} labeled inputs and {result['traffic_requests']:,} "
            f"traces: {seconds:.1f} s on one process ({kind}, {result['folds']}-fold CV, "
            f"{result.get('candidate_terms', result.get('model', {}).get('features'))} "
            f"candidate terms or features, {len(result['changes'])} changes; "
            f"CV misroute {result['estimate']['misroute']['value']:.1%}, base "
            f"{result['base']['misroute']['value']:.1%})"
        )
    finally:
        connection.creation.destroy_test_db(original, verbosity=0)


if __name__ == "__main__":
    sys.exit(main())
