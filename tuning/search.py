"""The proposal search: keyword additions, removals and thresholds, chosen together.

Pure Python and numpy, no Django. The rule searched is the engine's: a request is strong
when one of the keywords is a substring of its lower-cased text, or it is longer than the
length threshold, or has more messages than the turn threshold (or the version's byte rule
fires, which the search keeps as it is). Everything is evaluated the way the engine would
decide: a term's hits are where it occurs as a substring of the whole text, code included.

Cost of a move: each term's hits over the labels are one boolean row of a matrix and its
hits over the traffic one index list, both found by one Aho-Corasick pass. Adding or
removing a keyword then costs a masked dot product, and a threshold pair costs a lookup in
a two-dimensional cumulative sum; nothing is replayed per candidate.

The objective is the misroute of the labeled requests (each collapsed item counting once
per request it stands for), false negatives weighted by ``fn_weight``, with the SLM share
(weak-routed share of the traffic, or of the labels when there is no traffic) inside the
target band. A move must also fix at least ``min_gain`` more distinct labeled inputs than
it breaks, so a single input repeated many times cannot pull a keyword in by itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import ahocorasick_rs
import numpy as np

from routing.engine.scorer import UNITS

MAX_TOKEN = 20_000  # a length rule above this protects nothing any more
TRAFFIC_LENGTH_POINTS = 200  # length quantiles of the traffic offered as thresholds
RESCORE = 8  # best moves at fixed thresholds re-scored with the thresholds re-optimised


@dataclass(frozen=True)
class Rule:
    """A candidate version: keywords and the two thresholds."""

    keywords: frozenset[str]
    token_threshold: int
    turn_threshold: int


@dataclass(frozen=True)
class Settings:
    band: tuple[float, float] = (0.60, 0.70)
    fn_weight: float = 1.0
    max_changes: int = 20  # keyword additions and removals, and thresholds moved
    pinned: frozenset[str] = frozenset()  # keywords never removed
    min_gain: int = 2  # distinct inputs a move must fix on balance
    min_support: int = 2  # distinct strong-needed inputs a new term must occur in
    pool_size: int = 300  # candidate terms per search


@dataclass
class Labels:
    """Labeled requests as arrays; ``texts`` are NFC lower-cased."""

    texts: list[str]
    chars: np.ndarray
    turns: np.ndarray
    forced: np.ndarray  # strong whatever the search does (the byte rule)
    needed: np.ndarray  # strong needed
    weight: np.ndarray  # requests each row stands for
    group: np.ndarray  # rows with one group id share an input: never split across folds

    @property
    def size(self) -> int:
        return len(self.texts)


@dataclass
class Traffic:
    """The period's requests, for the SLM share: lengths, turns, byte rule, term hits."""

    chars: np.ndarray
    turns: np.ndarray
    forced: np.ndarray
    hits: dict[str, np.ndarray] = field(default_factory=dict)  # term -> row indices

    @property
    def size(self) -> int:
        return len(self.chars)


def hit_matrix(terms: Sequence[str], texts: Iterable[str]) -> np.ndarray:
    """terms x texts: does the term occur in the (lower-cased) text."""
    texts = list(texts)
    matrix = np.zeros((len(terms), len(texts)), dtype=bool)
    if not terms:
        return matrix
    automaton = ahocorasick_rs.AhoCorasick(list(terms))
    for column, text in enumerate(texts):
        for index in {i for i, _, _ in automaton.find_matches_as_indexes(text, overlapping=True)}:
            matrix[index, column] = True
    return matrix


class TrafficMatcher:
    """Collects each term's hits over streamed traffic texts (one Aho-Corasick pass)."""

    def __init__(self, terms: Sequence[str]):
        self.terms = list(terms)
        self._automaton = ahocorasick_rs.AhoCorasick(self.terms) if self.terms else None
        self._hits: list[list[int]] = [[] for _ in self.terms]
        self.count = 0

    def add(self, lowered_text: str) -> None:
        if self._automaton is not None:
            found = self._automaton.find_matches_as_indexes(lowered_text, overlapping=True)
            for index in {i for i, _, _ in found}:
                self._hits[index].append(self.count)
        self.count += 1

    def hits(self) -> dict[str, np.ndarray]:
        return {
            t: np.asarray(h, dtype=np.int64) for t, h in zip(self.terms, self._hits, strict=True)
        }


@dataclass
class Outcome:
    """A rule's figures on the training rows."""

    rule: Rule
    cost: float  # weighted misroute with FN weighted by fn_weight, per request
    violation: float  # distance of the SLM share outside the band (0 inside)
    slm: float | None
    distinct_errors: float  # distinct inputs wrong (FN weighted by fn_weight)

    def key(self) -> tuple[float, float]:
        return (round(self.violation, 9), round(self.cost, 12))


class Search:
    """One search on a subset of the labeled rows (all of them, or a fold's training part)."""

    def __init__(
        self,
        labels: Labels,
        matrix: np.ndarray,
        terms: Sequence[str],
        traffic: Traffic | None,
        base: Rule,
        settings: Settings,
        rows: np.ndarray | None = None,
    ):
        self.settings = settings
        self.base = base
        rows = np.arange(labels.size) if rows is None else rows
        self.index = {t: i for i, t in enumerate(terms)}
        self.H = matrix[:, rows]
        self.chars, self.turns = labels.chars[rows], labels.turns[rows]
        self.forced = labels.forced[rows]
        self.y, self.w = labels.needed[rows], labels.weight[rows]
        self.W = float(self.w.sum()) or 1.0
        # Per row: what routing it strong gains (FN avoided) or loses (FP made), weighted.
        self.value = self.w * np.where(self.y, settings.fn_weight, -1.0)
        self.traffic = traffic if traffic is not None and traffic.size else None
        self.T_grid, self.U_grid = self._grids(base)
        self.prepare_cells()

    # -- grids and cells ---------------------------------------------------------------

    def _grids(self, base: Rule) -> tuple[np.ndarray, np.ndarray]:
        """Length thresholds between consecutive labeled lengths (so a threshold sits
        halfway between the requests it separates), traffic quantiles, and the base's."""
        lengths = np.unique(self.chars)
        mids = (lengths[:-1] + lengths[1:]) // 2 if len(lengths) > 1 else lengths
        points = [mids, lengths[-1:], [base.token_threshold]]
        if self.traffic is not None:
            qs = np.linspace(0, 1, TRAFFIC_LENGTH_POINTS)
            points.append(np.quantile(self.traffic.chars, qs).astype(np.int64))
        T = np.unique(np.clip(np.concatenate(points).astype(np.int64), 1, MAX_TOKEN))
        U = np.unique(np.concatenate([np.unique(self.turns), [base.turn_threshold]]))
        U = U[(U >= 1) & (U <= 10_000)]
        return T, U

    def prepare_cells(self) -> None:
        # Cell of a row: (first grid index whose threshold its length does not exceed,
        # same for turns). A row is weak by thresholds at (i, j) iff its cell <= (i, j).
        self.ti = np.searchsorted(self.T_grid, self.chars, side="left")
        self.ui = np.searchsorted(self.U_grid, self.turns, side="left")
        if self.traffic is not None:
            self.tti = np.searchsorted(self.T_grid, self.traffic.chars, side="left")
            self.tui = np.searchsorted(self.U_grid, self.traffic.turns, side="left")
            self.traffic_hits = {
                t: self.traffic.hits.get(t, np.empty(0, dtype=np.int64)) for t in self.index
            }

    def _cumulative(self, ti, ui, weights) -> np.ndarray:
        shape = (len(self.T_grid) + 1, len(self.U_grid) + 1)
        counts = np.bincount(ti * shape[1] + ui, weights=weights, minlength=shape[0] * shape[1])
        return counts.reshape(shape).cumsum(0).cumsum(1)

    # -- evaluation ----------------------------------------------------------------------

    def covered(self, keywords: Iterable[str]) -> np.ndarray:
        """How many of ``keywords`` each training row contains."""
        ids = [self.index[k] for k in keywords if k in self.index]
        if not ids:
            return np.zeros(len(self.y), dtype=np.int64)
        return self.H[ids].sum(0)

    def traffic_covered(self, keywords: Iterable[str]) -> np.ndarray | None:
        if self.traffic is None:
            return None
        counts = np.zeros(self.traffic.size, dtype=np.int64)
        for k in keywords:
            hits = self.traffic_hits.get(k)
            if hits is not None and hits.size:
                counts[hits] += 1
        return counts

    def grid(self, keywords: frozenset[str]) -> dict[str, np.ndarray]:
        """Every threshold pair's figures with these keywords, as (T_grid x U_grid) arrays:
        weighted FN and FP shares, the cost (FN weighted), distinct inputs wrong, SLM share
        and its distance outside the band."""
        s = self.settings
        free = (self.covered(keywords) == 0) & ~self.forced
        y, w = self.y, self.w
        ti, ui = self.ti[free], self.ui[free]
        fn = self._cumulative(ti, ui, (w * y)[free])
        ok_weak = self._cumulative(ti, ui, (w * ~y)[free])
        fn_d = self._cumulative(ti, ui, y[free].astype(float))
        ok_weak_d = self._cumulative(ti, ui, (~y)[free].astype(float))
        fp = float((w * ~y).sum()) - ok_weak
        fp_d = float((~y).sum()) - ok_weak_d
        if self.traffic is not None:
            tfree = (self.traffic_covered(keywords) == 0) & ~self.traffic.forced
            weak = self._cumulative(self.tti[tfree], self.tui[tfree], np.ones(int(tfree.sum())))
            slm = weak / self.traffic.size
        else:
            slm = (fn + ok_weak) / self.W
        low, high = s.band
        figures = {
            "fn": fn / self.W,
            "fp": fp / self.W,
            "cost": (s.fn_weight * fn + fp) / self.W,
            "distinct": s.fn_weight * fn_d + fp_d,
            "slm": slm,
            "violation": np.maximum(0, low - slm) + np.maximum(0, slm - high),
        }
        # The last row and column are "above every grid point": not a threshold.
        return {k: a[:-1, :-1] for k, a in figures.items()}

    def best_thresholds(self, keywords: frozenset[str], near: Rule) -> Outcome:
        """The thresholds that minimise the cost with the SLM share in the band (or nearest
        to it), given the keywords; ties go to the pair nearest ``near``'s. Each threshold
        moved off the base's counts as a change against ``max_changes``."""
        g = self.grid(keywords)
        budget = self.settings.max_changes - len(keywords ^ self.base.keywords)
        T, U = self.T_grid, self.U_grid
        moved = (T[:, None] != self.base.token_threshold).astype(int) + (
            U[None, :] != self.base.turn_threshold
        )
        violation = np.where(moved > budget, np.inf, g["violation"])  # over the change cap
        i, j = self.pick(g["cost"], violation, near)
        return Outcome(
            Rule(keywords, int(T[i]), int(U[j])),
            float(g["cost"][i, j]),
            float(violation[i, j]),
            float(g["slm"][i, j]),
            float(g["distinct"][i, j]),
        )

    def pick(self, cost: np.ndarray, violation: np.ndarray, near: Rule) -> tuple[int, int]:
        """The grid cell least outside the band, then cheapest, then nearest ``near``."""
        T, U = self.T_grid, self.U_grid
        distance = np.abs(T[:, None] - near.token_threshold) / max(
            near.token_threshold, 1
        ) + np.abs(U[None, :] - near.turn_threshold) / max(near.turn_threshold, 1)
        order = np.lexsort(
            (distance.ravel(), np.round(cost.ravel(), 12), np.round(violation.ravel(), 9))
        )
        i, j = np.unravel_index(order[0], cost.shape)
        return int(i), int(j)

    def evaluate(self, rule: Rule) -> Outcome:
        """A rule's figures as it stands (no threshold search)."""
        s = self.settings
        strong = self.strong(rule)
        wrong = strong != self.y
        cost = float((self.w * wrong * np.where(self.y, s.fn_weight, 1.0)).sum() / self.W)
        distinct = float((wrong * np.where(self.y, s.fn_weight, 1.0)).sum())
        if self.traffic is not None:
            slm = 1 - float(self.traffic_strong(rule).mean())
        else:
            slm = float((self.w * ~strong).sum() / self.W)
        low, high = s.band
        violation = max(0.0, low - slm) + max(0.0, slm - high)
        return Outcome(rule, cost, violation, slm, distinct)

    def traffic_strong(self, rule: Rule) -> np.ndarray:
        """The rule's decisions on the traffic (strong or not), as on the labels."""
        assert self.traffic is not None
        covered = self.traffic_covered(rule.keywords)
        assert covered is not None  # None only without traffic
        return (
            (covered > 0)
            | self.traffic.forced
            | (self.traffic.chars > rule.token_threshold)
            | (self.traffic.turns > rule.turn_threshold)
        )

    def strong(self, rule: Rule) -> np.ndarray:
        return (
            (self.covered(rule.keywords) > 0)
            | self.forced
            | (self.chars > rule.token_threshold)
            | (self.turns > rule.turn_threshold)
        )

    # -- the search ----------------------------------------------------------------------

    def _moves(self, current: Outcome, pool: Sequence[str]) -> list[tuple[float, str, str]]:
        """Every addition and removal scored at the current thresholds: (gain, op, term)."""
        rule = current.rule
        cover = self.covered(rule.keywords)
        by_threshold = (
            self.forced | (self.chars > rule.token_threshold) | (self.turns > rule.turn_threshold)
        )
        strong = (cover > 0) | by_threshold
        moves = []
        adds = [t for t in pool if t not in rule.keywords]
        if adds:
            ids = [self.index[t] for t in adds]
            gains = self.H[ids][:, ~strong] @ self.value[~strong]
            moves += [(float(g), "add", t) for g, t in zip(gains, adds, strict=True) if g > 0]
        lone = (cover == 1) & ~by_threshold
        for k in rule.keywords:
            if k in self.settings.pinned or k not in self.base.keywords or k not in self.index:
                continue
            freed = self.H[self.index[k]] & lone
            gain = -float(self.value[freed].sum())
            if gain > 0:
                moves.append((gain, "remove", k))
        moves.sort(key=lambda m: (-m[0], m[1], m[2]))
        return moves

    def run(self, pool: Sequence[str]) -> tuple[Outcome, list[dict]]:
        """Greedy joint search from the base; returns the best rule and its steps."""
        s = self.settings
        current = self.best_thresholds(self.base.keywords, self.base)
        base_now = self.evaluate(self.base)
        if base_now.key() <= current.key():
            current = base_now
        steps = []
        while True:
            changes = len(current.rule.keywords ^ self.base.keywords)
            if changes >= s.max_changes:
                break
            best = None
            for _, op, term in self._moves(current, pool)[:RESCORE]:
                keywords = (
                    current.rule.keywords | {term}
                    if op == "add"
                    else current.rule.keywords - {term}
                )
                outcome = self.best_thresholds(frozenset(keywords), current.rule)
                if best is None or outcome.key() < best[0].key():
                    best = (outcome, op, term)
            if best is None:
                break
            outcome, op, term = best
            if outcome.violation < current.violation - 1e-9:
                pass  # getting into the band is worth any move
            elif (
                outcome.violation > current.violation + 1e-9
                or outcome.cost >= current.cost - 1e-12
                or current.distinct_errors - outcome.distinct_errors < s.min_gain
            ):
                break
            steps.append({"op": op, "term": term, "cost": outcome.cost, "slm": outcome.slm})
            current = outcome
        return current, steps


def assign_folds(groups: np.ndarray, weights: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold of each row: whole groups (same input) go to one fold, shuffled by ``seed``,
    each to the fold with the fewest requests so far (balanced, reproducible)."""
    rng = np.random.default_rng(seed)
    unique = np.unique(groups)
    order = rng.permutation(len(unique))
    group_weight = {g: 0.0 for g in unique}
    for g, w in zip(groups, weights, strict=True):
        group_weight[g] += float(w)
    load = np.zeros(k)
    fold_of = {}
    for position in order:
        g = unique[position]
        target = int(np.argmin(load))
        fold_of[g] = target
        load[target] += group_weight[g]
    return np.array([fold_of[g] for g in groups], dtype=np.int64)


def scores_from_hits(bias: float, pairs, traffic: Traffic) -> np.ndarray:
    """bias + the weights of the (feature, weight) ``pairs`` each traffic row holds, summed
    in the engine's integer units."""
    units = np.full(len(traffic.chars), round(bias * UNITS), dtype=np.int64)
    for feature, weight in pairs:
        hits = traffic.hits.get(feature)
        if hits is not None and len(hits):
            units[hits] += round(float(weight) * UNITS)
    return units / UNITS
