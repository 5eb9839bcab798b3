"""Bad input gets an OpenAI-style 4xx, is never forwarded, and never hurts the pod."""

from __future__ import annotations

import json

import pytest

from tests.pod.podkit import chat

JSON = {"content-type": "application/json"}

BAD_BODIES = [
    ("not json", b"{nope", "not valid JSON"),
    ("not utf-8", b'{"messages": "\xff"}', "UTF-8"),
    ("a list", b"[1, 2]", "JSON object"),
    (
        "NaN",
        b'{"messages": [{"role": "user", "content": "x"}], "temperature": NaN}',
        "not valid JSON",
    ),
    ("deep nesting", b"[" * 20_000 + b"]" * 20_000, "nested too deeply"),
    ("no messages", json.dumps({"model": "m"}).encode(), "'messages' is required"),
    ("messages not a list", json.dumps({"messages": "hi"}).encode(), "must be a list"),
    ("empty messages", json.dumps({"messages": []}).encode(), "must not be empty"),
    ("message not an object", json.dumps({"messages": ["hi"]}).encode(), "messages[0]"),
    (
        "message without role",
        json.dumps({"messages": [{"content": "hi"}]}).encode(),
        "string 'role'",
    ),
    (
        "content a number",
        json.dumps({"messages": [{"role": "user", "content": 5}]}).encode(),
        "content must be",
    ),
    (
        "part text not a string",
        json.dumps(
            {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}
        ).encode(),
        "text must be a string",
    ),
    (
        "lone surrogate",
        b'{"messages": [{"role": "user", "content": "a\\ud800b"}]}',
        "invalid Unicode",
    ),
    ("stream not a bool", json.dumps(chat("hi", stream="yes")).encode(), "'stream'"),
    ("model not a string", json.dumps({**chat("hi"), "model": 3}).encode(), "'model'"),
]


@pytest.mark.parametrize(("name", "body", "message"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_a_bad_body_is_a_400_and_reaches_no_backend(pod, weak, strong, name, body, message):
    response = pod.client.post("/v1/chat/completions", content=body, headers=JSON)

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert message in error["message"]
    assert weak.requests == [] and strong.requests == []


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_declared_json_is_a_400(pod, weak, ctype):
    headers = {"content-type": ctype} if ctype else {}

    response = pod.client.post(
        "/v1/chat/completions", content=json.dumps(chat("hi")), headers=headers
    )

    assert response.status_code == 400
    assert "Content-Type must be application/json" in response.json()["error"]["message"]
    assert weak.requests == []


def test_json_with_a_charset_is_fine(pod, weak):
    response = pod.client.post(
        "/v1/chat/completions",
        content=json.dumps(chat("hi")),
        headers={"content-type": "application/json; charset=utf-8"},
    )

    assert response.status_code == 200


def test_a_body_over_the_limit_is_a_413(pod, weak):
    big = chat("x" * 70_000)  # the shared pod's limit is 64 KiB

    response = pod.post(big)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert weak.requests == []


def test_a_chunked_body_over_the_limit_is_a_413_too(pod, weak):
    def pieces():  # no content-length: the pod must count as it reads
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(20):
            yield b"y" * 4096
        yield b'"}]}'

    response = pod.client.post("/v1/chat/completions", content=pieces(), headers=JSON)

    assert response.status_code == 413
    assert weak.requests == []


def test_completions_need_a_string_prompt(pod, weak):
    response = pod.client.post("/v1/completions", json={"model": "m", "prompt": [1, 2]})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "prompt"


def test_the_pod_keeps_serving_after_bad_input(pod, weak):
    for body, _ in [(b"\x00" * 100, 0), (b"{", 0), (b"null", 0)]:
        assert (
            pod.client.post("/v1/chat/completions", content=body, headers=JSON).status_code == 400
        )

    assert pod.post(chat("hi")).status_code == 200
    assert pod.client.get("/healthz").status_code == 200


def test_other_methods_are_not_allowed(pod):
    assert pod.client.get("/v1/chat/completions").status_code == 405
