"""Fallback: strong -> weak once, only before the first byte has reached the client."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from labeling.standin.fake_llm import Behavior
from tests.pod.podkit import chat

STRONG_TEXT = "please review the security of this"

# Slow cases run on the impatient pod (0.5 s first-byte timeout), delayed well past it.
BEFORE_FIRST_BYTE = [
    ("500", Behavior(status=500), "status_5xx"),
    ("503", Behavior(status=503), "status_5xx"),
    ("429", Behavior(status=429, retry_after="3"), "status_429"),
    ("slow first byte", Behavior(first_byte_delay=1.5), "timeout"),
    ("slow headers", Behavior(headers_delay=1.5), "timeout"),
    ("drop before headers", Behavior(drop="before_headers"), "dropped"),
    ("drop after headers", Behavior(drop="after_headers"), "dropped"),
]


@pytest.mark.parametrize(
    ("name", "failure", "reason"), BEFORE_FIRST_BYTE, ids=[c[0] for c in BEFORE_FIRST_BYTE]
)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_strong_failing_before_its_first_byte_falls_back_to_weak(
    request, weak, strong, name, failure, reason, stream
):
    pod = request.getfixturevalue("impatient_pod" if reason == "timeout" else "pod")
    strong.behave(failure)

    response = pod.post(chat(STRONG_TEXT, stream=stream))

    assert response.status_code == 200, response.text
    assert response.headers["x-cascade-tier"] == "strong"
    assert response.headers["x-cascade-backend"] == "weak"
    assert response.headers["x-cascade-fallback"] == reason
    assert "weak-0" in response.text and "strong-" not in response.text
    assert len(strong.requests) == 1 and len(weak.requests) == 1
    assert weak.requests[0].body["model"] == "qwen3-4b"  # rewritten for the new backend


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_a_slow_weak_answer_is_waited_for_when_weak_is_the_only_backend(
    impatient_pod, weak, strong, stream
):
    # Nothing to fall back to: the first-byte timeout must not turn a slow answer into a 503.
    weak.behave(first_byte_delay=1.0)  # twice the pod's first-byte timeout

    response = impatient_pod.post(chat("hello", stream=stream))

    assert response.status_code == 200, response.text
    assert response.headers["x-cascade-backend"] == "weak"
    assert "x-cascade-fallback" not in response.headers
    assert "weak-0" in response.text
    assert strong.requests == []


@pytest.mark.parametrize(
    ("failure", "reason"),
    [(Behavior(status=500), "status_5xx"), (Behavior(first_byte_delay=1.5), "timeout")],
    ids=["500", "slow"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_a_slow_weak_answer_after_a_fallback_is_waited_for(
    impatient_pod, weak, strong, failure, reason, stream
):
    strong.behave(failure)
    weak.behave(first_byte_delay=1.0)  # weak is the last backend left: no deadline but reads

    response = impatient_pod.post(chat(STRONG_TEXT, stream=stream))

    assert response.status_code == 200, response.text
    assert response.headers["x-cascade-backend"] == "weak"
    assert response.headers["x-cascade-fallback"] == reason
    assert "weak-0" in response.text


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens there any more


def test_strong_refusing_connections_falls_back_to_weak(start_pod, weak):
    pod = start_pod(strong_url=closed_port_url())

    response = pod.post(chat(STRONG_TEXT))

    assert response.status_code == 200
    assert response.headers["x-cascade-fallback"] == "connect"
    assert len(weak.requests) == 1


def test_no_fallback_after_the_first_byte_reached_the_client(pod, weak, strong):
    strong.behave(chunks=5, drop="mid_stream", drop_after_chunks=2)

    response = pod.post(chat(STRONG_TEXT, stream=True))

    assert response.status_code == 200
    assert response.headers["x-cascade-backend"] == "strong"
    assert weak.requests == []  # the client already had strong's words: no second answer
    data = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert [json.loads(d)["choices"][0]["delta"]["content"] for d in data[:2]] == [
        "strong-0 ",
        "strong-1 ",
    ]
    assert json.loads(data[-1])["error"]["code"] == "upstream_stream_error"  # told, not silent
    assert "[DONE]" not in response.text


def test_a_json_answer_cut_after_its_first_byte_breaks_the_client_connection(pod, weak, strong):
    # Relayed as it comes, a JSON answer that breaks must reach the client broken,
    # never as a short body that looks complete, and is not retried either.
    strong.behave(drop="mid_stream")

    with pytest.raises(httpx.RemoteProtocolError):
        pod.post(chat(STRONG_TEXT))

    assert weak.requests == []
    assert strong.requests[0].chunks_sent == 1


def test_weak_is_not_retried_on_strong(pod, weak, strong):
    weak.behave(status=500)

    response = pod.post(chat("hello"))

    assert response.status_code == 503
    assert strong.requests == []
    assert response.json()["error"]["code"] == "backends_unavailable"


def test_both_backends_down_is_an_openai_style_503(pod, weak, strong):
    strong.behave(status=429, retry_after="7")
    weak.behave(status=502)

    response = pod.post(chat(STRONG_TEXT))

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["type"] == "service_unavailable"
    assert error["code"] == "backends_unavailable"
    assert "strong: answered 429" in error["message"]
    assert "weak: answered 502" in error["message"]
    assert response.headers["x-cascade-tier"] == "strong"
    assert len(strong.requests) == 1 and len(weak.requests) == 1  # one try each, no loops


@pytest.mark.parametrize("tier", ["weak", "strong"])
def test_a_rate_limited_last_backend_is_a_429_with_its_retry_after_not_a_5xx(
    pod, weak, strong, tier
):
    if tier == "strong":
        strong.behave(status=502)  # strong fails first, weak (the fallback) is rate limited
    weak.behave(status=429, retry_after="7")
    before = pod.metric("cascade_pod_rate_limited_total", backend="weak")
    errors_before = pod.metric("cascade_pod_requests_total", status_class="5xx")
    client_before = pod.metric("cascade_pod_requests_total", status_class="4xx")

    response = pod.post(chat(STRONG_TEXT if tier == "strong" else "hello"))

    assert response.status_code == 429
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limited")
    assert "weak: answered 429" in error["message"]
    assert response.headers["retry-after"] == "7"
    assert pod.metric("cascade_pod_rate_limited_total", backend="weak") == before + 1
    assert pod.metric("cascade_pod_requests_total", status_class="5xx") == errors_before
    assert pod.metric("cascade_pod_requests_total", status_class="4xx") == client_before + 1


def test_fallback_happens_once_per_request_not_for_later_ones(pod, weak, strong):
    strong.behave(status=500, times=1)

    first = pod.post(chat(STRONG_TEXT))
    second = pod.post(chat(STRONG_TEXT))

    assert first.headers["x-cascade-backend"] == "weak"
    assert second.headers["x-cascade-backend"] == "strong"
    assert "x-cascade-fallback" not in second.headers
