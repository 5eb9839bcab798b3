"""Routing: the right backend, the rewritten model, the headers, in Korean and English."""

from __future__ import annotations

import subprocess
import sys
import time
from urllib.parse import unquote

import pytest

from tests.pod.podkit import ROOT, chat

LONG_KO = "간단한 질문입니다 " * 60  # ~540 characters, no keyword

CASES = [
    # (name, messages, tier, reason prefix)
    ("short english", [{"role": "user", "content": "what does this regex do?"}], "weak", "default"),
    ("short korean", [{"role": "user", "content": "이 함수 이름 추천해줘"}], "weak", "default"),
    (
        "english keyword",
        [{"role": "user", "content": "Review the architecture of this"}],
        "strong",
        "keyword:architect",
    ),
    (
        "korean keyword",
        [{"role": "user", "content": "이 모듈 설계를 봐줘"}],
        "strong",
        "keyword:설계",
    ),
    (
        "keyword inside a word",
        [{"role": "user", "content": "ask the designer"}],
        "strong",
        "keyword:design",
    ),
    ("long text", [{"role": "user", "content": LONG_KO}], "strong", "length:"),
    ("many turns", [{"role": "user", "content": "hi"}] * 6, "strong", "turns:6>5"),
    (
        "content parts",
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "please refactor"},
                    {"type": "image_url", "image_url": {"url": "data:,"}},
                ],
            }
        ],
        "strong",
        "keyword:refactor",
    ),
]


@pytest.mark.parametrize(("name", "messages", "tier", "reason"), CASES, ids=[c[0] for c in CASES])
def test_request_goes_to_the_classified_tier(pod, weak, strong, name, messages, tier, reason):
    response = pod.post({"model": "client-model", "messages": messages})

    assert response.status_code == 200, response.text
    assert response.headers["x-cascade-tier"] == tier
    assert response.headers["x-cascade-backend"] == tier
    assert response.headers["x-cascade-version"] == "v7"
    assert unquote(response.headers["x-cascade-reasons"]).startswith(reason)
    answered, idle = (strong, weak) if tier == "strong" else (weak, strong)
    assert len(answered.requests) == 1 and idle.requests == []
    assert response.json()["choices"][0]["message"]["content"].startswith(f"{tier}-0")


def test_model_is_rewritten_to_the_backends_served_name(pod, weak, strong):
    pod.post(chat("hello"))
    pod.post(chat("security review please"))

    assert weak.requests[0].body["model"] == "qwen3-4b"
    assert strong.requests[0].body["model"] == "glm-5"


def test_the_rest_of_the_body_is_forwarded_untouched(pod, weak):
    body = chat(
        "hello",
        temperature=0.2,
        max_tokens=7,
        tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        user="u-1",
    )

    pod.post(body)

    forwarded = weak.requests[0].body
    assert forwarded == {**body, "model": "qwen3-4b"}


def test_client_auth_is_not_sent_to_a_backend(pod, strong):
    pod.post(
        chat("design this"),
        headers={"authorization": "Bearer client-key", "x-request-id": "req-abc"},
    )

    headers = strong.requests[0].headers
    assert "authorization" not in headers
    assert headers["x-request-id"] == "req-abc"


def test_a_configured_backend_key_replaces_the_clients(pod, weak):
    response = pod.post(chat("hi"), headers={"authorization": "Bearer client-key"})

    assert weak.requests[0].headers["authorization"] == "Bearer weak-secret"
    assert response.headers["x-request-id"]


def test_client_auth_is_forwarded_when_configured(start_pod, strong):
    pod = start_pod("--forward-client-auth")

    pod.post(chat("design this"), headers={"authorization": "Bearer client-key"})

    assert strong.requests[0].headers["authorization"] == "Bearer client-key"


def test_legacy_completions_are_routed_on_the_prompt(pod, weak, strong):
    weak_answer = pod.client.post("/v1/completions", json={"model": "m", "prompt": "say hi"})
    strong_answer = pod.client.post(
        "/v1/completions", json={"model": "m", "prompt": ["보안 설계 점검", "해줘"]}
    )

    assert weak_answer.headers["x-cascade-tier"] == "weak"
    assert weak_answer.json()["choices"][0]["text"].startswith("weak-0")
    assert strong_answer.headers["x-cascade-tier"] == "strong"
    assert strong.requests[0].path == "/v1/completions"
    assert strong.requests[0].body["model"] == "glm-5"


def test_a_backend_client_error_is_passed_through_without_fallback(pod, weak, strong):
    strong.behave(status=400)

    response = pod.post(chat("architecture"))

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "strong fails with 400"
    assert weak.requests == []


def test_models_lists_the_cascade_model(pod):
    assert pod.client.get("/v1/models").json()["data"][0]["id"] == "cascade"


def test_the_pod_does_not_import_django():
    code = (
        "import sys, routing.pod.app, routing.pod.__main__; "
        "sys.exit(1 if any(m.split('.')[0] in ('django', 'rest_framework', 'labeling', "
        "'rollouts', 'cascade_admin') for m in sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_models_lists_the_served_name_with_created_and_answers_for_it(pod):
    listed = pod.client.get("/v1/models").json()["data"]
    one = pod.client.get("/v1/models/cascade")
    other = pod.client.get("/v1/models/gpt-4o")

    assert listed[0]["id"] == "cascade" and listed[0]["object"] == "model"
    assert abs(listed[0]["created"] - time.time()) < 3600
    assert one.status_code == 200 and one.json() == listed[0]
    assert other.status_code == 404
    assert other.json()["error"]["code"] == "model_not_found"
