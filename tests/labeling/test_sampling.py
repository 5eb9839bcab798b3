"""Sampling: reproducible draws, honest weights, discovery kept out of headline estimates."""

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Count

from labeling.models import BatchKind, Trace
from labeling.sampling import RETRY_WINDOW_LIMIT, draw, period_traces, retry_candidates
from labeling.similarity import similarity
from labeling.sync import input_fingerprint

from .conftest import TRAFFIC_END

pytestmark = pytest.mark.django_db
START = TRAFFIC_END - timedelta(days=3)


def frame():
    return period_traces(START, TRAFFIC_END)


def test_a_seeded_headline_sample_is_reproducible(synced):
    a = draw(BatchKind.HEADLINE, frame(), 50, seed=7)
    b = draw(BatchKind.HEADLINE, frame(), 50, seed=7)
    c = draw(BatchKind.HEADLINE, frame(), 50, seed=8)
    assert a.trace_ids == b.trace_ids
    assert a.trace_ids != c.trace_ids
    # 50 requests drawn; the ones that share an input are one item.
    assert len(a.trace_ids) == len(set(a.trace_ids)) <= 50
    assert sum(a.weights.values()) == pytest.approx(a.population)


def test_duplicate_inputs_are_collapsed(synced):
    total = frame().count()
    distinct = frame().values("input_hash").distinct().count()
    assert distinct < total  # the traffic has retries of the same question
    sample = draw(BatchKind.HEADLINE, frame(), 10_000, seed=1)
    assert (sample.population, sample.distinct) == (total, distinct)
    hashes = Trace.objects.filter(id__in=sample.trace_ids).values_list("input_hash", flat=True)
    assert len(set(hashes)) == len(sample.trace_ids)


@pytest.mark.parametrize("stratify", [False, True])
def test_a_census_weighs_back_to_every_request(synced, stratify):
    """Collapsing duplicates must not turn a per-request rate into a per-prompt one."""
    options = {"stratify_by_tier": stratify}
    census = draw(BatchKind.HEADLINE, frame(), 10_000, seed=3, options=options)
    assert sum(census.weights.values()) == pytest.approx(frame().count())
    repeated = frame().values("input_hash", "tier").annotate(n=Count("id")).filter(n__gt=1)[0]
    [item] = Trace.objects.filter(id__in=census.trace_ids, input_hash=repeated["input_hash"])
    assert census.weights[item.id] == pytest.approx(repeated["n"])


def test_stratified_weights_follow_the_strata(synced):
    sample = draw(BatchKind.HEADLINE, frame(), 60, seed=3, options={"stratify_by_tier": True})
    assert set(sample.strata.values()) >= {"weak", "strong"}
    tiers = dict(Trace.objects.filter(id__in=sample.trace_ids).values_list("id", "tier"))
    assert all(tiers[i] == sample.strata[i] for i in sample.trace_ids)
    # Each stratum's drawn requests weigh N_h / n_h: together, every request in the frame.
    assert sum(sample.weights.values()) == pytest.approx(sample.population)


def test_fn_candidates_are_weak_with_thumbs_down(synced):
    sample = draw(BatchKind.FN_CANDIDATES, frame(), 500, seed=1)
    traces = Trace.objects.filter(id__in=sample.trace_ids)
    assert traces.exists()
    assert set(traces.values_list("tier", "thumbs_down")) == {("weak", True)}
    assert sample.weights == {}  # no estimation weight: not a probability sample


def fp_costs(options=None):
    sample = draw(BatchKind.FP_CANDIDATES, frame(), 500, seed=1, options=options)
    traces = Trace.objects.filter(id__in=sample.trace_ids)
    assert traces.exists()
    assert {(t.tier, t.char_count < 200) for t in traces} == {("strong", True)}
    return sorted(t.cost_usd for t in traces)


def test_fp_candidates_are_strong_costly_and_short(synced):
    costs = fp_costs()  # the default threshold, 0.01 USD
    assert costs[0] > 0.01
    cheap = Trace.objects.filter(tier="strong", char_count__lt=200, cost_usd__lte=0.01)
    assert cheap.exists()  # so the threshold did leave some out
    higher = costs[len(costs) // 2]
    assert min(fp_costs({"min_cost_usd": higher})) > higher
    assert len(fp_costs({"min_cost_usd": 0.0})) > len(costs)


def test_near_threshold_candidates(synced):
    sample = draw(BatchKind.NEAR_THRESHOLD, frame(), 500, seed=1)
    traces = Trace.objects.filter(id__in=sample.trace_ids)
    assert traces.filter(char_count__range=(450, 550)).exists()
    assert traces.filter(turn_count__in=(5, 6)).exists()
    for trace in traces:
        assert 450 <= trace.char_count <= 550 or trace.turn_count in (5, 6)
    narrow = draw(BatchKind.NEAR_THRESHOLD, frame(), 500, seed=1, options={"char_margin": 10})
    assert 0 < narrow.distinct < sample.distinct
    for trace in Trace.objects.filter(id__in=narrow.trace_ids):
        assert 490 <= trace.char_count <= 510 or trace.turn_count in (5, 6)


def _trace(n, user, at, text, tier="weak"):
    return Trace.objects.create(
        langfuse_id=f"t{n}",
        started_at=at,
        user_id=user,
        messages=[{"role": "user", "content": text}],
        input_text=text,
        input_hash=input_fingerprint(text),
        char_count=len(text),
        turn_count=1,
        tier=tier,
    )


def test_retries_need_the_same_user_a_similar_input_and_five_minutes(db):
    t0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    ask = "파이썬에서 리스트를 정렬하는 방법 알려줘"
    first = _trace(1, "u1", t0, ask)
    _trace(2, "u1", t0 + timedelta(minutes=3), ask + "요")  # a retry
    _trace(3, "u2", t0, ask)  # another user: not a retry of u1
    _trace(4, "u2", t0 + timedelta(days=1, minutes=1), ask)  # a day later: not a retry
    _trace(5, "u3", t0, "explain this regex", tier="strong")  # strong first: not an FN sign
    _trace(6, "u3", t0 + timedelta(minutes=1), "explain this regex please")
    _trace(7, "u4", t0, "write a sort function")
    _trace(8, "u4", t0 + timedelta(minutes=2), "what is the capital of France?")  # unrelated
    found = retry_candidates(Trace.objects.all())
    assert found == [first.pk]


def test_a_retry_is_found_past_an_unrelated_request_in_between(db):
    t0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    ask = "파이썬에서 리스트를 정렬하는 방법 알려줘"
    first = _trace(1, "u1", t0, ask)  # A: a weak answer
    _trace(2, "u1", t0 + timedelta(minutes=1), "what is the capital of France?")  # B
    _trace(3, "u1", t0 + timedelta(minutes=4, seconds=30), ask + "요")  # A' after B
    assert retry_candidates(Trace.objects.all()) == [first.pk]


def test_a_similar_request_six_minutes_later_is_not_a_retry(db):
    t0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    ask = "how do I sort a list of dicts by a key in python"
    _trace(1, "u1", t0, ask)
    _trace(2, "u1", t0 + timedelta(minutes=1), "configure nginx ssl")
    _trace(3, "u1", t0 + timedelta(minutes=6), ask + "?")
    assert retry_candidates(Trace.objects.all()) == []


def test_each_retried_trace_is_listed_once(db):
    t0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    ask = "리스트 정렬 방법 알려줘"
    first = _trace(1, "u1", t0, ask)
    second = _trace(2, "u1", t0 + timedelta(minutes=1), ask + "요")  # weak again
    _trace(3, "u1", t0 + timedelta(minutes=2), ask + "요?")  # retries both
    assert retry_candidates(Trace.objects.all()) == [first.pk, second.pk]


def test_the_retry_window_holds_a_bounded_number_of_traces(db):
    t0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    ask = "how do I sort a list of dicts by a key in python"
    _trace(1, "u1", t0, ask)
    # A burst of distinct weak requests, more than the window keeps, pushes A out of it.
    for n in range(RETRY_WINDOW_LIMIT):
        text = hashlib.sha256(str(n).encode()).hexdigest()
        _trace(10 + n, "u1", t0 + timedelta(seconds=1 + n), text)
    _trace(2, "u1", t0 + timedelta(minutes=2), ask)
    assert retry_candidates(Trace.objects.all()) == []


@pytest.mark.parametrize(
    "a,b,similar",
    [
        ("리스트 정렬 방법 알려줘", "리스트 정렬 방법 알려줘요", True),
        ("how do I sort a list in python", "How do I sort a list in Python?", True),
        ("리스트 정렬 방법", "데이터베이스 인덱스 설계", False),
        ("sort a list", "configure nginx ssl", False),
    ],
)
def test_similarity_works_for_korean_and_english(a, b, similar):
    assert (similarity(a, b) >= 0.8) is similar
