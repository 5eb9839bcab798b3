"""Propose the next version from labels, with estimates measured out of sample.

Pure Python (no Django): ``propose`` takes the labeled rows as arrays, the base rule, a
loader for the traffic and the settings, and returns a JSON-ready result.

The estimates are cross-validated: the labeled rows are split into k folds (rows with the
same input always in the same fold), and for each fold the *whole* search (candidate terms
mined from the other folds' text, then additions, removals and thresholds) runs on the
other folds and decides the fold's rows. Every row is so decided by a rule that never saw
its label; the out-of-fold decisions give the misroute, FN and FP rates with intervals.
The proposal itself is the search run on all rows; its in-sample figures are shown as such.

"Beats the base" needs a lower out-of-fold misroute than the base's on the same rows and
McNemar's mid-p below 0.05, counted over distinct inputs (duplicates of one input are not
independent evidence).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from routing.engine.config import MAX_KEYWORD_LENGTH

from .features import language
from .keywords import score_terms
from .search import Labels, Rule, Search, Settings, Traffic, assign_folds, hit_matrix
from .stats import mcnemar, proportion, weighted_proportion

SIGNIFICANCE = 0.05
MIN_ROWS = 20


class ProposalError(ValueError):
    """The labels cannot support a proposal (too few, one class only); the text says why."""


def mine_pool(
    docs: Sequence[set[str]], labels: Labels, rows: np.ndarray, base: Rule, settings: Settings
) -> list[str]:
    """Candidate terms from the training rows' prose: in at least ``min_support`` distinct
    strong-needed inputs, ranked by log-odds against weak-sufficient ones."""
    positives = [docs[i] for i in rows if labels.needed[i]]
    negatives = [docs[i] for i in rows if not labels.needed[i]]
    scored = score_terms(positives, negatives, [docs[i] for i in rows])
    pool: list[str] = []
    for term, z, support, _ in scored:
        if z <= 0 or len(pool) >= settings.pool_size:
            break
        usable = 0 < len(term) <= MAX_KEYWORD_LENGTH and term.strip() == term
        if usable and support >= settings.min_support and term not in base.keywords:
            pool.append(term)
    return pool


def _dedupe(
    pool: list[str], matrix: np.ndarray, index: dict[str, int], rows, traffic: Traffic | None
) -> list[str]:
    """Of terms with the same hits on the training rows, keep one: the labels cannot tell
    them apart, so keep the one that moves the least unlabeled traffic (evidence covers only
    what was labeled), then the longest ("교착상태" over "상태")."""

    def spread(term: str) -> int:
        if traffic is None:
            return 0
        hits = traffic.hits.get(term)
        return 0 if hits is None else len(hits)

    kept, seen = [], set()
    for term in sorted(pool, key=lambda t: (spread(t), -len(t), t)):
        signature = np.packbits(matrix[index[term], rows]).tobytes()
        if signature not in seen:
            seen.add(signature)
            kept.append(term)
    return kept


def _rate(pairs) -> dict:
    rate = weighted_proportion(pairs)
    return {"value": rate.value, "low": rate.low, "high": rate.high, "n": rate.n}


def figures(
    labels: Labels, strong: np.ndarray, rows: np.ndarray, langs: Sequence[str]
) -> dict[str, Any]:
    """Misroute, FN and FP rates (per request) of decisions ``strong`` on ``rows``."""
    y, w = labels.needed[rows], labels.weight[rows]
    s = strong[rows]
    result = {
        "misroute": _rate(zip(w, s != y, strict=True)),
        "fn_rate": _rate(zip(w, ~s & y, strict=True)),
        "fp_rate": _rate(zip(w, s & ~y, strict=True)),
        "labeled_slm_share": _rate(zip(w, ~s, strict=True)),
        "requests": int(w.sum()),
        "inputs": len(rows),
    }
    by_language = {}
    for lang in ("ko", "en", "mixed"):
        mask = np.array([langs[i] == lang for i in rows], dtype=bool)
        if mask.any():
            by_language[lang] = _rate(zip(w[mask], (s != y)[mask], strict=True))
    result["by_language"] = by_language
    return result


def checked_folds(labels: Labels, folds: int, seed: int) -> np.ndarray:
    """Each row's fold; ProposalError when the labels cannot support a proposal."""
    if labels.size < MIN_ROWS:
        raise ProposalError(f"{labels.size} labeled inputs; a proposal needs at least {MIN_ROWS}.")
    if labels.needed.all() or not labels.needed.any():
        raise ProposalError("The labels hold only one class; both strong and weak are needed.")
    fold_of = assign_folds(labels.group, labels.weight, folds, seed)
    if len(set(fold_of.tolist())) < folds:
        raise ProposalError(
            f"Too few distinct inputs ({len(set(labels.group))}) for {folds} folds."
        )
    return fold_of


def propose(
    labels: Labels,
    docs: Sequence[set[str]],
    base: Rule,
    settings: Settings,
    load_traffic: Callable[[list[str]], Traffic | None],
    *,
    folds: int = 10,
    seed: int = 0,
    unit_costs: dict[str, float | None] | None = None,
    progress: Callable[[int], None] = lambda p: None,
) -> dict[str, Any]:
    """Search the next version and estimate it out of sample (see the module docstring)."""
    n = labels.size
    fold_of = checked_folds(labels, folds, seed)
    everything = np.arange(n)
    splits = [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(folds)]
    pools = [mine_pool(docs, labels, train, base, settings) for train, _ in splits]
    pools.append(mine_pool(docs, labels, everything, base, settings))
    progress(15)

    terms = sorted(base.keywords | {t for pool in pools for t in pool})
    index = {t: i for i, t in enumerate(terms)}
    matrix = hit_matrix(terms, labels.texts)
    traffic = load_traffic(terms)
    progress(40)

    langs = [language(text) for text in labels.texts]
    oof = np.zeros(n, dtype=bool)
    fold_rules = []
    for f, (train, held_out) in enumerate(splits):
        search = Search(labels, matrix, terms, traffic, base, settings, rows=train)
        pool = _dedupe(pools[f], matrix, index, train, traffic)
        outcome, _ = search.run(pool)
        oof[held_out] = Search(labels, matrix, terms, None, base, settings, rows=held_out).strong(
            outcome.rule
        )
        fold_rules.append(_summary(base, outcome.rule))
        progress(40 + int(45 * (f + 1) / folds))

    final_search = Search(labels, matrix, terms, traffic, base, settings)
    outcome, steps = final_search.run(_dedupe(pools[-1], matrix, index, everything, traffic))
    rule = outcome.rule
    everywhere = Search(labels, matrix, terms, None, base, settings)
    base_strong, final_strong = everywhere.strong(base), everywhere.strong(rule)
    progress(95)

    estimate = figures(labels, oof, everything, langs)
    base_figures = figures(labels, base_strong, everything, langs)
    in_sample = figures(labels, final_strong, everything, langs)
    shares = None
    if traffic is not None and traffic.size:
        shares = traffic_figures(
            {
                "base": final_search.traffic_strong(base),
                "proposal": final_search.traffic_strong(rule),
            },
            unit_costs,
        )
    if shares:
        estimate["slm_share"] = shares["proposal"]["slm_share"]
        base_figures["slm_share"] = shares["base"]["slm_share"]
        in_sample["slm_share"] = shares["proposal"]["slm_share"]
        for target, key in ((estimate, "proposal"), (base_figures, "base")):
            target["cost_per_1k"] = shares[key]["cost_per_1k"]
        slm_source = "traffic"
    else:
        for target in (estimate, base_figures, in_sample):
            target["slm_share"] = target["labeled_slm_share"]
        slm_source = "labels (out of fold)"

    y = labels.needed
    base_ok, oof_ok = base_strong == y, oof == y
    test = mcnemar(int((base_ok & ~oof_ok).sum()), int((~base_ok & oof_ok).sum()))
    better = estimate["misroute"]["value"] < base_figures["misroute"]["value"]
    beats = bool(better and test.p_mid is not None and test.p_mid < SIGNIFICANCE)
    changes = _changes(final_search, base, rule, traffic)
    return {
        "base_rule": _rule_dict(base),
        "rule": _rule_dict(rule),
        "changes": changes,
        "estimate": estimate,
        "base": base_figures,
        "in_sample": in_sample,
        "mcnemar": test.as_dict(),
        "beats_base": beats and bool(changes),
        "verdict": verdict(beats, changes, estimate, base_figures, test),
        "slm_source": slm_source,
        "band": list(settings.band),
        "band_met": outcome.violation == 0,
        "folds": folds,
        "seed": seed,
        "fold_rules": fold_rules,
        "search_steps": steps,
        "candidate_terms": len(pools[-1]),
        "settings": {**asdict(settings), "pinned": sorted(settings.pinned)},
        "traffic_requests": traffic.size if traffic is not None else 0,
    }


def _rule_dict(rule: Rule) -> dict[str, Any]:
    return {
        "keywords": sorted(rule.keywords),
        "token_threshold": rule.token_threshold,
        "turn_threshold": rule.turn_threshold,
    }


def _summary(base: Rule, rule: Rule) -> dict[str, Any]:
    return {
        "added": sorted(rule.keywords - base.keywords),
        "removed": sorted(base.keywords - rule.keywords),
        "token_threshold": rule.token_threshold,
        "turn_threshold": rule.turn_threshold,
    }


def verdict(beats, changes, estimate, base, test) -> str:
    ours, theirs = estimate["misroute"]["value"], base["misroute"]["value"]
    if not changes:
        return "The search found no change that improves on the base."
    p = "n/a" if test.p_mid is None else f"{test.p_mid:.3g}"
    if beats:
        return (
            f"Beats the base out of sample: misroute {ours:.1%} vs {theirs:.1%} "
            f"(McNemar mid-p {p})."
        )
    return (
        f"Does not beat the base out of sample: misroute {ours:.1%} vs {theirs:.1%}, "
        f"McNemar mid-p {p} (needs lower misroute and p < {SIGNIFICANCE})."
    )


def traffic_figures(strong: dict[str, np.ndarray], unit_costs) -> dict[str, dict]:
    """SLM share (with its interval) and cost per 1,000 requests of each decision array
    (strong or not per traffic request), keyed as given."""
    result = {}
    for key, decided in strong.items():
        size = len(decided)
        weak = int((~decided).sum())
        cost = None
        if (
            unit_costs
            and unit_costs.get("weak") is not None
            and unit_costs.get("strong") is not None
        ):
            cost = 1000 * (unit_costs["weak"] * weak + unit_costs["strong"] * (size - weak))
            cost /= size
        share = proportion(weak, size)
        result[key] = {
            "slm_share": {"value": share.value, "low": share.low, "high": share.high, "n": share.n},
            "cost_per_1k": cost,
        }
    return result


def _changes(search: Search, base: Rule, rule: Rule, traffic: Traffic | None) -> list[dict]:
    """Each change with its evidence on all labels: what it fixes and breaks given the rest
    of the proposal, and the traffic share it moves."""
    strong = search.strong(rule)
    with_traffic = traffic is not None and traffic.size
    traffic_strong = search.traffic_strong(rule) if with_traffic else None
    changes = []

    def effect(without: Rule) -> dict[str, Any]:
        other = search.strong(without)
        moved = strong != other
        fixed = moved & (strong == search.y)
        broken = moved & (strong != search.y)
        evidence: dict[str, float] = {
            "fixed_inputs": int(fixed.sum()),
            "fixed_requests": int(search.w[fixed].sum()),
            "broken_inputs": int(broken.sum()),
            "broken_requests": int(search.w[broken].sum()),
        }
        if traffic_strong is not None:
            moved_traffic = traffic_strong != search.traffic_strong(without)
            evidence["traffic_share_moved"] = float(moved_traffic.mean())
        return evidence

    for term in sorted(rule.keywords - base.keywords):
        ev = effect(Rule(rule.keywords - {term}, rule.token_threshold, rule.turn_threshold))
        ev["fn_fixed"], ev["fp_added"] = ev["fixed_inputs"], ev["broken_inputs"]
        changes.append({"op": "add", "term": term, "evidence": ev})
    for term in sorted(base.keywords - rule.keywords):
        ev = effect(Rule(rule.keywords | {term}, rule.token_threshold, rule.turn_threshold))
        ev["fp_fixed"], ev["fn_added"] = ev["fixed_inputs"], ev["broken_inputs"]
        changes.append({"op": "remove", "term": term, "evidence": ev})
    for field_name in ("token_threshold", "turn_threshold"):
        old, new = getattr(base, field_name), getattr(rule, field_name)
        if old != new:
            reverted = Rule(
                rule.keywords,
                old if field_name == "token_threshold" else rule.token_threshold,
                old if field_name == "turn_threshold" else rule.turn_threshold,
            )
            changes.append(
                {"op": "threshold", "field": field_name, "from": old, "to": new,
                 "evidence": effect(reverted)}
            )  # fmt: skip
    return changes
