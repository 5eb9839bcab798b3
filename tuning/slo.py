"""Judging a report against the SLO targets: pass, fail, or not enough data.

A figure with an interval passes only when the whole interval meets the target and fails
only when the whole interval misses it; an interval that straddles the target is *not
enough data*, never a pass. Every figure, interval or not, needs ``min_samples``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .models import Metric, SloTarget

PASS = "pass"  # noqa: S105 - a verdict, not a password
FAIL = "fail"
UNKNOWN = "not enough data"


@dataclass
class Verdict:
    target: SloTarget
    status: str
    value: float | None
    low: float | None
    high: float | None
    n: float
    why: str = ""

    @property
    def metric(self) -> str:
        return self.target.metric

    @property
    def is_rate(self) -> bool:
        return self.metric in (Metric.MISROUTE, Metric.SLM_USAGE, Metric.THUMBS_DOWN)

    def as_dict(self) -> dict:
        return {
            "metric": self.metric,
            "target": self.target.describe(),
            "status": self.status,
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "why": self.why,
        }


def _inside(target: SloTarget, x: float) -> bool:
    if target.low is not None and (
        x < target.low or (x == target.low and not target.low_inclusive)
    ):
        return False
    return not (
        target.high is not None
        and (x > target.high or (x == target.high and not target.high_inclusive))
    )


def judge(target: SloTarget, value, low, high, n) -> Verdict:
    if value is None or not n:
        return Verdict(target, UNKNOWN, value, low, high, n or 0, "no data")
    if n < target.min_samples:
        # Always, interval or not: two ratings of 5 have an interval of zero width.
        return Verdict(
            target, UNKNOWN, value, low, high, n, f"only {n:g} samples (needs {target.min_samples})"
        )
    if low is not None and high is not None:
        # The interval meets the target only if both ends do; a range target (SLM usage)
        # is convex, so the ends decide for the whole interval.
        if _inside(target, low) and _inside(target, high):
            return Verdict(target, PASS, value, low, high, n)
        whole_below = target.low is not None and not _inside(target, high) and high <= target.low
        whole_above = target.high is not None and not _inside(target, low) and low >= target.high
        if whole_below or whole_above:
            return Verdict(target, FAIL, value, low, high, n)
        return Verdict(target, UNKNOWN, value, low, high, n, "the interval straddles the target")
    return Verdict(target, PASS if _inside(target, value) else FAIL, value, low, high, n)


def figure(result: dict, metric: str) -> tuple:
    """(value, low, high, n) of ``metric`` in a report result (labels / traffic parts)."""
    labels, traffic = result.get("labels", {}), result.get("traffic", {})
    if metric == Metric.MISROUTE:
        r = labels.get("misroute") or {}
        return r.get("value"), r.get("low"), r.get("high"), r.get("n", 0)
    if metric in (Metric.SLM_USAGE, Metric.THUMBS_DOWN, Metric.SATISFACTION):
        r = traffic.get(metric) or {}
        return r.get("value"), r.get("low"), r.get("high"), r.get("n", 0)
    if metric == Metric.COST_PER_1K:
        return traffic.get("cost_per_1k"), None, None, traffic.get("cost_known", 0)
    tier = "weak" if metric == Metric.TTFT_P95_WEAK else "strong"
    t = (traffic.get("ttft") or {}).get(tier) or {}
    return t.get("p95"), None, None, t.get("n", 0)


def evaluate(result: dict, targets: list[SloTarget]) -> list[Verdict]:
    return [judge(target, *figure(result, target.metric)) for target in targets]


def warnings(verdicts: list[Verdict]) -> list[str]:
    """The spec's caution: a good misroute rate is no success if SLM usage is off target."""
    by_metric = {v.metric: v for v in verdicts}
    misroute, usage = by_metric.get(Metric.MISROUTE), by_metric.get(Metric.SLM_USAGE)
    notes = []
    if misroute and usage and misroute.status == PASS and usage.status != PASS:
        notes.append(
            "Misroute passes, but SLM usage is "
            + ("outside" if usage.status == FAIL else "not shown to be inside")
            + f" its target ({usage.target.describe()}): a classifier that sends nearly "
            "everything to one tier can have few misroutes and still fail on cost or quality. "
            "Misroute alone is not success."
        )
    return notes
