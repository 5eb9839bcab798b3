"""Computing a version's metrics for a period: labels (headline batches) and traffic.

Label metrics come from headline batches only, weighted by each item's inverse inclusion
probability. Traffic metrics come from every synced trace the version routed. Both are
also split into slices (language, length bucket, turn bucket, matched keyword).
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime

from . import features
from .selectors import LabeledRow, labeled_rows, period_traffic, stream
from .stats import Confusion, mean_interval, percentile, proportion

SLICE_KINDS = ("language", "length", "turns", "keyword")
NO_KEYWORD = "(no keyword)"


def slice_keys(*, messages, char_count: int, turn_count: int, keywords) -> dict[str, list[str]]:
    return {
        "language": [features.language(features.user_text(messages))],
        "length": [features.length_bucket(char_count)],
        "turns": [features.turn_bucket(turn_count)],
        "keyword": list(keywords) or [NO_KEYWORD],
    }


class TrafficTally:
    """Running totals of traffic figures; memory is constant except TTFT samples."""

    def __init__(self, keep_ttft: bool = True):
        self.requests = 0
        self.tiers = {"weak": 0, "strong": 0}
        self.cost_sum = 0.0
        self.cost_n = 0
        self.feedback_sum = 0.0
        self.feedback_sq = 0.0
        self.feedback_n = 0
        self.thumbs_down = 0
        self.thumbs_n = 0
        self.keep_ttft = keep_ttft
        self.ttft = {"weak": array("d"), "strong": array("d")}

    def add(self, tier, cost, ttft, feedback, thumbs_down) -> None:
        self.requests += 1
        if tier in self.tiers:
            self.tiers[tier] += 1
            if self.keep_ttft and ttft is not None:
                self.ttft[tier].append(ttft)
        if cost is not None:
            self.cost_sum += cost
            self.cost_n += 1
        if feedback is not None:
            self.feedback_sum += feedback
            self.feedback_sq += feedback * feedback
            self.feedback_n += 1
        if thumbs_down is not None:
            self.thumbs_n += 1
            self.thumbs_down += bool(thumbs_down)

    def as_dict(self) -> dict:
        routed = self.tiers["weak"] + self.tiers["strong"]
        out = {
            "requests": self.requests,
            "weak": self.tiers["weak"],
            "strong": self.tiers["strong"],
            "slm_usage": proportion(self.tiers["weak"], routed).as_dict(),
            "cost_per_1k": 1000 * self.cost_sum / self.cost_n if self.cost_n else None,
            "cost_total": self.cost_sum,
            "cost_known": self.cost_n,
            "satisfaction": mean_interval(self.feedback_sum, self.feedback_sq, self.feedback_n),
            "thumbs_down": proportion(self.thumbs_down, self.thumbs_n).as_dict(),
        }
        if self.keep_ttft:
            ttft = {}
            for tier, values in self.ttft.items():
                ordered = sorted(values)
                ttft[tier] = {
                    "n": len(ordered),
                    "p50": percentile(ordered, 0.5),
                    "p95": percentile(ordered, 0.95),
                }
            out["ttft"] = ttft
        return out


def label_metrics(rows: list[LabeledRow], tier_of: Callable[[LabeledRow], str]) -> dict:
    confusion = Confusion()
    for row in rows:
        confusion.add(tier_of(row), row.label, row.weight)
    return confusion.metrics()


def compute(
    version: str,
    start: datetime,
    end: datetime,
    progress: Callable[[int], None] = lambda percent: None,
) -> tuple[dict, dict]:
    """The report of ``version`` over [start, end): (inputs, result)."""
    rows, label_inputs = labeled_rows(start, end, version=version)
    rows = [r for r in rows if r.tier]  # a trace without a recorded tier cannot be judged
    progress(10)
    labels = label_metrics(rows, lambda r: r.tier)
    label_slices: dict[str, dict[str, list[LabeledRow]]] = {
        k: defaultdict(list) for k in SLICE_KINDS
    }
    for row in rows:
        keys = slice_keys(
            messages=row.messages,
            char_count=row.char_count,
            turn_count=row.turn_count,
            keywords=row.matched_keywords,
        )
        for kind, names in keys.items():
            for name in names:
                label_slices[kind][name].append(row)
    progress(20)

    traces = period_traffic(start, end, version=version)
    total = traces.count() or 1
    overall = TrafficTally()
    traffic_slices: dict[str, dict[str, TrafficTally]] = {
        k: defaultdict(lambda: TrafficTally(keep_ttft=False)) for k in SLICE_KINDS
    }
    fields = (
        "tier", "cost_usd", "ttft_s", "feedback_score", "thumbs_down",
        "messages", "char_count", "turn_count", "matched_keywords",
    )  # fmt: skip
    for index, (tier, cost, ttft, feedback, thumbs, messages, chars, turns, keywords) in enumerate(
        stream(traces, *fields), start=1
    ):
        overall.add(tier, cost, ttft, feedback, thumbs)
        keys = slice_keys(
            messages=messages, char_count=chars, turn_count=turns, keywords=keywords or ()
        )
        for kind, names in keys.items():
            for name in names:
                traffic_slices[kind][name].add(tier, cost, None, feedback, thumbs)
        if index % 20_000 == 0:
            progress(20 + int(75 * index / total))

    slices = {}
    for kind in SLICE_KINDS:
        present = set(label_slices[kind]) | set(traffic_slices[kind])
        order = features.bucket_order(kind) if kind != "keyword" else []
        ranked = [n for n in order if n in present] + sorted(present - set(order))
        slices[kind] = [
            {
                "name": name,
                "labels": label_metrics(label_slices[kind].get(name, []), lambda r: r.tier),
                "traffic": traffic_slices[kind][name].as_dict()
                if name in traffic_slices[kind]
                else TrafficTally(keep_ttft=False).as_dict(),
            }
            for name in ranked
        ]
    traffic = overall.as_dict()
    inputs = {
        **label_inputs,
        "labeled_with_tier": len(rows),
        "traces": traffic["requests"],
        "headline_only": True,
    }
    return inputs, {"labels": labels, "traffic": traffic, "slices": slices}
