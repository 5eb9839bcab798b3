"""Propose a scorer version from labels, estimated out of sample like keyword proposals.

No database: labels and traffic come in as arrays. The estimate is cross-validated as in
``tuning.proposal``: for each of k folds (rows of one input together) the whole training
(vocabulary cut, feature cap and regularisation by inner cross-validation, thresholds and
cut) runs on the other folds and decides the fold's rows. The same "beats the base" rule
applies: lower out-of-fold misroute than the base on the same rows and McNemar's mid-p
below 0.05.

A scorer version keeps only the pinned keywords as keywords (hard triggers, like the
length and turn thresholds); the score decides everything else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np

from routing.engine.scorer import UNITS
from routing.selectors import heaviest

from . import scorer_training as training
from .features import language
from .proposal import SIGNIFICANCE, checked_folds, figures, traffic_figures, verdict
from .search import Labels, Rule, Settings, Traffic, hit_matrix, scores_from_hits
from .stats import mcnemar

TOP_SHOWN = 15  # features shown each way


def base_strong_labels(rule: Rule, scorer: dict | None, labels: Labels) -> np.ndarray:
    """The base's decisions on the labeled rows: its keyword rule, and its own scorer if
    it has one (a scorer retrained from a scorer version)."""
    strong = (
        hit_matrix(sorted(rule.keywords), labels.texts).any(axis=0)
        | labels.forced
        | (labels.chars > rule.token_threshold)
        | (labels.turns > rule.turn_threshold)
    )
    if scorer is not None:
        features = [f for f, _ in scorer["features"]]
        units = np.array([round(w * UNITS) for _, w in scorer["features"]], dtype=np.int64)
        present = hit_matrix(features, labels.texts).astype(np.int64)
        scores = (units @ present + round(scorer["bias"] * UNITS)) / UNITS
        strong |= scores >= scorer["threshold"]
    return strong


def base_strong_traffic(rule: Rule, scorer: dict | None, traffic: Traffic) -> np.ndarray:
    """The same on the traffic, from its hit lists (the base's features among them)."""
    strong = (
        traffic.forced
        | (traffic.chars > rule.token_threshold)
        | (traffic.turns > rule.turn_threshold)
    )
    for keyword in rule.keywords:
        hits = traffic.hits.get(keyword)
        if hits is not None:
            strong[hits] = True
    if scorer is not None:
        scores = scores_from_hits(scorer["bias"], scorer["features"], traffic)
        strong |= scores >= scorer["threshold"]
    return strong


def propose_scorer(
    labels: Labels,
    base: Rule,
    settings: Settings,
    load_traffic: Callable[[list[str]], Traffic | None],
    *,
    folds: int = 10,
    seed: int = 0,
    unit_costs: dict[str, float | None] | None = None,
    progress: Callable[[int], None] = lambda p: None,
    base_scorer: dict | None = None,
) -> dict[str, Any]:
    """Train the scorer on all rows and estimate it out of sample (module docstring).
    ``base_scorer``: the base version's own scorer, if any, for its figures."""
    fold_of = checked_folds(labels, folds, seed)
    n, y = labels.size, labels.needed
    everything = np.arange(n)
    splits = [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(folds)]
    corpus = training.Corpus.of(labels.texts)
    pinned = sorted(settings.pinned)
    pinned_hits = (
        hit_matrix(pinned, labels.texts).any(axis=0) if pinned else np.zeros(n, dtype=bool)
    )
    # numpy types any(axis=0) as scalar-or-array; on a matrix it is an array.
    population = training.population_of(labels, pinned_hits)  # type: ignore[arg-type]
    progress(5)

    fitted = []
    for f, (train, _) in enumerate(splits):
        fitted.append(training.fit(corpus, labels, train, settings.fn_weight, seed + f + 1))
        progress(5 + int(75 * (f + 1) / (folds + 1)))
    model, oof_all = training.fit(corpus, labels, everything, settings.fn_weight, seed)
    progress(82)

    terms = set(pinned) | set(base.keywords) | set(training.model_features(model, corpus))
    terms |= {f for f, _ in base_scorer["features"]} if base_scorer else set()
    for fold_model, _ in fitted:
        terms |= set(training.model_features(fold_model, corpus))
    traffic = load_traffic(sorted(terms))
    traffic = traffic if traffic is not None and traffic.size else None
    traffic_population = training.traffic_population(traffic, pinned) if traffic else None

    def with_traffic(m: training.Model):
        if traffic is None:
            return None
        return traffic_population, training.traffic_scores(m, corpus, traffic)

    oof = np.zeros(n, dtype=bool)
    fold_rules = []
    for (train, held_out), (fold_model, inner_oof) in zip(splits, fitted, strict=True):
        choice = training.choose_rule(
            inner_oof, y[train], population.take(train), with_traffic(fold_model), base, settings
        )
        oof[held_out] = choice.strong(
            fold_model.scores(corpus.x[held_out]), population.take(held_out)
        )
        fold_rules.append(_fold_summary(fold_model, choice))
    final_traffic = with_traffic(model)  # the final model's traffic scores, used twice
    choice = training.choose_rule(oof_all, y, population, final_traffic, base, settings)
    progress(95)

    final_strong = choice.strong(model.scores(corpus.x), population)
    base_strong = base_strong_labels(base, base_scorer, labels)
    langs = [language(text) for text in labels.texts]
    estimate = figures(labels, oof, everything, langs)
    base_figures = figures(labels, base_strong, everything, langs)
    in_sample = figures(labels, final_strong, everything, langs)
    if traffic is not None:
        assert traffic_population is not None  # made whenever there is traffic
        proposal_traffic = choice.strong(final_traffic[1], traffic_population)
        shares = traffic_figures(
            {"base": base_strong_traffic(base, base_scorer, traffic), "proposal": proposal_traffic},
            unit_costs,
        )
        for target, key in (
            (estimate, "proposal"),
            (base_figures, "base"),
            (in_sample, "proposal"),
        ):
            target["slm_share"] = shares[key]["slm_share"]
            target["cost_per_1k"] = shares[key]["cost_per_1k"]
        slm_source = "traffic"
    else:
        for target in (estimate, base_figures, in_sample):
            target["slm_share"] = target["labeled_slm_share"]
        slm_source = "labels (out of fold)"

    base_ok, oof_ok = base_strong == y, oof == y
    test = mcnemar(int((base_ok & ~oof_ok).sum()), int((~base_ok & oof_ok).sum()))
    better = estimate["misroute"]["value"] < base_figures["misroute"]["value"]
    beats = bool(better and test.p_mid is not None and test.p_mid < SIGNIFICANCE)
    rule = {
        "keywords": pinned,
        "token_threshold": choice.token_threshold,
        "turn_threshold": choice.turn_threshold,
    }
    scorer = training.scorer_config(model, choice.cut, corpus)
    changes = _changes(base, rule, scorer)
    return {
        "kind": "scorer",
        "base_rule": {
            "keywords": sorted(base.keywords),
            "token_threshold": base.token_threshold,
            "turn_threshold": base.turn_threshold,
        },
        "rule": rule,
        "scorer": scorer,
        "model": {
            "features": len(scorer["features"]),
            "cap": model.cap,
            "strength": model.strength,
            "ngrams": list(training.NGRAMS),
            **heaviest(scorer["features"], TOP_SHOWN),
        },
        "changes": changes,
        "estimate": estimate,
        "base": base_figures,
        "in_sample": in_sample,
        "mcnemar": test.as_dict(),
        "beats_base": beats,
        "verdict": verdict(beats, changes, estimate, base_figures, test),
        "slm_source": slm_source,
        "band": list(settings.band),
        "band_met": choice.violation == 0,
        "folds": folds,
        "seed": seed,
        "fold_rules": fold_rules,
        "settings": {**asdict(settings), "pinned": pinned},
        "traffic_requests": int(len(traffic.chars)) if traffic is not None else 0,
    }


def _fold_summary(model: training.Model, choice: training.Choice) -> dict[str, Any]:
    return {
        "features": len(model.columns),
        "cap": model.cap,
        "strength": model.strength,
        "token_threshold": choice.token_threshold,
        "turn_threshold": choice.turn_threshold,
        "cut": choice.cut,
    }


def _changes(base: Rule, rule: dict, scorer: dict) -> list[dict]:
    """What the draft changes against its base: the scorer, dropped keywords, thresholds."""
    changes: list[dict[str, Any]] = [
        {"op": "scorer", "features": len(scorer["features"]), "threshold": scorer["threshold"]}
    ]
    for term in sorted(base.keywords - set(rule["keywords"])):
        changes.append({"op": "remove", "term": term, "evidence": {}})
    for field in ("token_threshold", "turn_threshold"):
        old, new = getattr(base, field), rule[field]
        if old != new:
            changes.append({"op": "threshold", "field": field, "from": old, "to": new})
    return changes
