"""Training the weighted-keyword scorer (``routing.engine.scorer``) from labels.

Pure numpy and scikit-learn on arrays (no database); runs in the console's worker, never in
the pod (its image has neither: a test keeps them out).

The model: L2-regularised logistic regression over the *presence* of character 2-4-grams
of the NFC lower-cased, space-joined text — exactly the substrings the engine looks for,
so a feature is present in training if and only if the pod's matcher finds it. Each
labeled request counts (sample weight = the requests a row stands for), and a strong
request routed weak costs ``fn_weight`` times a weak one routed strong.

Fitting one model (``fit``): the feature cap and the regularisation are chosen by an inner
cross-validation (weighted log loss; rows of one input in one fold). The chosen model is
refit on all its rows: fit on every substring seen in at least two inputs, keep the
``cap`` largest weights, fit again on those. The score's cut and the length and turn
thresholds are then searched together (``choose_rule``) on the inner out-of-fold scores
(honest scores, unlike in-sample ones), for the least weighted misroute inside the SLM
band. Weights are rounded to 6 significant digits; BLAS runs single-threaded and every
split is seeded, so the same labels give the same config byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from routing.engine.scorer import UNITS

from .proposal import ProposalError
from .search import Labels, Rule, Settings, Traffic, assign_folds, scores_from_hits

NGRAMS = (2, 3, 4)
MIN_INPUTS = 2  # a substring must occur in this many distinct inputs to be a feature
CAPS = (250, 1000, 3000)
STRENGTHS = (0.3, 1.0, 3.0)  # C: inverse regularisation
INNER_FOLDS = 4
TURN_CHOICES = tuple(range(2, 17))
LENGTH_QUANTILES = np.linspace(0.5, 0.995, 40)
MAX_ITER = 2000


def substrings(text: str) -> set[str]:
    """The 2-4-character substrings of ``text`` the engine could match (not blank ones)."""
    found = set()
    for n in NGRAMS:
        for i in range(len(text) - n + 1):
            gram = text[i : i + n]
            if not gram.isspace():
                found.add(gram)
    return found


@dataclass
class Corpus:
    """Every candidate feature and which rows hold it (rows x features, binary CSR)."""

    vocabulary: list[str]
    x: sparse.csr_matrix

    @classmethod
    def of(cls, texts: Sequence[str]) -> Corpus:
        index: dict[str, int] = {}
        indptr, indices = [0], []
        for text in texts:
            for gram in sorted(substrings(text)):
                indices.append(index.setdefault(gram, len(index)))
            indptr.append(len(indices))
        data = np.ones(len(indices), dtype=np.float64)
        shape = (len(texts), len(index))
        x = sparse.csr_matrix((data, np.array(indices, dtype=np.int64), indptr), shape=shape)
        x.sort_indices()
        return cls(list(index), x)


@dataclass(frozen=True)
class Model:
    """A fitted scorer: features (vocabulary columns), their weights and the bias."""

    columns: np.ndarray
    weights: np.ndarray  # rounded to 6 significant digits
    bias: float
    cap: int
    strength: float

    def scores(self, x: sparse.csr_matrix) -> np.ndarray:
        """Scores of the rows of ``x`` exactly as the engine sums them (integer units)."""
        units = np.array([round(float(w) * UNITS) for w in self.weights], dtype=np.int64)
        present = x[:, self.columns].astype(np.int64)
        return (present @ units + round(self.bias * UNITS)) / UNITS


def round6(value: float) -> float:
    return float(f"{value:.6g}")


def _sample_weight(labels: Labels, rows: np.ndarray, fn_weight: float) -> np.ndarray:
    return labels.weight[rows] * np.where(labels.needed[rows], fn_weight, 1.0)


def _eligible(corpus: Corpus, labels: Labels, rows: np.ndarray) -> np.ndarray:
    """Columns present in at least MIN_INPUTS distinct inputs among ``rows``."""
    x = corpus.x[rows]
    groups = labels.group[rows]
    _, first = np.unique(groups, return_index=True)  # one row per distinct input
    counts = np.asarray(x[first].sum(axis=0)).ravel()
    return np.flatnonzero(counts >= MIN_INPUTS)


def _fit(x, y, weight, strength: float) -> LogisticRegression:
    model = LogisticRegression(C=strength, solver="lbfgs", max_iter=MAX_ITER)
    with threadpool_limits(1):
        model.fit(x, y, sample_weight=weight)
    return model


def fit_capped(
    corpus: Corpus, labels: Labels, rows: np.ndarray, caps, strength: float, fn_weight: float
) -> dict[int, Model]:
    """For one strength: a model per cap (a fit on all eligible columns, then a refit on the
    ``cap`` columns with the largest weights)."""
    columns = _eligible(corpus, labels, rows)
    y, w = labels.needed[rows], _sample_weight(labels, rows, fn_weight)
    if len(columns) == 0:
        raise ProposalError(f"No substring occurs in {MIN_INPUTS} labeled inputs: label more.")
    if y.all() or not y.any():
        raise ProposalError(
            "A fold's training labels hold one class only: label more of the rarer class "
            "or use fewer folds."
        )
    full = _fit(corpus.x[rows][:, columns], y, w, strength)
    order = np.lexsort((columns, -np.abs(full.coef_[0])))  # ties: by column, reproducible
    models = {}
    for cap in caps:
        kept = np.sort(columns[order[:cap]])
        refit = _fit(corpus.x[rows][:, kept], y, w, strength)
        weights = np.array([round6(v) for v in refit.coef_[0]])
        nonzero = weights != 0
        models[cap] = Model(
            kept[nonzero], weights[nonzero], round6(refit.intercept_[0]), cap, strength
        )
    return models


def _log_loss(y: np.ndarray, scores: np.ndarray, weight: np.ndarray) -> float:
    # log(1 + e^-s) for positives, log(1 + e^s) for negatives, stable for large |s|.
    signed = np.where(y, -scores, scores)
    return float(np.sum(weight * np.logaddexp(0.0, signed)) / weight.sum())


def fit(
    corpus: Corpus, labels: Labels, rows: np.ndarray, fn_weight: float, seed: int
) -> tuple[Model, np.ndarray]:
    """The model for ``rows`` (cap and strength chosen by inner CV), and the inner
    out-of-fold scores of ``rows`` under the chosen cap and strength."""
    folds = min(INNER_FOLDS, len(np.unique(labels.group[rows])))
    fold_of = assign_folds(labels.group[rows], labels.weight[rows], folds, seed)
    oof = {(cap, c): np.zeros(len(rows)) for cap in CAPS for c in STRENGTHS}
    for f in range(folds):
        train, test = rows[fold_of != f], np.flatnonzero(fold_of == f)
        for strength in STRENGTHS:
            for cap, model in fit_capped(corpus, labels, train, CAPS, strength, fn_weight).items():
                oof[(cap, strength)][test] = model.scores(corpus.x[rows[test]])
    y, w = labels.needed[rows], _sample_weight(labels, rows, fn_weight)
    best = min(oof, key=lambda key: (round(_log_loss(y, oof[key], w), 9), key[0], -key[1]))
    cap, strength = best
    model = fit_capped(corpus, labels, rows, (cap,), strength, fn_weight)[cap]
    return model, oof[best]


@dataclass(frozen=True)
class Population:
    """What a rule decides on besides the score: lengths, turns, hard triggers, weights."""

    chars: np.ndarray
    turns: np.ndarray
    forced: np.ndarray  # the byte rule or a pinned keyword fires
    weight: np.ndarray

    def take(self, rows: np.ndarray) -> Population:
        return Population(self.chars[rows], self.turns[rows], self.forced[rows], self.weight[rows])

    def forced_by(self, token: int, turn: int) -> np.ndarray:
        return self.forced | (self.chars > token) | (self.turns > turn)


@dataclass(frozen=True)
class Choice:
    """Thresholds and cut chosen together, with the band violation and cost they reach."""

    token_threshold: int
    turn_threshold: int
    cut: float
    violation: float
    cost: float

    def strong(self, scores: np.ndarray, population: Population) -> np.ndarray:
        """The engine's decision: a hard trigger fires, or the score reaches the cut."""
        return population.forced_by(self.token_threshold, self.turn_threshold) | (
            scores >= self.cut
        )


def _candidates(base: Rule, lengths: np.ndarray) -> tuple[list[int], list[int]]:
    tokens = {base.token_threshold}
    if len(lengths):
        tokens |= {int(v) for v in np.quantile(lengths, LENGTH_QUANTILES)}
    return sorted(t for t in tokens if t >= 1), sorted({base.turn_threshold, *TURN_CHOICES})


def choose_rule(
    scores: np.ndarray,
    y: np.ndarray,
    labeled: Population,
    traffic: tuple[Population, np.ndarray] | None,
    base: Rule,
    settings: Settings,
) -> Choice:
    """The least FN-weighted misroute of the labeled rows with the SLM share inside the
    band (on ``traffic`` and its scores when given, else on the labels); ties go to the
    thresholds nearest the base's."""
    lengths = np.concatenate([labeled.chars, traffic[0].chars if traffic else []])
    tokens, turns = _candidates(base, lengths)
    best = None
    for token in tokens:
        for turn in turns:
            violation, cost, cut = _best_cut(scores, y, labeled, traffic, token, turn, settings)
            nearness = (abs(token - base.token_threshold), abs(turn - base.turn_threshold))
            key = (round(violation, 9), round(cost, 9), *nearness)
            if best is None or key < best[0]:
                best = (key, Choice(token, turn, cut, violation, cost))
    assert best is not None  # a valid rule's thresholds (>= 1) are always candidates
    return best[1]


def _best_cut(scores, y, labeled: Population, traffic, token: int, turn: int, settings):
    """(violation, cost, cut) of the best cut for fixed thresholds. Position j sends the j
    lowest-scoring free rows weak; its cut lies midway between the neighbouring scores."""
    forced = labeled.forced_by(token, turn)
    w, free = labeled.weight, ~forced
    order = np.argsort(scores[free], kind="stable")
    s, yy, ww = scores[free][order], y[free][order], w[free][order]
    m = len(s)
    fn_below = np.concatenate([[0.0], np.cumsum(ww * yy)]) * settings.fn_weight
    fp_above = np.concatenate([np.cumsum((ww * ~yy)[::-1])[::-1], [0.0]])
    forced_fp = float((w * (forced & ~y)).sum())
    costs = (fn_below + fp_above + forced_fp) / w.sum()
    middle = (s[1:] + s[:-1]) / 2
    cuts = np.concatenate([s[:1] - 1.0, middle, s[-1:] + 1.0]) if m else np.zeros(1)
    if traffic is not None:
        population, traffic_scores = traffic
        free_traffic = np.sort(traffic_scores[~population.forced_by(token, turn)])
        weak = np.searchsorted(free_traffic, cuts, side="left") / len(population.chars)
    else:
        weak = np.concatenate([[0.0], np.cumsum(ww)]) / w.sum()
    low, high = settings.band
    violation = np.round(np.maximum(low - weak, 0) + np.maximum(weak - high, 0), 9)
    tied = np.zeros(len(cuts), dtype=bool)  # a cut between two equal scores is no cut
    if m > 1:
        tied[1:-1] = s[1:] <= s[:-1]
    j = int(np.lexsort((costs, violation, tied))[0])
    return float(violation[j]), float(costs[j]), round6(float(cuts[j]))


def population_of(labels: Labels, pinned_hits: np.ndarray) -> Population:
    return Population(labels.chars, labels.turns, labels.forced | pinned_hits, labels.weight)


def traffic_population(traffic: Traffic, pinned: Sequence[str]) -> Population:
    forced = traffic.forced.copy()
    for keyword in pinned:
        hits = traffic.hits.get(keyword)
        if hits is not None:
            forced[hits] = True
    return Population(traffic.chars, traffic.turns, forced, np.ones(len(traffic.chars)))


def traffic_scores(model: Model, corpus: Corpus, traffic: Traffic) -> np.ndarray:
    """Scores of the traffic rows from per-feature hit lists (``Traffic.hits``)."""
    pairs = zip(model_features(model, corpus), model.weights.tolist(), strict=True)
    return scores_from_hits(model.bias, pairs, traffic)


def model_features(model: Model, corpus: Corpus) -> list[str]:
    return [corpus.vocabulary[c] for c in model.columns]


def scorer_config(model: Model, cut: float, corpus: Corpus) -> dict:
    """The engine's ``scorer`` block, features sorted by substring."""
    pairs = sorted(zip(model_features(model, corpus), model.weights.tolist(), strict=True))
    return {"bias": model.bias, "threshold": cut, "features": [[f, w] for f, w in pairs]}
