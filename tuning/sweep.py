"""Threshold sweep: misroute (labels) and SLM usage (traffic) across length and turn thresholds.

The version's keywords (and byte threshold) stay as they are; only ``token_threshold`` and
``turn_threshold`` vary. Labeled items and traffic are each read once: traffic becomes a
histogram over (length bucket, turn count), so every grid point costs a sum, not a replay.
The Pareto front holds the points no other point beats on both misroute and SLM share;
calibration picks, within a target SLM-share range, the point with the lowest misroute.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime

from routing.models import ClassifierVersion
from routing.selectors import classifier_for

from .selectors import labeled_rows, period_traffic, stream
from .stats import Confusion

TOKEN_GRID = (150, 200, 250, 300, 350, 400, 450, 500, 600, 700, 800, 1000, 1200, 1500, 2000)
TURN_GRID = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 15)


def _forced_strong(classifier, text: str) -> bool:
    """Strong whatever the length and turn thresholds: a keyword or the byte rule."""
    if classifier.scan(text):
        return True
    limit = classifier.config.byte_threshold
    return limit is not None and len(text.encode("utf-8")) > limit


def sweep(
    version: ClassifierVersion,
    start: datetime,
    end: datetime,
    *,
    token_grid: Sequence[int] = TOKEN_GRID,
    turn_grid: Sequence[int] = TURN_GRID,
    target: tuple[float, float] = (0.60, 0.70),
    progress: Callable[[int], None] = lambda p: None,
) -> dict:
    classifier = classifier_for(version)
    token_grid, turn_grid = sorted(set(token_grid)), sorted(set(turn_grid))
    rows, _ = labeled_rows(start, end)
    labeled = [
        (_forced_strong(classifier, r.text), len(r.text), r.turn_count, r.label, r.weight)
        for r in rows
    ]
    progress(10)
    # Traffic: requests not forced strong, by (first token-grid index whose threshold their
    # length does not exceed, turn count capped just past the grid).
    histogram: Counter = Counter()
    requests = 0
    turn_cap = turn_grid[-1] + 1
    for text, turns in stream(period_traffic(start, end), "input_text", "turn_count"):
        requests += 1
        if not _forced_strong(classifier, text):
            histogram[(bisect_left(token_grid, len(text)), min(turns, turn_cap))] += 1
    progress(80)
    points = []
    for ti, token in enumerate(token_grid):
        for turn in turn_grid:
            weak = sum(
                count
                for (bucket, turns), count in histogram.items()
                if bucket <= ti and turns <= turn
            )
            confusion = Confusion()
            for forced, chars, turns, label, weight in labeled:
                strong = forced or chars > token or turns > turn
                confusion.add("strong" if strong else "weak", label, weight)
            metrics = confusion.metrics()
            points.append(
                {
                    "token_threshold": token,
                    "turn_threshold": turn,
                    "slm_usage": weak / requests if requests else None,
                    "misroute": metrics["misroute"],
                    "fn_rate": metrics["fn_rate"]["value"],
                    "fp_rate": metrics["fp_rate"]["value"],
                }
            )
    current = {"token_threshold": version.token_threshold, "turn_threshold": version.turn_threshold}
    return {
        "version": version.name,
        "since": start.isoformat(),
        "until": end.isoformat(),
        "labeled": len(labeled),
        "requests": requests,
        "current": current,
        "target": list(target),
        "points": points,
        "pareto": pareto(points),
        "calibrated": calibrate(points, target, current),
    }


def _usable(point: dict) -> bool:
    return point["slm_usage"] is not None and point["misroute"]["value"] is not None


def pareto(points: list[dict]) -> list[dict]:
    """Points no other point beats on both (lower misroute, higher SLM share), by SLM share."""
    usable = sorted(
        (p for p in points if _usable(p)),
        key=lambda p: (-p["slm_usage"], p["misroute"]["value"]),
    )
    front, best = [], float("inf")
    for point in usable:
        if point["misroute"]["value"] < best:
            front.append(point)
            best = point["misroute"]["value"]
    return front


def calibrate(points: list[dict], target: tuple[float, float], current: dict) -> dict | None:
    """Within the target SLM range, the lowest misroute (ties: nearest the current setting)."""
    low, high = target
    inside = [p for p in points if _usable(p) and low <= p["slm_usage"] <= high]
    if not inside:
        return None

    def distance(p):
        return abs(p["token_threshold"] - current["token_threshold"]) / 100 + abs(
            p["turn_threshold"] - current["turn_threshold"]
        )

    return min(inside, key=lambda p: (p["misroute"]["value"], distance(p)))
