"""What-if replay: decide stored traffic again with any version (drafts included).

The decisions come from ``routing.selectors.classifier_for`` (the engine the pods run), on
each trace's stored conversation text and message count, so a replay of the live version
reproduces the live tiers. Traffic is streamed from the database in chunks: memory stays
flat in the number of traces.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from routing.models import ClassifierVersion
from routing.selectors import classifier_for

from .models import CostSettings
from .selectors import SOURCES, LabeledRow, period_traffic, source_counts, stream, training_rows
from .stats import Confusion, mcnemar, proportion

MAX_FLIPS = 500
STRONG_NEEDED = "strong_needed"


def _correct(tier: str, label: str) -> bool:
    return (tier == "strong") == (label == STRONG_NEEDED)


def replay_labeled(
    candidate: ClassifierVersion,
    start: datetime,
    end: datetime,
    *,
    baseline: ClassifierVersion | None = None,
    headline_only: bool = True,
    sources: tuple[str, ...] | None = None,
    rows: list[LabeledRow] | None = None,
) -> dict:
    """Candidate vs baseline on the same labeled items.

    The baseline is another version replayed the same way, or (None) the live tiers the
    traces were routed with. Returns both predicted confusion matrices, the flips (items
    whose tier changes) and McNemar's test on the paired right/wrong outcomes.

    Headline labels by default: with their weights the rates estimate the traffic's.
    ``sources`` adds discovery or imported labels, each weighing the requests it stands for
    (not an estimate of traffic rates any more; the result says which labels it used). When
    the candidate was made by a proposal, the labels that proposal searched on are
    in-sample for it: the result counts them and repeats the comparison without them.
    """
    summary = None
    if rows is None:
        sources = sources or (("headline",) if headline_only else SOURCES)
        rows, summary = training_rows(start, end, sources=tuple(sources))
        if tuple(sources) != ("headline",):
            rows = [replace(r, weight=float(r.requests)) for r in rows]
    new_classifier = classifier_for(candidate)
    old_classifier = classifier_for(baseline) if baseline is not None else None
    result = {
        "candidate": candidate.name,
        "baseline": baseline.name if baseline is not None else "live",
        "labels": summary["counts"] if summary else source_counts(rows),
        "label_sources": list(sources or ()),
        **_compare(rows, new_classifier, old_classifier),
    }
    built = _proposal_keys(candidate)
    if built is not None:
        proposal_id, seen_keys = built
        unseen = [r for r in rows if r.key not in seen_keys]
        seen = len(rows) - len(unseen)
        result["built_from"] = {
            "proposal": proposal_id,
            "seen": seen,
            "unseen": len(unseen),
            "unseen_comparison": _compare(unseen, new_classifier, old_classifier),
        }
        if seen:
            result["warning"] = (
                f"{candidate.name} was made by proposal #{proposal_id} from {seen} of these "
                f"{len(rows)} labels: on them its figures are in sample (optimistic). The "
                f"comparison on the {len(unseen)} labels it never saw is shown beside."
            )
    return result


def _proposal_keys(version: ClassifierVersion) -> tuple[int, set[str]] | None:
    """(proposal id, keys of the labels it searched on) when a proposal made ``version``."""
    proposal = getattr(version, "proposal", None)
    if proposal is None:
        return None
    return proposal.pk, set(proposal.result.get("label_keys") or ())


def _compare(rows: list[LabeledRow], new_classifier, old_classifier) -> dict:
    new_confusion, old_confusion = Confusion(), Confusion()
    flips: list[dict[str, Any]] = []
    b, c, compared = 0, 0, 0
    for row in rows:
        decision = new_classifier.classify_text(row.text, row.turn_count, explain=False)
        old_tier = (
            old_classifier.classify_text(row.text, row.turn_count, explain=False).tier
            if old_classifier
            else row.tier
        )
        if not old_tier:
            continue  # live tier unknown: nothing to pair with
        compared += 1
        new_confusion.add(decision.tier, row.label, row.weight)
        old_confusion.add(old_tier, row.label, row.weight)
        old_ok, new_ok = _correct(old_tier, row.label), _correct(decision.tier, row.label)
        b += old_ok and not new_ok
        c += new_ok and not old_ok
        if decision.tier != old_tier and len(flips) < MAX_FLIPS:
            flips.append(
                {
                    "item": row.item_id,
                    "batch": row.batch_id,
                    "trace": row.langfuse_id,
                    "source": row.source,
                    "old_tier": old_tier,
                    "new_tier": decision.tier,
                    "label": row.label,
                    "effect": "fixed" if new_ok else "broken",
                    "reasons": list(decision.reasons),
                    "excerpt": row.text[:160],
                }
            )
    return {
        "items": compared,
        "candidate_metrics": new_confusion.metrics(),
        "baseline_metrics": old_confusion.metrics(),
        "flips": flips,
        # Labels are binary, so every tier change turns right into wrong or back: b + c.
        "flip_count": b + c,
        "mcnemar": mcnemar(b, c).as_dict(),
    }


def replay_traffic(
    candidate: ClassifierVersion,
    start: datetime,
    end: datetime,
    *,
    costs: CostSettings | None = None,
    version: str = "",
    chunk_size: int = 5_000,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Predicted SLM usage and cost per 1k requests of ``candidate`` on a period's traffic.

    Cost per request per tier is what the period's traces cost on that tier (their recorded
    ``cost_usd``), and the attributed cost: the tier's busy time per request (latency) at
    its $/replica-hour (the ``*_hourly`` keys). A request moved to the other tier is priced
    like that tier's requests. Both are estimates; the traces' own totals are given beside
    them. The attributed cost is not the bill: replicas bill per hour whatever the load and
    concurrent requests share one, so moving traffic saves only what scaling down saves.
    """
    classify = classifier_for(candidate).classify_text
    traces = period_traffic(start, end, version=version)
    total = traces.count() if progress else 0
    n = predicted_weak = live_weak = live_strong = to_strong = to_weak = 0
    cost = {"weak": [0.0, 0], "strong": [0.0, 0]}
    busy = {"weak": [0.0, 0], "strong": [0.0, 0]}
    for text, turns, tier, cost_usd, latency in stream(
        traces, "input_text", "turn_count", "tier", "cost_usd", "latency_s", chunk_size=chunk_size
    ):
        n += 1
        new = classify(text, turns, explain=False).tier
        if new == "weak":
            predicted_weak += 1
        if tier == "weak":
            live_weak += 1
            if new == "strong":
                to_strong += 1
        elif tier == "strong":
            live_strong += 1
            if new == "weak":
                to_weak += 1
        if tier in cost:
            if cost_usd is not None:
                cost[tier][0] += cost_usd
                cost[tier][1] += 1
            if latency is not None:
                busy[tier][0] += latency
                busy[tier][1] += 1
        if progress and n % 50_000 == 0 and total:
            progress(int(95 * n / total))
    predicted_strong = n - predicted_weak

    def per_request(pair):
        return pair[0] / pair[1] if pair[1] else None

    def per_1k(weak_unit, strong_unit, weak_count, strong_count):
        if not n or weak_unit is None or strong_unit is None:
            return None
        return 1000 * (weak_unit * weak_count + strong_unit * strong_count) / n

    unit_cost = {tier: per_request(cost[tier]) for tier in cost}
    hourly = None
    if costs is not None:
        rates = {"weak": costs.weak_usd_per_hour, "strong": costs.strong_usd_per_hour}
        hourly = {
            tier: (per_request(busy[tier]) * rates[tier] / 3600)
            if per_request(busy[tier]) is not None
            else None
            for tier in busy
        }
    live_cost_n = cost["weak"][1] + cost["strong"][1]
    return {
        "candidate": candidate.name,
        "requests": n,
        "predicted_slm_usage": proportion(predicted_weak, n).as_dict(),
        "live_slm_usage": proportion(live_weak, live_weak + live_strong).as_dict(),
        "moved_to_strong": to_strong,
        "moved_to_weak": to_weak,
        "cost_per_request": unit_cost,
        "predicted_cost_per_1k": per_1k(
            unit_cost["weak"], unit_cost["strong"], predicted_weak, predicted_strong
        ),
        "live_cost_per_1k": 1000 * (cost["weak"][0] + cost["strong"][0]) / live_cost_n
        if live_cost_n
        else None,
        "hourly_cost_per_request": hourly,
        "predicted_cost_per_1k_hourly": per_1k(
            hourly["weak"], hourly["strong"], predicted_weak, predicted_strong
        )
        if hourly
        else None,
        "live_cost_per_1k_hourly": per_1k(hourly["weak"], hourly["strong"], live_weak, live_strong)
        if hourly and live_weak + live_strong == n
        else None,
    }
