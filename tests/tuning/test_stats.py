"""The statistics against published values and independent computations."""

import math
from fractions import Fraction

import pytest

from tuning.stats import (
    Confusion,
    mcnemar,
    percentile,
    proportion,
    weighted_proportion,
    wilson_interval,
)


def score_test_bounds(x, n, z=1.959963984540054):
    """Wilson's interval found the long way: the p where the score statistic equals z."""

    def excess(p):
        return abs(x / n - p) / math.sqrt(p * (1 - p) / n) - z

    def bisect(lo, hi):
        for _ in range(200):
            mid = (lo + hi) / 2
            if (excess(lo) > 0) == (excess(mid) > 0):
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    p = x / n
    low = 0.0 if x == 0 else bisect(1e-12, min(p, 1 - 1e-12))
    high = 1.0 if x == n else bisect(max(p, 1e-12), 1 - 1e-12)
    return low, high


# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I.
@pytest.mark.parametrize(
    "x, n, low, high",
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_matches_published_intervals(x, n, low, high):
    got = wilson_interval(x, n)
    assert got[0] == pytest.approx(low, abs=1e-4)
    assert got[1] == pytest.approx(high, abs=1e-4)


@pytest.mark.parametrize("x, n", [(0, 1), (1, 2), (3, 7), (8, 200), (42, 1000), (199, 200)])
def test_wilson_equals_the_inverted_score_test(x, n):
    low, high = wilson_interval(x, n)
    ref_low, ref_high = score_test_bounds(x, n)
    assert low == pytest.approx(ref_low, abs=1e-9)
    assert high == pytest.approx(ref_high, abs=1e-9)


def test_a_misroute_of_four_percent_from_200_labels_spans_about_two_to_eight():
    rate = proportion(8, 200)  # 4.0%, next to the spec's 4.2%
    assert rate.value == 0.04 and rate.n == 200
    assert 0.019 < rate.low < 0.022 and 0.075 < rate.high < 0.08


def test_no_observations_is_no_data_not_zero():
    assert proportion(0, 0).value is None
    assert weighted_proportion([]).value is None


def test_equal_weights_give_the_unweighted_rate_and_interval():
    rows = [(3.0, True)] * 5 + [(3.0, False)] * 45
    assert weighted_proportion(rows) == proportion(5, 50)


def test_weights_shift_the_estimate_and_shrink_the_effective_sample():
    # Stratum A: 10 items of weight 9 (3 hits); stratum B: 10 items of weight 1 (0 hits).
    rows = [(9.0, i < 3) for i in range(10)] + [(1.0, False)] * 10
    rate = weighted_proportion(rows)
    assert rate.value == pytest.approx(27 / 100)
    assert rate.n == pytest.approx(100**2 / (10 * 81 + 10))  # Kish: about 12.2, not 20
    assert rate.low < rate.value < rate.high


def test_weights_must_be_positive():
    with pytest.raises(ValueError):
        weighted_proportion([(0.0, True)])


@pytest.mark.parametrize(
    "b, c, exact, mid",
    [
        # Worked by hand: 2 * (C(10,0) + C(10,1)) / 2^10 and the mid-p correction.
        (1, 9, Fraction(22, 1024), Fraction(12, 1024)),
        (9, 1, Fraction(22, 1024), Fraction(12, 1024)),
        (5, 5, Fraction(1), Fraction(1)),
        (0, 6, Fraction(2, 64), Fraction(1, 64)),
        (3, 12, None, None),  # checked against the direct sum below
    ],
)
def test_mcnemar_exact_and_mid_p(b, c, exact, mid):
    result = mcnemar(b, c)
    n, k = b + c, min(b, c)
    if exact is None:
        tail = Fraction(sum(math.comb(n, i) for i in range(k + 1)), 2**n)
        exact = min(Fraction(1), 2 * tail)
        mid = min(Fraction(1), 2 * (tail - Fraction(math.comb(n, k), 2 ** (n + 1))))
    assert result.p_exact == pytest.approx(float(exact), abs=1e-12)
    assert result.p_mid == pytest.approx(float(mid), abs=1e-12)
    assert result.p_mid <= result.p_exact


def test_mcnemar_without_discordant_pairs_has_no_p_value():
    assert mcnemar(0, 0).p_exact is None


@pytest.mark.parametrize(
    "values, q, expected",
    [([1, 2, 3, 4], 0.5, 2.5), ([1, 2, 3, 4], 0.95, 3.85), ([7], 0.95, 7), ([], 0.5, None)],
)
def test_percentile_interpolates_like_percentile_cont(values, q, expected):
    assert percentile(values, q) == (pytest.approx(expected) if expected is not None else None)


def test_confusion_matrix_rates_match_a_hand_count():
    confusion = Confusion()
    for predicted, actual, times in [
        ("strong", "strong_needed", 30),
        ("weak", "strong_needed", 5),
        ("strong", "weak_sufficient", 10),
        ("weak", "weak_sufficient", 155),
    ]:
        for _ in range(times):
            confusion.add(predicted, actual)
    m = confusion.metrics()
    assert m["matrix"] == {"tp": 30, "fn": 5, "fp": 10, "tn": 155}
    assert m["misroute"]["value"] == pytest.approx(15 / 200)
    assert m["fn_rate"]["value"] == pytest.approx(5 / 200)
    assert m["precision"]["value"] == pytest.approx(30 / 40)
    assert m["recall"]["value"] == pytest.approx(30 / 35)
    p, r = 30 / 40, 30 / 35
    assert m["f1"] == pytest.approx(2 * p * r / (p + r))
    assert m["misroute"]["n"] == 200 and m["precision"]["n"] == 40


def test_mcnemar_holds_for_thousands_of_discordant_pairs():
    from tuning.stats import binomial_pmf, mcnemar

    test = mcnemar(900, 1100)  # 2,000 discordant pairs: math.comb overflows a float here

    assert 0 < test.p_exact < 1e-5 and 0 < test.p_mid < test.p_exact
    assert mcnemar(1000, 1000).p_exact == pytest.approx(1.0)
    assert binomial_pmf(3, 10) == pytest.approx(120 / 1024, rel=1e-12)


@pytest.mark.parametrize("df, expected", [(1, 12.706), (10, 2.228), (30, 2.042), (100, 1.984)])
def test_the_t_quantile_matches_the_tables(df, expected):
    from tuning.stats import t975

    assert t975(df) == pytest.approx(expected, abs=1e-3)


def test_a_small_sample_mean_gets_a_wider_t_interval():
    from tuning.stats import mean_interval

    ratings = [5, 4, 5]
    rate = mean_interval(sum(ratings), sum(r * r for r in ratings), len(ratings))
    # sd 0.577, se 0.333: t(2) = 4.303 gives +-1.434 (the normal 1.96 gave +-0.653).
    assert rate["high"] - rate["value"] == pytest.approx(4.3027 * 0.57735 / 3**0.5, rel=1e-3)
