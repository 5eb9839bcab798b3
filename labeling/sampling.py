"""Drawing labeling samples from the trace store.

Headline samples (simple random, or stratified by tier with inverse-probability weights)
are the only ones fit for estimating rates. Discovery queues (FN, FP, retry and
near-threshold candidates) look where misroutes are likely: useful for finding them,
biased for measuring them, and kept apart for that reason.

Every draw is reproducible: the same frame and seed give the same sample.

Duplicate inputs are collapsed so nobody labels the same prompt twice, but the estimates stay
per request: a headline item stands for every request that sent its input, so its weight is
(requests sharing the input) x (distinct inputs / sample size) — summed over a census, the
weights give back the number of requests.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Min, Q, QuerySet

from .models import BatchKind, Trace
from .similarity import similarity

RETRY_WINDOW_SECONDS = 300
RETRY_SIMILARITY = 0.8


@dataclass
class Draw:
    """A sample: trace ids in labeling order, with stratum and weight for each.

    ``population`` counts requests in the frame, ``distinct`` their distinct inputs.
    """

    trace_ids: list[int]
    population: int
    distinct: int = 0
    strata: dict[int, str] = field(default_factory=dict)
    weights: dict[int, float] = field(default_factory=dict)


def period_traces(start: datetime, end: datetime, *, classifier_version: str = "") -> QuerySet:
    traces = Trace.objects.filter(started_at__gte=start, started_at__lt=end)
    if classifier_version:
        traces = traces.filter(classifier_version=classifier_version)
    return traces


def distinct_inputs(traces: QuerySet) -> dict[int, int]:
    """One trace per distinct input (the earliest id) -> how many requests sent that input."""
    rows = traces.order_by().values("input_hash").annotate(first=Min("id"), requests=Count("id"))
    return {row["first"]: row["requests"] for row in rows}


def simple_random(inputs: dict[int, int], size: int, rng: random.Random) -> Draw:
    ids = sorted(inputs)
    chosen = rng.sample(ids, min(size, len(ids)))
    scale = len(ids) / len(chosen) if chosen else 1.0
    weights = {trace_id: inputs[trace_id] * scale for trace_id in chosen}
    return Draw(chosen, sum(inputs.values()), distinct=len(ids), weights=weights)


def stratified_by_tier(inputs: dict[int, int], size: int, rng: random.Random) -> Draw:
    """Proportional allocation of distinct inputs per tier; weights as in simple_random."""
    ids = sorted(inputs)
    tiers = dict(
        Trace.objects.filter(id__in=ids).values_list("id", "tier").iterator(chunk_size=5000)
    )
    strata: dict[str, list[int]] = {}
    for trace_id in ids:
        strata.setdefault(tiers.get(trace_id) or "unknown", []).append(trace_id)
    chosen, labels, weights = [], {}, {}
    for name in sorted(strata):
        members = strata[name]
        share = max(1, round(size * len(members) / len(ids))) if size else 0
        picked = rng.sample(members, min(share, len(members)))
        for trace_id in picked:
            labels[trace_id] = name
            weights[trace_id] = inputs[trace_id] * len(members) / len(picked)
        chosen += picked
    rng.shuffle(chosen)  # labeling order must not reveal the stratum
    return Draw(chosen, sum(inputs.values()), len(ids), labels, weights)


def retry_candidates(traces: QuerySet) -> list[int]:
    """Weak-tier traces the same user asked again, in similar words, within five minutes.

    Each user's traces are walked in time order; the gap is measured with
    ``total_seconds()`` so a retry a day later is not mistaken for one five minutes later.
    """
    rows = (
        traces.exclude(user_id="")
        .order_by("user_id", "started_at", "id")
        .values_list("id", "user_id", "started_at", "tier", "messages")
        .iterator(chunk_size=2000)
    )
    found, previous = [], None
    for row in rows:
        if previous and previous[1] == row[1]:
            gap = (row[2] - previous[2]).total_seconds()
            if (
                previous[3] == "weak"
                and 0 <= gap <= RETRY_WINDOW_SECONDS
                and similarity(last_user_text(previous[4]), last_user_text(row[4]))
                >= RETRY_SIMILARITY
            ):
                found.append(previous[0])
        previous = row
    return found


def last_user_text(messages) -> str:
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def discovery_frame(kind: str, traces: QuerySet, options: dict) -> dict[int, int]:
    if kind == BatchKind.FN_CANDIDATES:
        frame = traces.filter(tier="weak", thumbs_down=True)
    elif kind == BatchKind.FP_CANDIDATES:
        frame = traces.filter(
            tier="strong",
            cost_usd__gt=options.get("min_cost_usd", 0.01),
            char_count__lt=options.get("max_chars", 200),
        )
    elif kind == BatchKind.NEAR_THRESHOLD:
        token, turns = options.get("token_threshold", 500), options.get("turn_threshold", 5)
        margin = options.get("char_margin", 50)
        frame = traces.filter(
            Q(char_count__gte=token - margin, char_count__lte=token + margin)
            | Q(turn_count__in=[turns, turns + 1])
        )
    elif kind == BatchKind.RETRY:
        return distinct_inputs(traces.filter(id__in=retry_candidates(traces)))
    else:
        raise ValueError(f"not a discovery kind: {kind}")
    return distinct_inputs(frame)


def draw(kind: str, traces: QuerySet, size: int, seed: int, options: dict | None = None) -> Draw:
    """Draw ``size`` traces of ``kind`` from ``traces`` with ``seed``."""
    options = options or {}
    rng = random.Random(seed)
    if kind == BatchKind.HEADLINE:
        inputs = distinct_inputs(traces)
        if options.get("stratify_by_tier"):
            return stratified_by_tier(inputs, size, rng)
        return simple_random(inputs, size, rng)
    candidates = discovery_frame(kind, traces, options)
    result = simple_random(candidates, size, rng)
    result.strata = dict.fromkeys(result.trace_ids, kind)
    result.weights = {}  # discovery items carry no estimation weight
    return result


def double_review_ids(trace_ids: Iterable[int], share: float, seed: int) -> set[int]:
    """Which items two reviewers label: a seeded ``share`` of the batch."""
    ids = list(trace_ids)
    count = round(len(ids) * share)
    return set(random.Random(seed ^ 0x5EED).sample(ids, count)) if count else set()
