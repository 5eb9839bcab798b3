"""The pure helpers behind trace tags, metadata and output text."""

from __future__ import annotations

import json
from urllib.parse import unquote

import pytest

from routing.engine import build_classifier
from routing.pod.payload import reasons_header
from routing.pod.tracing import METADATA_LIMIT, fit_keywords, response_text, trace_tags

CLASSIFIER = build_classifier(
    {"strong_keywords": ["설계", "design"], "token_threshold": 500, "turn_threshold": 5}
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fix typo", ["tier:weak", "keyword_match:false", "turn_count:1", "classifier_version:v8"]),
        (
            "설계 검토",
            ["tier:strong", "keyword_match:true", "turn_count:1", "classifier_version:v8"],
        ),
    ],
)
def test_tags_describe_the_decision(text, expected):
    decision = CLASSIFIER.classify([{"role": "user", "content": text}])

    assert trace_tags(decision, "v8") == expected


def test_keywords_are_cut_to_fit_langfuse_metadata_limit():
    keywords = tuple(f"키워드{i:03d}" for i in range(100))

    kept = fit_keywords(keywords)

    assert 0 < len(kept) < 100
    assert kept == list(keywords[: len(kept)])
    assert len(json.dumps(kept, ensure_ascii=False, separators=(",", ":"))) <= METADATA_LIMIT


def test_streamed_output_is_reassembled():
    events = [
        {"choices": [{"delta": {"role": "assistant"}}]},
        {"choices": [{"delta": {"content": "설"}}]},
        {"choices": [{"delta": {"content": "계"}}]},
    ]
    captured = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"

    assert response_text(captured.encode(), stream=True) == "설계"


def test_json_output_is_the_message_content():
    captured = json.dumps({"choices": [{"message": {"content": "hello"}}]}).encode()

    assert response_text(captured, stream=False) == "hello"


def test_unparsable_output_is_kept_as_text():
    assert response_text(b"<html>oops", stream=False) == "<html>oops"


def test_reasons_header_is_ascii_and_decodes_back():
    value = reasons_header(("keyword:설계,design", "turns:6>5"))

    assert value.isascii()
    assert value == b"keyword:%EC%84%A4%EA%B3%84,design; turns:6>5"


def test_a_huge_reasons_header_is_cut_on_a_character_boundary():
    value = reasons_header(("keyword:" + ",".join(["설계"] * 500),)).decode()

    assert len(value) <= 1024 and value.endswith("...")
    unquote(value[:-3], errors="strict")  # no half-encoded character left at the cut
