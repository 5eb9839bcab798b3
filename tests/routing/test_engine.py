"""The engine against v7's rule, table-driven, plus config validation and canonical form."""

import random
import unicodedata

import pytest

from routing.baseline import V7_KEYWORDS
from routing.engine import (
    ConfigError,
    MessagesError,
    build_classifier,
    canonical_config,
    verify_canonical,
)

V7 = {
    "strong_keywords": [k for k, _, _ in V7_KEYWORDS],
    "token_threshold": 500,
    "turn_threshold": 5,
}


def reference_v7(messages, keywords=V7["strong_keywords"], token=500, turns=5):
    """An independent statement of v7's rule (string contents only), used as the oracle."""
    parts = [m["content"] for m in messages if m.get("content")]
    text = unicodedata.normalize("NFC", " ".join(parts))
    lowered = text.lower()
    for keyword in keywords:
        if keyword in lowered:
            return "strong"
    if len(text) > token:
        return "strong"
    if len(messages) > turns:
        return "strong"
    return "weak"


def user(text):
    return {"role": "user", "content": text}


def turns(n, text="ok"):
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": text} for i in range(n)]


@pytest.fixture(scope="module")
def v7():
    return build_classifier(V7)


CASES = [
    # (id, messages, tier, reason prefixes, matched keywords)
    ("en-keyword", [user("Please refactor this function")], "strong", ["keyword"], ["refactor"]),
    ("ko-keyword", [user("이 모듈을 리팩터링 해주세요")], "strong", ["keyword"], ["리팩터"]),
    ("ko-particle", [user("설계를 검토해줘")], "strong", ["keyword"], ["설계"]),
    ("substring", [user("I am a designer")], "strong", ["keyword"], ["design"]),
    ("upper-case", [user("DEBUG this please")], "strong", ["keyword"], ["debug"]),
    ("mixed", [user("이 API의 performance 분석")], "strong", ["keyword"], ["분석", "performance"]),
    ("plain-en", [user("Write a hello world in Go")], "weak", ["default"], []),
    ("plain-ko", [user("파이썬으로 리스트 정렬하는 법")], "weak", ["default"], []),
    ("len-499", [user("a" * 499)], "weak", ["default"], []),
    ("len-500", [user("a" * 500)], "weak", ["default"], []),
    ("len-501", [user("a" * 501)], "strong", ["length"], []),
    ("ko-len-500", [user("가" * 500)], "weak", ["default"], []),
    ("ko-len-501", [user("가" * 501)], "strong", ["length"], []),
    # Two messages of 250 joined by one space: 501 characters.
    ("joined-len", [user("a" * 250), user("b" * 250)], "strong", ["length"], []),
    ("turns-5", turns(5), "weak", ["default"], []),
    ("turns-6", turns(6), "strong", ["turns"], []),
    (
        "system-counts",
        [{"role": "system", "content": "be brief"}, *turns(5)],
        "strong",
        ["turns"],
        [],
    ),
    ("none-content", [user("hi"), {"role": "assistant", "content": None}], "weak", ["default"], []),
    ("empty-content", [user(""), user("hi")], "weak", ["default"], []),
    (
        "content-parts",
        [{"role": "user", "content": [{"type": "text", "text": "please optimize"}]}],
        "strong",
        ["keyword"],
        ["optimize"],
    ),
    (
        "image-part-ignored",
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
        "weak",
        ["default"],
        [],
    ),
    (
        "nfd-hangul",
        [user(unicodedata.normalize("NFD", "아키텍처 검토"))],
        "strong",
        ["keyword"],
        ["아키텍처"],
    ),
    (
        "all-reasons",
        [user("security " + "x" * 600), *turns(6)],
        "strong",
        ["keyword", "length", "turns"],
        ["security"],
    ),
]


@pytest.mark.parametrize(
    "messages,tier,reasons,matched", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_v7_decisions(v7, messages, tier, reasons, matched):
    decision = v7.classify(messages)
    assert decision.tier == tier
    assert [r.split(":")[0] for r in decision.reasons] == reasons
    assert sorted(decision.matched_keywords) == sorted(matched)


@pytest.mark.parametrize(
    "messages", [c[1] for c in CASES if all(isinstance(m.get("content"), str | None) for m in c[1])]
)
def test_engine_agrees_with_reference_rule(v7, messages):
    assert v7.classify(messages).tier == reference_v7(messages)


def test_engine_agrees_with_reference_on_random_conversations(v7):
    rng = random.Random(7)
    words = ["fix", "bug", "함수", "코드", "설명", "list", "sort", "테스트", "api", " ", "\n"]
    words += [k for k, _, _ in V7_KEYWORDS] + ["Design", "DEBUG", "리팩터링", "분석해"]
    for _ in range(2000):
        n = rng.randint(1, 8)
        messages = []
        for _ in range(n):
            size = rng.choice([0, 1, 5, 40, 90, 200])
            text = "".join(rng.choice(words[:11]) for _ in range(size))
            if rng.random() < 0.15:
                text += rng.choice(words[11:])
            messages.append({"role": "user", "content": text or rng.choice(["", None])})
        assert v7.classify(messages).tier == reference_v7(messages), messages


def test_spans_point_at_the_matched_text(v7):
    decision = v7.classify([user("Refactor the 설계 doc")])
    text = "Refactor the 설계 doc"
    assert [(text[s.start : s.end].lower(), s.keyword) for s in decision.spans] == [
        ("refactor", "refactor"),
        ("설계", "설계"),
    ]


def test_byte_threshold_catches_korean_sooner_than_characters():
    classifier = build_classifier({**V7, "byte_threshold": 600})
    korean = classifier.classify([user("가" * 201)])  # 201 chars, 603 bytes
    english = classifier.classify([user("a" * 201)])
    assert korean.tier == "strong" and korean.reasons == ("bytes:603>600",)
    assert english.tier == "weak"


def test_keywords_are_matched_case_and_form_insensitively():
    classifier = build_classifier({**V7, "strong_keywords": ["Kubernetes", "아키텍처"]})
    assert classifier.classify([user("deploy on KUBERNETES")]).tier == "strong"
    nfd_keyword = build_classifier(
        {**V7, "strong_keywords": [unicodedata.normalize("NFD", "설계")]}
    )
    assert nfd_keyword.classify([user("설계")]).matched_keywords == ("설계",)


def test_no_keywords_is_a_valid_config():
    classifier = build_classifier({**V7, "strong_keywords": []})
    assert classifier.classify([user("refactor")]).tier == "weak"


@pytest.mark.parametrize(
    "messages,error",
    [
        ("hello", "messages must be a list"),
        ([5], r"messages\[0\] must be an object"),
        ([{"role": "user", "content": 5}], r"messages\[0\]\.content must be"),
        ([{"role": "user", "content": [{"type": "text", "text": 3}]}], r"content\[0\]\.text"),
        (
            [user("fine"), user("a\ud800b")],
            r"messages\[1\] contains a lone surrogate \(U\+D800\)",
        ),
        ([{"role": "user", "content": ["ok", "\udfff"]}], r"messages\[0\].*U\+DFFF"),
    ],
)
def test_malformed_messages_raise_a_clear_error(v7, messages, error):
    with pytest.raises(MessagesError, match=error):
        v7.classify(messages)


def test_a_lone_surrogate_in_joined_text_is_a_messages_error_too(v7):
    # classify_text and scan take text that skipped conversation_text's check.
    with pytest.raises(MessagesError, match="lone surrogate"):
        v7.classify_text("design \ud800", 1)
    with pytest.raises(MessagesError, match="lone surrogate"):
        v7.scan("\ud800")


@pytest.mark.parametrize(
    "change,field,message",
    [
        ({"strong_keywords": ["ok", ""]}, "strong_keywords", "Item 1 is empty"),
        ({"strong_keywords": ["   "]}, "strong_keywords", "whitespace"),
        ({"strong_keywords": ["Design", "design"]}, "strong_keywords", "duplicates item 0"),
        ({"strong_keywords": ["x" * 101]}, "strong_keywords", "over 100 characters"),
        ({"strong_keywords": [f"k{i}" for i in range(5001)]}, "strong_keywords", "At most 5,000"),
        ({"strong_keywords": "design"}, "strong_keywords", "list of strings"),
        ({"strong_keywords": [3]}, "strong_keywords", "must be a string"),
        ({"token_threshold": 0}, "token_threshold", "positive integer"),
        ({"token_threshold": -5}, "token_threshold", "positive integer"),
        ({"token_threshold": 2.5}, "token_threshold", "positive integer"),
        ({"token_threshold": "500"}, "token_threshold", "positive integer"),
        ({"token_threshold": 10**9}, "token_threshold", "at most"),
        ({"turn_threshold": True}, "turn_threshold", "positive integer"),
        ({"turn_threshold": None}, "turn_threshold", "required"),
        ({"byte_threshold": 0}, "byte_threshold", "positive integer"),
        ({"surprise": 1}, "surprise", "Unknown field"),
    ],
)
def test_invalid_configs_name_the_field(change, field, message):
    with pytest.raises(ConfigError) as raised:
        build_classifier({**V7, **change})
    assert field in raised.value.errors
    assert message in " ".join(raised.value.errors[field])


def test_every_bad_field_is_reported_at_once():
    with pytest.raises(ConfigError) as raised:
        build_classifier({"strong_keywords": [""], "token_threshold": 0, "turn_threshold": "x"})
    assert set(raised.value.errors) == {"strong_keywords", "token_threshold", "turn_threshold"}


def test_canonical_hash_ignores_keyword_order_but_not_content():
    a = canonical_config("v9", V7)
    b = canonical_config("v9", {**V7, "strong_keywords": list(reversed(V7["strong_keywords"]))})
    c = canonical_config("v9", {**V7, "token_threshold": 501})
    assert a == b
    assert a["sha256"] != c["sha256"]
    assert canonical_config("v10", V7)["sha256"] != a["sha256"]


def test_a_canonical_config_verifies_and_builds():
    document = canonical_config("v7", V7)
    verify_canonical(document)
    assert build_classifier(document).classify([user("debug")]).tier == "strong"


def test_a_tampered_canonical_config_is_refused():
    document = canonical_config("v7", V7)
    document["token_threshold"] = 5000
    with pytest.raises(ConfigError, match="sha256"):
        verify_canonical(document)
