"""The weighted-keyword scorer: a linear model over the presence of substrings.

    score = bias + the sum of the weights of the features that occur in the text

Each feature counts once however often it occurs, and is matched like a keyword: as a
substring of the NFC, lower-cased, space-joined conversation text. The request is strong
when the score reaches the threshold.

Weights, bias and threshold are summed as integers in units of 1e-9 (far below any
weight that matters), so the sum is exact: the console and the pod get the same score,
and so the same decision, in whatever order the matches come.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import ahocorasick_rs

MAX_FEATURES = 10_000
MAX_FEATURE_LENGTH = 100
MAX_MAGNITUDE = 1e6  # a weight, bias or threshold beyond this is a bug, not a model
SCORER_KEYS = frozenset({"features", "bias", "threshold"})
TOP_FEATURES = 5
UNITS = 1_000_000_000  # integer units per 1.0 of score

Normalize = Callable[[str], str]  # a keyword's matched form (config.normalize_keyword)


@dataclass(frozen=True)
class ValidScorer:
    features: tuple[str, ...]  # normalized, in the order given
    weights: tuple[float, ...]
    bias: float
    threshold: float

    def canonical(self) -> dict[str, Any]:
        """Features sorted by substring: their order changes no decision, nor the hash."""
        pairs = sorted(zip(self.features, self.weights, strict=True))
        return {
            "bias": self.bias,
            "threshold": self.threshold,
            "features": [[feature, weight] for feature, weight in pairs],
        }


def _number(problems: list[str], value: Any, what: str) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.append(f"{what} must be a number, got {value!r}.")
        return None
    if not math.isfinite(value):
        problems.append(f"{what} must be finite, got {value!r}.")
        return None
    if abs(value) > MAX_MAGNITUDE:
        problems.append(f"{what} must be within ±{MAX_MAGNITUDE:g}, got {value!r}.")
        return None
    return float(value)


def substring_problem(index: int, text: Any, limit: int) -> str | None:
    """What is wrong with item ``index`` as a keyword or feature substring, if anything."""
    if not isinstance(text, str):
        return f"Item {index} must be a string, got {type(text).__name__}."
    if not text.strip():
        return f"Item {index} is empty or whitespace only."
    if len(text) > limit:
        return f"Item {index} ({text[:20]!r}...) is over {limit} characters."
    return None


def _check_features(
    raw: Any, normalize: Normalize
) -> tuple[list[str], tuple[str, ...], tuple[float, ...]]:
    if isinstance(raw, str) or not isinstance(raw, list | tuple):
        return ["Must be a list of [substring, weight] pairs."], (), ()
    problems: list[str] = []
    if not raw:
        problems.append("A scorer needs at least one feature.")
    if len(raw) > MAX_FEATURES:
        problems.append(f"At most {MAX_FEATURES:,} features are allowed, got {len(raw):,}.")
        return problems, (), ()
    seen: dict[str, int] = {}
    features, weights = [], []
    for index, item in enumerate(raw):
        if isinstance(item, str) or not isinstance(item, list | tuple) or len(item) != 2:
            problems.append(f"Item {index} must be a [substring, weight] pair.")
            continue
        text, weight = item
        problem = substring_problem(index, text, MAX_FEATURE_LENGTH)
        if problem:
            problems.append(problem)
            continue
        value = _number(problems, weight, f"Item {index} ({text!r}): the weight")
        if value is None:
            continue
        normalized = normalize(text)
        if normalized in seen:
            problems.append(
                f"Item {index} ({text!r}) duplicates item {seen[normalized]} once normalized."
            )
            continue
        seen[normalized] = index
        features.append(normalized)
        weights.append(value)
    return problems, tuple(features), tuple(weights)


def check_scorer(
    errors: dict[str, list[str]], raw: Any, normalize: Normalize
) -> ValidScorer | None:
    """Validate a config's ``scorer``; bad fields go into ``errors`` as ``scorer.<field>``."""
    if not isinstance(raw, Mapping):
        errors["scorer"] = ["Must be an object with features, bias and threshold."]
        return None
    before = len(errors)
    for key in sorted(set(raw) - SCORER_KEYS):
        errors[f"scorer.{key}"] = ["Unknown field."]
    numbers: dict[str, float] = {}  # the valid ones: a bad one is in ``errors``
    for key in ("bias", "threshold"):
        problems: list[str] = []
        if key not in raw:
            problems.append("This field is required.")
        else:
            number = _number(problems, raw[key], "The value")
            if number is not None:
                numbers[key] = number
        if problems:
            errors[f"scorer.{key}"] = problems
    if "features" not in raw:
        errors["scorer.features"] = ["This field is required."]
        return None
    problems, features, weights = _check_features(raw["features"], normalize)
    if problems:
        errors["scorer.features"] = problems
    if len(errors) > before:
        return None
    return ValidScorer(features, weights, numbers["bias"], numbers["threshold"])


class Scorer:
    """A compiled scorer. ``present`` sets hold the matched substrings themselves (what
    the classifier's automaton reports, keywords included: they weigh nothing here)."""

    def __init__(self, valid: ValidScorer, keywords: tuple[str, ...] = ()):
        self.valid = valid
        self.features = valid.features
        self.weights = valid.weights
        self.bias = valid.bias
        self.threshold = valid.threshold
        self.threshold_text = f"{valid.threshold:.6g}"  # as the reasons say it
        self._units = dict.fromkeys(keywords, 0)
        self._units.update(
            (f, round(w * UNITS)) for f, w in zip(self.features, self.weights, strict=True)
        )
        self._bias_units = round(valid.bias * UNITS)
        self._threshold_units = round(valid.threshold * UNITS)
        # rank: a substring's place by pull (largest |weight| first, ties by substring;
        # keywords that are no feature last), so the top features of a request are a sort
        # of small ints (C speed, no key function).
        order = sorted(
            zip(self.features, self.weights, strict=True), key=lambda p: (-abs(p[1]), p[0])
        )
        self._by_rank = order
        self._rank = {k: len(order) + i for i, k in enumerate(keywords)}
        self._rank.update((f, place) for place, (f, _) in enumerate(order))
        self._spans_automaton: ahocorasick_rs.AhoCorasick | None = None

    def score_units(self, present: set[str]) -> int:
        return self._bias_units + sum(map(self._units.__getitem__, present))

    def reaches(self, units: int) -> bool:
        """Whether a score (in units) is strong: exact, no float rounding at the cut."""
        return units >= self._threshold_units

    def top(self, present: set[str], n: int = TOP_FEATURES) -> tuple[tuple[str, float], ...]:
        """The ``n`` present features that pushed the score most, either way."""
        count, by_rank = len(self._by_rank), self._by_rank
        places = heapq.nsmallest(n, map(self._rank.__getitem__, present))
        return tuple(by_rank[p] for p in places if p < count)

    def spans(self, lowered: str, features: set[str]) -> list[tuple[int, int, str]]:
        """Where ``features`` occur in ``lowered``, as (start, end, feature) in text order."""
        if self._spans_automaton is None:  # explanations only: built when first asked
            self._spans_automaton = ahocorasick_rs.AhoCorasick(list(self.features))
        matches = self._spans_automaton.find_matches_as_indexes(lowered, overlapping=True)
        names = self.features
        return sorted((s, e, names[i]) for i, s, e in matches if names[i] in features)
