"""Statistics for routing metrics. Pure Python, no Django.

Every rate is reported with its sample size and a 95% Wilson score interval: a misroute
rate from a couple of hundred labels is uncertain by several points, and the interval says
how many. Stratified samples carry weights (inverse inclusion probabilities); their rates
are ratio estimates and their intervals use Kish's effective sample size. Two versions on
the same labeled items are compared with McNemar's paired test (exact binomial and mid-p).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Z95 = 1.959963984540054  # two-sided 95% normal quantile


@dataclass(frozen=True)
class Rate:
    """A proportion with its sample size and interval.

    ``n`` is the number of observations (or the effective sample size of a weighted
    estimate); ``low`` / ``high`` bound the 95% interval. ``value`` is None with no data.
    """

    value: float | None
    n: float
    low: float | None
    high: float | None
    successes: float = 0.0

    @property
    def has_data(self) -> bool:
        return self.value is not None

    def as_dict(self) -> dict:
        return {
            "value": self.value,
            "n": self.n,
            "low": self.low,
            "high": self.high,
            "successes": self.successes,
        }

    @classmethod
    def from_dict(cls, data: dict | None) -> Rate:
        if not data:
            return NO_DATA
        return cls(data["value"], data["n"], data["low"], data["high"], data.get("successes", 0))


NO_DATA = Rate(None, 0, None, None)


def wilson_interval(successes: float, n: float, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``successes`` out of ``n`` (n > 0).

    Works for fractional counts too (weighted estimates pass p * n_eff and n_eff).
    """
    if n <= 0:
        raise ValueError("n must be positive")
    if not 0 <= successes <= n:
        raise ValueError("successes must be between 0 and n")
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    # Exact ends: the formula gives them up to rounding, the clamp keeps 0 and 1 exact.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def proportion(successes: int, n: int) -> Rate:
    """An unweighted rate: ``successes`` of ``n``."""
    if n <= 0:
        return NO_DATA
    low, high = wilson_interval(successes, n)
    return Rate(successes / n, n, low, high, successes)


def weighted_proportion(pairs: Iterable[tuple[float, bool]]) -> Rate:
    """A weighted rate from (weight, hit) pairs.

    The estimate is sum(w * hit) / sum(w) (a Hajek ratio estimator); its interval is
    Wilson's at Kish's effective sample size n_eff = (sum w)^2 / sum(w^2). With all
    weights equal this is exactly the unweighted rate and interval.
    """
    total = squares = hits = 0.0
    count = 0
    for weight, hit in pairs:
        if weight <= 0:
            raise ValueError("weights must be positive")
        total += weight
        squares += weight * weight
        count += 1
        if hit:
            hits += weight
    if not count:
        return NO_DATA
    p = hits / total
    n_eff = total * total / squares
    if abs(n_eff - round(n_eff)) < 1e-9:
        n_eff = float(round(n_eff))
    low, high = wilson_interval(p * n_eff, n_eff)
    return Rate(p, n_eff, low, high, p * n_eff)


# Student's t, 97.5th percentile, df 1-30 (two-sided 95%); beyond, the Cornish-Fisher series.
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip


def t975(df: int) -> float:
    """The two-sided 95% quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError("df must be at least 1")
    if df <= len(_T975):
        return _T975[df - 1]
    z = Z95
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_interval(total: float, squares: float, n: int) -> dict:
    """A mean with its 95% Student t interval (valid at small n, unlike the normal one)."""
    if n == 0:
        return {"value": None, "n": 0, "low": None, "high": None}
    mean = total / n
    if n < 2:
        return {"value": mean, "n": n, "low": None, "high": None}
    variance = max(0.0, (squares - n * mean * mean) / (n - 1))
    half = t975(n - 1) * math.sqrt(variance / n)
    return {"value": mean, "n": n, "low": mean - half, "high": mean + half}


def binomial_pmf(k: int, n: int, p: float = 0.5) -> float:
    """P(X = k) for X ~ Binomial(n, p), in log space: math.comb(n, k) alone overflows a float
    from about a thousand trials (McNemar over many discordant pairs reaches that)."""
    if not 0 <= k <= n:
        return 0.0
    if p in (0.0, 1.0):
        return float(k == (n if p == 1.0 else 0))
    log_pmf = (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )
    return math.exp(log_pmf)


@dataclass(frozen=True)
class McNemar:
    """McNemar's paired test of two classifiers on the same labeled items.

    ``b``: items the baseline got right and the candidate wrong; ``c``: the reverse. Only
    these discordant pairs carry information. ``p_exact`` is the two-sided exact binomial
    p-value, ``p_mid`` its mid-p version (less conservative, still well calibrated).
    """

    b: int
    c: int
    p_exact: float | None
    p_mid: float | None

    @property
    def discordant(self) -> int:
        return self.b + self.c

    def as_dict(self) -> dict:
        return {"b": self.b, "c": self.c, "p_exact": self.p_exact, "p_mid": self.p_mid}


def mcnemar(b: int, c: int) -> McNemar:
    """Exact and mid-p McNemar test; p-values are None when no pair is discordant."""
    if b < 0 or c < 0:
        raise ValueError("counts must be non-negative")
    n = b + c
    if n == 0:
        return McNemar(b, c, None, None)
    k = min(b, c)
    tail = sum(binomial_pmf(i, n) for i in range(k + 1))
    p_exact = min(1.0, 2 * tail)
    p_mid = min(1.0, 2 * (tail - 0.5 * binomial_pmf(k, n)))
    return McNemar(b, c, p_exact, p_mid)


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Linear-interpolation percentile (as PostgreSQL's percentile_cont), q in [0, 1]."""
    if not sorted_values:
        return None
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    position = q * (len(sorted_values) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    fraction = position - lower
    return float(sorted_values[lower] + (sorted_values[upper] - sorted_values[lower]) * fraction)


@dataclass
class Confusion:
    """A confusion matrix with "strong" as the positive class, possibly weighted.

    tp: routed strong, strong needed; fn: routed weak, strong needed (a misroute that hurts
    quality); fp: routed strong, weak was enough (a misroute that costs money); tn: weak, weak.
    The cells count items; each item is also kept as (weight, cell), so the rates are
    weighted estimates with weighted intervals. FN and FP rates are shares of all labeled
    requests, so misroute = FN rate + FP rate.
    """

    tp: int = 0
    fn: int = 0
    fp: int = 0
    tn: int = 0
    count: int = 0

    def __post_init__(self):
        self._rows: list[tuple[float, str]] = []

    def add(self, predicted: str, actual: str, weight: float = 1.0) -> None:
        """``predicted``: "strong"/"weak"; ``actual``: "strong_needed"/"weak_sufficient"."""
        strong_needed = actual == "strong_needed"
        if predicted == "strong":
            cell = "tp" if strong_needed else "fp"
        else:
            cell = "fn" if strong_needed else "tn"
        setattr(self, cell, getattr(self, cell) + 1)
        self.count += 1
        self._rows.append((weight, cell))

    def _rate(self, hit_cells: set[str], among: set[str] | None = None) -> Rate:
        return weighted_proportion(
            (w, cell in hit_cells) for w, cell in self._rows if among is None or cell in among
        )

    def _shares(self) -> dict[str, float | None]:
        total = sum(w for w, _ in self._rows)
        shares = dict.fromkeys(("tp", "fn", "fp", "tn"), 0.0)
        for weight, cell in self._rows:
            shares[cell] += weight
        return {cell: (w / total if total else None) for cell, w in shares.items()}

    def metrics(self) -> dict[str, Any]:
        precision = self._rate({"tp"}, {"tp", "fp"})
        recall = self._rate({"tp"}, {"tp", "fn"})
        f1 = None
        if precision.value is not None and recall.value is not None:
            total = precision.value + recall.value
            f1 = 2 * precision.value * recall.value / total if total else 0.0
        return {
            "labeled": self.count,
            "matrix": {"tp": self.tp, "fn": self.fn, "fp": self.fp, "tn": self.tn},
            # Estimated population shares of each cell (weighted); equal to matrix / labeled
            # for a simple random sample.
            "shares": self._shares(),
            "misroute": self._rate({"fn", "fp"}).as_dict(),
            "fn_rate": self._rate({"fn"}).as_dict(),
            "fp_rate": self._rate({"fp"}).as_dict(),
            "precision": precision.as_dict(),
            "recall": recall.as_dict(),
            "f1": f1,
        }
