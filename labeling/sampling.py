"""Drawing labeling samples from the trace store.

Headline samples (simple random, or stratified by tier with inverse-probability weights)
are the only ones fit for estimating rates. Discovery queues (FN, FP, retry and
near-threshold candidates) look where misroutes are likely: useful for finding them,
biased for measuring them, and kept apart for that reason.

Every draw is reproducible: the same frame and seed give the same sample.

A headline sample is a simple random sample of *requests* (per tier when stratified); the
requests it drew that share an input are then labeled once, as one item weighing
(requests drawn with that input) x (requests in the frame / requests drawn). Rates stay per
request, nobody labels the same prompt twice, and a census weighs back to every request.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Min, Q, QuerySet

from .models import BatchKind, Trace
from .similarity import char_ngrams, cosine

RETRY_WINDOW_SECONDS = 300
RETRY_SIMILARITY = 0.8
# A client looping on one user id could send hundreds of requests in five minutes; each
# trace is compared with at most this many earlier ones, which keeps that case linear.
RETRY_WINDOW_LIMIT = 50


@dataclass
class Draw:
    """A sample: trace ids in labeling order, with stratum and weight for each.

    ``population`` counts requests in the frame, ``distinct`` the distinct inputs drawn
    (the items of a headline sample; the whole candidate set of a discovery queue).
    """

    trace_ids: list[int]
    population: int
    distinct: int = 0
    strata: dict[int, str] = field(default_factory=dict)
    weights: dict[int, float] = field(default_factory=dict)
    requests: dict[int, int] = field(default_factory=dict)  # requests each item stands for


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
    """Discovery queues: a random ``size`` of the distinct inputs, unweighted."""
    ids = sorted(inputs)
    chosen = rng.sample(ids, min(size, len(ids)))
    requests = {trace_id: inputs[trace_id] for trace_id in chosen}
    return Draw(chosen, sum(inputs.values()), distinct=len(ids), requests=requests)


def _requests(traces: QuerySet) -> list[int]:
    return list(traces.order_by("id").values_list("id", flat=True).iterator(chunk_size=20_000))


def _collapse(drawn: list[int], scale: float) -> tuple[list[int], dict[int, float], dict[int, int]]:
    """Drawn requests -> one item per input (the first drawn), weighing its count x scale;
    also each item's count of drawn requests."""
    hashes = dict(Trace.objects.filter(id__in=drawn).values_list("id", "input_hash"))
    items: dict[str, list[int]] = {}
    for trace_id in drawn:
        items.setdefault(hashes[trace_id], []).append(trace_id)
    firsts = [group[0] for group in items.values()]
    weights = {group[0]: len(group) * scale for group in items.values()}
    return firsts, weights, {group[0]: len(group) for group in items.values()}


def headline_random(traces: QuerySet, size: int, rng: random.Random) -> Draw:
    requests = _requests(traces)
    drawn = rng.sample(requests, min(size, len(requests)))
    items, weights, counts = _collapse(drawn, len(requests) / len(drawn) if drawn else 1.0)
    return Draw(items, len(requests), distinct=len(items), weights=weights, requests=counts)


def headline_stratified(traces: QuerySet, size: int, rng: random.Random) -> Draw:
    """Proportional allocation of the requests per tier; weights as in headline_random."""
    requests = _requests(traces)
    strata: dict[str, list[int]] = {}
    tiers = traces.order_by("id").values_list("id", "tier").iterator(chunk_size=20_000)
    for trace_id, tier in tiers:
        strata.setdefault(tier or "unknown", []).append(trace_id)
    items, labels, weights, counts = [], {}, {}, {}
    for name in sorted(strata):
        members = strata[name]
        share = max(1, round(size * len(members) / len(requests))) if size else 0
        drawn = rng.sample(members, min(share, len(members)))
        firsts, stratum_weights, stratum_counts = _collapse(drawn, len(members) / len(drawn))
        items += firsts
        weights.update(stratum_weights)
        counts.update(stratum_counts)
        labels.update(dict.fromkeys(firsts, name))
    rng.shuffle(items)  # labeling order must not reveal the stratum
    return Draw(items, len(requests), len(items), labels, weights, counts)


def retry_candidates(traces: QuerySet) -> list[int]:
    """Weak-tier traces the same user asked again, in similar words, within five minutes.

    A retry need not follow at once (A weak, B, then A again), so each trace is compared
    with every weak-answered trace of the same user in the five minutes before it (the
    newest ``RETRY_WINDOW_LIMIT`` of them). Rows come sorted by user and time, and a
    sliding window holds those earlier traces: the work grows with the traces times the
    small window, never with a user's whole history. Gaps are measured with
    ``total_seconds()``, so a day and a minute is not a minute.
    """
    rows = (
        traces.exclude(user_id="")
        .order_by("user_id", "started_at", "id")
        .values_list("id", "user_id", "started_at", "tier", "messages")
        .iterator(chunk_size=2000)
    )
    found: dict[int, None] = {}  # ordered, each original once however often it was retried
    window: deque[tuple[int, datetime, Counter]] = deque()
    user = None
    for trace_id, user_id, started_at, tier, messages in rows:
        if user_id != user:
            user = user_id
            window.clear()
        while window and (started_at - window[0][1]).total_seconds() > RETRY_WINDOW_SECONDS:
            window.popleft()
        grams = char_ngrams(last_user_text(messages))
        for earlier_id, _, earlier_grams in window:
            if earlier_id not in found and cosine(earlier_grams, grams) >= RETRY_SIMILARITY:
                found[earlier_id] = None
        if tier == "weak":
            window.append((trace_id, started_at, grams))
            if len(window) > RETRY_WINDOW_LIMIT:
                window.popleft()
    return list(found)


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
    """Draw from ``traces`` with ``seed``: ``size`` requests (headline; fewer items when
    some share an input) or ``size`` distinct candidates (discovery)."""
    options = options or {}
    rng = random.Random(seed)
    if kind == BatchKind.HEADLINE:
        if options.get("stratify_by_tier"):
            return headline_stratified(traces, size, rng)
        return headline_random(traces, size, rng)
    result = simple_random(discovery_frame(kind, traces, options), size, rng)
    result.strata = dict.fromkeys(result.trace_ids, kind)  # no weights: not for estimates
    return result


def double_review_ids(trace_ids: Iterable[int], share: float, seed: int) -> set[int]:
    """Which items two reviewers label: a seeded ``share`` of the batch."""
    ids = list(trace_ids)
    count = round(len(ids) * share)
    return set(random.Random(seed ^ 0x5EED).sample(ids, count)) if count else set()
