"""Training a scorer from labels: determinism, the engine's decisions, estimates, the band.

No database: the training is pure. The labels come from the stand-in's traffic generator
(its ground truth), as the tuning benchmark draws them.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import numpy as np
import pytest

from labeling.standin.traffic import V7_CONFIG, generate_traffic
from labeling.sync import input_fingerprint
from routing.engine import build_classifier, conversation_text
from tuning import scorer_training as training
from tuning.proposals import labels_from
from tuning.scorer_proposal import propose_scorer
from tuning.search import Rule, Settings, Traffic, TrafficMatcher
from tuning.selectors import LabeledRow

END = datetime(2026, 11, 23, tzinfo=UTC)
BASE = Rule(
    frozenset(V7_CONFIG["strong_keywords"]),
    V7_CONFIG["token_threshold"],
    V7_CONFIG["turn_threshold"],
)


def requests(seed: int, per_day: int) -> list[dict]:
    traffic = generate_traffic(seed=seed, days=1, per_day=per_day, end=END, malformed_rate=0)
    out = []
    for root in traffic.roots:
        messages = json.loads(root["input"])
        text = conversation_text(messages)
        if text and root["traceId"] in traffic.truth:
            out.append(
                {"text": text, "turns": len(messages), "label": traffic.truth[root["traceId"]]}
            )
    return out


def rows_of(reqs: list[dict]) -> list[LabeledRow]:
    groups: dict[str, list[dict]] = {}
    for r in reqs:
        groups.setdefault(input_fingerprint(r["text"]), []).append(r)
    return [
        LabeledRow(
            item_id=None, batch_id=None, trace_id=None, langfuse_id=h, started_at=END,
            weight=1.0, label=g[0]["label"], tier="", version="v7", text=g[0]["text"],
            turn_count=g[0]["turns"], char_count=len(g[0]["text"]), messages=[],
            matched_keywords=(), source="headline", requests=len(g), input_hash=h,
        )
        for h, g in groups.items()
    ]  # fmt: skip


def traffic_loader(reqs: list[dict]):
    def load(terms):
        matcher = TrafficMatcher(terms)
        for r in reqs:
            matcher.add(r["text"].lower())
        return Traffic(
            chars=np.array([len(r["text"]) for r in reqs]),
            turns=np.array([r["turns"] for r in reqs]),
            forced=np.zeros(len(reqs), dtype=bool),
            hits=matcher.hits(),
        )

    return load


@pytest.fixture(scope="module")
def period():
    return requests(seed=7, per_day=1200)


@pytest.fixture(scope="module")
def labels(period):
    return labels_from(rows_of(random.Random(7).sample(period, 250)), None)


@pytest.fixture(scope="module")
def proposed(labels, period):
    return propose_scorer(
        labels, BASE, Settings(band=(0.60, 0.70)), traffic_loader(period), folds=4, seed=3
    )


def engine_config(result: dict) -> dict:
    rule = result["rule"]
    return {
        "strong_keywords": rule["keywords"],
        "token_threshold": rule["token_threshold"],
        "turn_threshold": rule["turn_threshold"],
        "scorer": result["scorer"],
    }


def test_the_same_labels_give_the_same_config_byte_for_byte(labels, period, proposed):
    again = propose_scorer(
        labels, BASE, Settings(band=(0.60, 0.70)), traffic_loader(period), folds=4, seed=3
    )

    assert json.dumps(again["scorer"]) == json.dumps(proposed["scorer"])
    assert again["estimate"] == proposed["estimate"]


def test_the_engine_decides_the_labels_exactly_as_training_did(labels, proposed):
    classifier = build_classifier(engine_config(proposed))
    scorer = proposed["scorer"]

    decisions = [
        classifier.classify_text(t, int(n)) for t, n in zip(labels.texts, labels.turns, strict=True)
    ]

    for decision, text in zip(
        decisions, labels.texts, strict=True
    ):  # an independent statement of it
        expected = scorer["bias"] + sum(w for f, w in scorer["features"] if f in text)
        assert decision.score == pytest.approx(expected, abs=1e-6)
    wrong = [(d.tier == "strong") != bool(y) for d, y in zip(decisions, labels.needed, strict=True)]
    misroute = float(np.dot(wrong, labels.weight) / labels.weight.sum())
    assert misroute == pytest.approx(proposed["in_sample"]["misroute"]["value"])


def test_weights_have_six_significant_digits_and_features_are_real_substrings(proposed, labels):
    features = proposed["scorer"]["features"]

    assert 0 < len(features) <= proposed["model"]["cap"]
    assert proposed["model"]["cap"] in training.CAPS
    assert proposed["model"]["strength"] in training.STRENGTHS
    for substring, weight in features:
        assert weight == float(f"{weight:.6g}") and weight != 0
        assert 2 <= len(substring) <= 4 and not substring.isspace()
        assert sum(substring in text for text in labels.texts) >= training.MIN_INPUTS
    assert [f for f, _ in features] == sorted(f for f, _ in features)


def test_it_beats_v7_out_of_sample_and_the_estimate_is_cross_validated(proposed):
    estimate, base = proposed["estimate"]["misroute"], proposed["base"]["misroute"]

    assert estimate["value"] < base["value"]
    assert proposed["beats_base"] and "Beats the base" in proposed["verdict"]
    assert proposed["in_sample"]["misroute"]["value"] <= estimate["value"]
    assert len(proposed["fold_rules"]) == 4
    assert proposed["slm_source"] == "traffic"


def test_the_slm_share_on_the_traffic_lands_in_the_band(proposed, period):
    classifier = build_classifier(engine_config(proposed))

    weak = [classifier.classify_text(r["text"], r["turns"]).tier == "weak" for r in period]

    assert proposed["band_met"]
    assert 0.60 <= sum(weak) / len(weak) <= 0.70
    assert proposed["estimate"]["slm_share"]["value"] == pytest.approx(sum(weak) / len(weak))


def test_new_wordings_of_the_same_tasks_are_routed_better_than_by_v7(proposed):
    held_out = requests(seed=8, per_day=600)
    new = generate_traffic(seed=8, days=1, per_day=600, end=END, wordings="test", malformed_rate=0)
    assert new.roots  # the generator's second wordings, never seen in training
    tests = []
    for root in new.roots:
        messages = json.loads(root["input"])
        text = conversation_text(messages)
        if text and root["traceId"] in new.truth:
            tests.append((text, len(messages), new.truth[root["traceId"]] == "strong_needed"))
    ours, v7 = build_classifier(engine_config(proposed)), build_classifier(V7_CONFIG)

    def misroute(classifier, cases):
        return sum((classifier.classify_text(t, n).tier == "strong") != y for t, n, y in cases)

    assert misroute(ours, tests) < misroute(v7, tests)
    same = [(r["text"], r["turns"], r["label"] == "strong_needed") for r in held_out]
    assert misroute(ours, same) < misroute(v7, same)


def test_thresholds_and_pinned_keywords_stay_hard_triggers(labels, period):
    result = propose_scorer(
        labels,
        BASE,
        Settings(band=(0.60, 0.70), pinned=frozenset({"교착"})),
        traffic_loader(period),
        folds=3,
        seed=1,
    )
    classifier = build_classifier(engine_config(result))

    assert result["rule"]["keywords"] == ["교착"]
    assert classifier.classify_text("교착 hello", 1).tier == "strong"
    long = "안녕 " * (result["rule"]["token_threshold"] // 3 + 1)
    assert classifier.classify_text(long, 1).tier == "strong"
    assert classifier.classify_text("hi", result["rule"]["turn_threshold"] + 1).tier == "strong"


def test_the_cut_search_meets_the_band_on_labels_without_traffic():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=200)
    y = scores + rng.normal(scale=0.5, size=200) > 0.3
    population = training.Population(
        chars=np.full(200, 10), turns=np.ones(200, dtype=int),
        forced=np.zeros(200, dtype=bool), weight=np.ones(200),
    )  # fmt: skip

    choice = training.choose_rule(scores, y, population, None, Rule(frozenset(), 500, 5),
                                  Settings(band=(0.75, 0.80)))  # fmt: skip

    weak_share = float((~choice.strong(scores, population)).mean())
    assert 0.75 <= weak_share <= 0.80 and choice.violation == 0
    assert (choice.token_threshold, choice.turn_threshold) == (500, 5)  # nothing to gain


def test_too_few_or_one_class_labels_are_refused(labels):
    from tuning.proposal import ProposalError

    few = labels_from(rows_of([{"text": f"x{i}", "turns": 1, "label": "weak_sufficient"}
                               for i in range(30)]), None)  # fmt: skip
    with pytest.raises(ProposalError, match="one class"):
        propose_scorer(few, BASE, Settings(), lambda terms: None, folds=3)
