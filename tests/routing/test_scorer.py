"""The weighted-keyword scorer in the engine: decisions, explanation, validation, schemas."""

import json
import random

import pytest

from routing.baseline import v7_config
from routing.engine import (
    SCHEMA,
    SCHEMA_SCORER,
    ConfigError,
    build_classifier,
    canonical_config,
    verify_canonical,
)
from routing.engine.config import MAX_CANONICAL_BYTES
from routing.playground import highlight

BASE = {"strong_keywords": ["디버깅"], "token_threshold": 1000, "turn_threshold": 8}
SCORER = {
    "bias": -1.0,
    "threshold": 0.5,
    "features": [
        ["리팩터", 1.25],
        ["race", 2.0],
        ["hello", -0.75],
        ["설계", 0.5],
        ["why", 0.25],
        ["ac", 0.125],
    ],
}


def with_scorer(**changes):
    scorer = {**SCORER, **changes}
    return {**BASE, "scorer": scorer}


def user(text):
    return {"role": "user", "content": text}


def classify(text, config=None, turns=1):
    classifier = build_classifier(config or with_scorer())
    return classifier.classify([user(text)] * turns)


def test_score_is_the_bias_plus_each_present_features_weight_once():
    decision = classify("race race race 설계 hello")  # race counts once; "ac" is in "race"

    assert decision.score == pytest.approx(-1.0 + 2.0 + 0.5 - 0.75 + 0.125)
    assert decision.tier == "strong"
    assert decision.reasons == ("score:0.875>=0.5",)


def test_below_the_threshold_is_weak_and_says_by_how_much():
    decision = classify("hello, why is this slow?")

    assert decision.score == pytest.approx(-1.0 - 0.75 + 0.25)
    assert decision.tier == "weak"
    assert decision.reasons == ("score:-1.5<0.5",)


def test_a_score_exactly_at_the_threshold_is_strong():
    # -1 + 1.25 + 0.25 = 0.5 exactly, whatever the order the matches are summed in.
    assert classify("리팩터 why").tier == "strong"
    assert classify("why 리팩터").score == 0.5


def test_thresholds_and_pinned_keywords_fire_whatever_the_score():
    very_negative = with_scorer(bias=-1000.0)

    long = classify("hello " * 200, very_negative)
    assert long.tier == "strong" and long.reasons[0].startswith("length:")
    many = classify("hello", very_negative, turns=9)
    assert many.tier == "strong" and many.reasons == ("turns:9>8",)
    pinned = classify("디버깅 도와줘", very_negative)
    assert pinned.tier == "strong" and pinned.reasons == ("keyword:디버깅",)
    assert classify("hello", very_negative).tier == "weak"


def test_matching_is_on_the_nfc_lower_cased_joined_text_like_keywords():
    decision = build_classifier(with_scorer(bias=0.0, threshold=100.0)).classify(
        [user("RA"), user("CE 리팩터")]  # "ra ce" joined with a space: no "race"
    )

    assert dict(decision.top_features) == {"리팩터": 1.25}
    nfd = "\u1105\u1175\u1111\u1162\u11a8\u1110\u1165"  # 리팩터 decomposed (NFD)
    assert dict(classify(nfd).top_features) == {"리팩터": 1.25}
    assert dict(classify("RACE").top_features) == {"race": 2.0, "ac": 0.125}


def test_top_features_are_the_five_present_ones_that_pushed_most_either_way():
    decision = classify("race 리팩터 hello 설계 why ac")

    assert decision.top_features == (
        ("race", 2.0),
        ("리팩터", 1.25),
        ("hello", -0.75),
        ("설계", 0.5),
        ("why", 0.25),
    )
    assert decision.as_dict()["top_features"][0] == ["race", 2.0]
    assert decision.as_dict()["score"] == decision.score


def test_a_config_without_scorer_decides_and_serialises_as_before():
    decision = build_classifier(BASE).classify([user("hello")])

    assert decision.score is None and decision.top_features == ()
    assert decision.reasons == ("default",)
    assert "score" not in decision.as_dict()
    # The seeded v7 hash, as every pod and ConfigMap has it since the first release.
    assert v7_config()["sha256"] == (
        "1a5646dd1f52f91af5b6aac51f3d71999d470589bfe0d164f46290b4c8bd144f"
    )
    assert "scorer" not in canonical_config("x", BASE)
    assert canonical_config("x", {**BASE, "scorer": None}) == canonical_config("x", BASE)


def test_canonical_form_has_schema_two_sorted_features_and_a_stable_hash():
    document = canonical_config("v9", with_scorer())
    shuffled = with_scorer(features=list(reversed(SCORER["features"])))

    assert document["schema"] == SCHEMA_SCORER
    assert [f for f, _ in document["scorer"]["features"]] == sorted(
        f for f, _ in SCORER["features"]
    )
    assert canonical_config("v9", shuffled)["sha256"] == document["sha256"]
    verify_canonical(document)
    assert build_classifier(document).classify([user("race")]).tier == "strong"


def test_a_schema_that_does_not_fit_the_content_is_refused():
    document = canonical_config("v9", with_scorer())

    with pytest.raises(ConfigError) as err:
        verify_canonical({**document, "schema": SCHEMA})
    assert "cascade-classifier/2" in err.value.errors["schema"][0]
    with pytest.raises(ConfigError) as err:
        verify_canonical({**document, "schema": "cascade-classifier/3"})
    assert "reads" in err.value.errors["schema"][0]
    weights_changed = json.loads(json.dumps(document))
    weights_changed["scorer"]["features"][0][1] = 9.0
    with pytest.raises(ConfigError) as err:
        verify_canonical(weights_changed)
    assert "sha256" in err.value.errors


@pytest.mark.parametrize(
    ("scorer", "field", "says"),
    [
        ({**SCORER, "bias": float("nan")}, "scorer.bias", "finite"),
        ({**SCORER, "threshold": float("inf")}, "scorer.threshold", "finite"),
        ({**SCORER, "threshold": "0.5"}, "scorer.threshold", "number"),
        ({**SCORER, "bias": True}, "scorer.bias", "number"),
        ({k: v for k, v in SCORER.items() if k != "bias"}, "scorer.bias", "required"),
        ({**SCORER, "features": [["race", float("-inf")]]}, "scorer.features", "finite"),
        ({**SCORER, "features": [["race", 1e9]]}, "scorer.features", "within"),
        ({**SCORER, "features": [["  ", 1.0]]}, "scorer.features", "empty"),
        ({**SCORER, "features": [["x" * 101, 1.0]]}, "scorer.features", "over 100"),
        ({**SCORER, "features": [["Race", 1.0], ["race", 2.0]]}, "scorer.features", "duplicates"),
        ({**SCORER, "features": [["race"]]}, "scorer.features", "pair"),
        ({**SCORER, "features": "race"}, "scorer.features", "list"),
        ({**SCORER, "features": []}, "scorer.features", "at least one"),
        ({**SCORER, "weights": {}}, "scorer.weights", "Unknown"),
        ([1, 2], "scorer", "object"),
    ],
)
def test_bad_scorers_are_refused_naming_the_field(scorer, field, says):
    with pytest.raises(ConfigError) as err:
        canonical_config("v9", {**BASE, "scorer": scorer})

    assert says in " ".join(err.value.errors[field])


def test_every_bad_field_is_named_at_once():
    bad = {**BASE, "token_threshold": 0, "scorer": {"bias": "x", "features": [["", 1]]}}

    with pytest.raises(ConfigError) as err:
        canonical_config("v9", bad)

    assert set(err.value.errors) == {
        "token_threshold",
        "scorer.bias",
        "scorer.threshold",
        "scorer.features",
    }


def test_the_feature_cap_and_the_configmap_size_are_enforced():
    rng = random.Random(5)
    many = [[f"f{i:05d}", 0.1] for i in range(10_001)]
    with pytest.raises(ConfigError) as err:
        canonical_config("v9", with_scorer(features=many))
    assert "At most 10,000 features" in err.value.errors["scorer.features"][0]

    # 10,000 features of 100 characters are allowed one by one but not together.
    alphabet = "abcdefghijklmnopqrstuvwxyz가나다라마바사"
    long = [["".join(rng.choices(alphabet, k=100)), 0.1] for _ in range(10_000)]
    with pytest.raises(ConfigError) as err:
        canonical_config("v9", with_scorer(features=long))
    assert f"at most {MAX_CANONICAL_BYTES:,}" in err.value.errors["config"][0]


def test_feature_spans_mark_the_asked_features_and_highlight_merges_overlaps():
    classifier = build_classifier(with_scorer())
    text = "Race 리팩터 race why"

    spans = classifier.feature_spans(text, ["race", "ac", "리팩터"])

    assert [(s.start, s.end, s.keyword) for s in spans] == [
        (0, 4, "race"),
        (1, 3, "ac"),
        (5, 8, "리팩터"),
        (9, 13, "race"),
        (10, 12, "ac"),
    ]
    assert highlight(text, tuple(spans)) == [
        ("Race", "race"),
        (" ", None),
        ("리팩터", "리팩터"),
        (" ", None),
        ("race", "race"),
        (" why", None),
    ]
    assert build_classifier(BASE).feature_spans(text, ["race"]) == []
