"""Threshold sweep: misroute (labels) and SLM share (traffic) across length and turn thresholds,
or, for a scorer version, across the score's cut.

The version's keywords (and byte threshold) stay as they are; only ``token_threshold`` and
``turn_threshold`` vary, over the breakpoints present in the data: every length halfway
between two labeled requests' lengths, the traffic's length quantiles, and every labeled
turn count (or given grids). Labels and traffic are each read once; every grid point is then
a lookup in a cumulative sum (``tuning.search``), not a replay.

Every labeled request counts (headline, discovery and imported labels by default; a
collapsed item once per request it stands for). The Pareto front holds the points no other
point beats on both misroute and SLM share; the recommended point is, within the target
SLM range, the one with the lowest misroute, and is always shown in the table.

A scorer version is swept over its cut instead (``cut_sweep``): its keywords and thresholds
stay, every request is decided once by the engine (score, and whether a hard trigger
fired), and each cut between two observed scores is a point.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import numpy as np

from routing.models import ClassifierVersion
from routing.selectors import classifier_for

from . import proposals, selectors
from .search import Rule, Search, Settings, hit_matrix
from .stats import wilson_interval

CHART_POINTS = 600  # grid points sent to the chart besides the front (evenly thinned)


def sweep(
    version: ClassifierVersion,
    start: datetime,
    end: datetime,
    *,
    token_grid: Sequence[int] | None = None,
    turn_grid: Sequence[int] | None = None,
    target: tuple[float, float] = (0.60, 0.70),
    sources: tuple[str, ...] = selectors.SOURCES,
    progress: Callable[[int], None] = lambda p: None,
) -> dict:
    if version.scorer is not None:
        return cut_sweep(version, start, end, target=target, sources=sources, progress=progress)
    config = classifier_for(version).config
    keywords = list(config.keywords)
    rows, summary = selectors.training_rows(start, end, sources=sources)
    labels = proposals.labels_from(rows, config.byte_threshold)
    rule = Rule(frozenset(keywords), config.token_threshold, config.turn_threshold)
    progress(10)
    traffic = proposals.traffic_loader(start, end, config.byte_threshold)(keywords)
    progress(80)
    current = {"token_threshold": rule.token_threshold, "turn_threshold": rule.turn_threshold}
    requests = traffic.size if traffic is not None else 0
    result = _empty(version, start, end, summary, sources, len(rows), requests, current, target)
    if not rows and traffic is None:
        return result
    search = Search(
        labels, hit_matrix(keywords, labels.texts), keywords, traffic, rule,
        Settings(band=(target[0], target[1])),
    )  # fmt: skip
    if token_grid:
        search.T_grid = np.unique(np.asarray(token_grid, dtype=np.int64))
    if turn_grid:
        search.U_grid = np.unique(np.asarray(turn_grid, dtype=np.int64))
    if token_grid or turn_grid:
        search.prepare_cells()
    g = search.grid(frozenset(keywords))
    n_eff = float(labels.weight.sum() ** 2 / (labels.weight**2).sum()) if rows else 0.0

    def point(i: int, j: int) -> dict:
        misroute = float(g["fn"][i, j] + g["fp"][i, j])
        # No labels: no misroute.
        rate: dict[str, float | None] = {"value": None, "low": None, "high": None, "n": 0}
        if rows:
            low, high = wilson_interval(misroute * n_eff, n_eff)
            rate = {"value": misroute, "low": low, "high": high, "n": n_eff}
        return {
            "token_threshold": int(search.T_grid[i]),
            "turn_threshold": int(search.U_grid[j]),
            "slm_usage": float(g["slm"][i, j]) if traffic is not None else None,
            "misroute": rate,
            "fn_rate": float(g["fn"][i, j]) if rows else None,
            "fp_rate": float(g["fp"][i, j]) if rows else None,
        }

    misroute = g["fn"] + g["fp"]
    front = _front(misroute, g["slm"]) if traffic is not None and rows else []
    cells = sorted(set(front) | set(_thin(misroute.shape, CHART_POINTS)))
    result["points"] = [point(i, j) for i, j in cells]
    result["pareto"] = [point(i, j) for i, j in front]
    if traffic is not None and rows and (g["violation"] == 0).any():
        i, j = search.pick(misroute, g["violation"], rule)
        result["calibrated"] = point(i, j)
    now = np.argwhere(
        (search.T_grid[:, None] == rule.token_threshold)
        & (search.U_grid[None, :] == rule.turn_threshold)
    )
    result["current_point"] = point(*now[0]) if len(now) else None
    table = {(p["token_threshold"], p["turn_threshold"]): p for p in result["pareto"]}
    for key in ("calibrated", "current_point"):
        p = result[key]
        if p is not None:
            table.setdefault((p["token_threshold"], p["turn_threshold"]), p)
    result["table"] = sorted(table.values(), key=lambda p: -(p["slm_usage"] or 0))
    return result


def _empty(version, start, end, summary, sources, labeled, requests, current, target) -> dict:
    """A sweep's result before any point: what was swept, on what."""
    return {
        "version": version.name,
        "since": start.isoformat(),
        "until": end.isoformat(),
        "labels": summary["counts"],
        "label_sources": list(sources),
        "labeled": labeled,
        "requests": requests,
        "current": current,
        "target": list(target),
        "points": [],
        "pareto": [],
        "table": [],
        "calibrated": None,
        "current_point": None,
    }


def _front(misroute: np.ndarray, slm: np.ndarray) -> list[tuple[int, int]]:
    """Cells no other cell beats on both (lower misroute, higher SLM share), by SLM share."""
    cells = np.argwhere(np.ones_like(misroute, dtype=bool))
    order = np.lexsort((misroute.ravel(), -slm.ravel()))
    front: list[tuple[int, int]] = []
    best = np.inf
    for index in order:
        value = misroute.ravel()[index]
        if value < best - 1e-12:
            i, j = cells[index]
            front.append((int(i), int(j)))
            best = value
    return front


def _thin(shape: tuple[int, int], most: int) -> list[tuple[int, int]]:
    total = shape[0] * shape[1]
    step = max(1, total // most)
    return [divmod(k, shape[1]) for k in range(0, total, step)]


def _scored(classifier, texts_and_turns) -> tuple[np.ndarray, np.ndarray]:
    """(score, hard trigger fired) of each request, decided by the engine."""
    scores, forced = [], []
    for text, turns in texts_and_turns:
        decision = classifier.classify_text(text, turns, explain=False)
        scores.append(decision.score)
        forced.append(any(not r.startswith("score:") for r in decision.reasons if r != "default"))
    return np.array(scores, dtype=float), np.array(forced, dtype=bool)


def cut_sweep(
    version: ClassifierVersion,
    start: datetime,
    end: datetime,
    *,
    target: tuple[float, float] = (0.60, 0.70),
    sources: tuple[str, ...] = selectors.SOURCES,
    progress: Callable[[int], None] = lambda p: None,
) -> dict:
    """Misroute and SLM share of a scorer version at each cut of its score."""
    assert version.scorer is not None  # sweep() sends only scorer versions here
    classifier = classifier_for(version)
    rows, summary = selectors.training_rows(start, end, sources=sources)
    label_scores, label_forced = _scored(classifier, ((r.text, r.turn_count) for r in rows))
    needed = np.array([r.label == "strong_needed" for r in rows], dtype=bool)
    weight = np.array([max(1, r.requests) for r in rows], dtype=float)
    progress(20)
    traffic = selectors.stream(selectors.period_traffic(start, end), "input_text", "turn_count")
    traffic_scores, traffic_forced = _scored(classifier, traffic)
    progress(90)
    current = version.scorer["threshold"]
    result = _empty(
        version, start, end, summary, sources, len(rows), len(traffic_scores),
        {"cut": current}, target,
    )  # fmt: skip
    result["kind"] = "cut"
    observed = np.unique(np.concatenate([label_scores, traffic_scores]))
    if not len(observed):
        return result
    middles = (observed[1:] + observed[:-1]) / 2
    cuts = np.unique(np.round([observed[0] - 1, *middles, observed[-1] + 1, current], 6))
    n_eff = float(weight.sum() ** 2 / (weight**2).sum()) if rows else 0.0

    def point(cut: float) -> dict:
        strong = label_forced | (label_scores >= cut)
        fn: float | None = None
        fp: float | None = None
        rate: dict[str, float | None] = {"value": None, "low": None, "high": None, "n": 0}
        if rows:
            fn = float(weight[~strong & needed].sum() / weight.sum())
            fp = float(weight[strong & ~needed].sum() / weight.sum())
            low, high = wilson_interval((fn + fp) * n_eff, n_eff)
            rate = {"value": fn + fp, "low": low, "high": high, "n": n_eff}
        weak = ~traffic_forced & (traffic_scores < cut)
        return {
            "cut": float(cut),
            "slm_usage": float(weak.mean()) if len(weak) else None,
            "misroute": rate,
            "fn_rate": fn,
            "fp_rate": fp,
        }

    points = [point(c) for c in cuts]
    result["current_point"] = next(p for p in points if p["cut"] == round(current, 6))
    if rows and len(traffic_scores):
        misroute = np.array([p["misroute"]["value"] for p in points])
        slm = np.array([p["slm_usage"] for p in points])
        front = _front(misroute[:, None], slm[:, None])
        result["pareto"] = [points[i] for i, _ in front]
        low, high = target
        inside = [p for p in points if low <= p["slm_usage"] <= high]
        if inside:
            result["calibrated"] = min(
                inside, key=lambda p: (p["misroute"]["value"], -p["slm_usage"])
            )
    shown = {p["cut"]: p for p in points[:: max(1, len(points) // CHART_POINTS)]}
    shown.update((p["cut"], p) for p in result["pareto"])
    result["points"] = [shown[c] for c in sorted(shown)]
    table = {p["cut"]: p for p in result["pareto"]}
    for key in ("calibrated", "current_point"):
        if result[key] is not None:
            table.setdefault(result[key]["cut"], result[key])
    result["table"] = sorted(table.values(), key=lambda p: -(p["slm_usage"] or 0))
    return result
