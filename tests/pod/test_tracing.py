"""Langfuse traces through the real SDK, and a broken Langfuse never touching requests."""

from __future__ import annotations

import json
import time

import pytest
from langfuse import Langfuse

from tests.pod.podkit import chat
from tests.pod.test_fallback import closed_port_url
from tests.standins.langfuse_otel import LangfuseOtel


@pytest.fixture
def langfuse():
    with LangfuseOtel() as standin:
        yield standin


def traced_pod(start_pod, base_url: str, *args: str):
    env = {"LANGFUSE_FLUSH_INTERVAL": "0.1", "LANGFUSE_FLUSH_AT": "1"}
    # A 1 s export timeout also bounds the pod's flush at shutdown.
    return start_pod(
        "--langfuse-public-key",
        "pk-lf-test",
        "--langfuse-secret-key",
        "sk-lf-test",
        "--langfuse-base-url",
        base_url,
        "--langfuse-timeout",
        "1",
        *args,
        env=env,
    )


def root_span(langfuse, request_id: str):
    trace_id = Langfuse.create_trace_id(seed=request_id)
    return langfuse.wait_for_spans(lambda s: s.trace_id == trace_id)[0]


def test_each_request_is_a_trace_with_the_routing_tags(start_pod, langfuse, strong):
    pod = traced_pod(start_pod, langfuse.base_url)
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "이 모듈의 보안 설계를 검토해줘"},
    ]

    response = pod.post(
        {"model": "m", "messages": messages, "user": "dev-7"}, headers={"x-request-id": "req-ko-1"}
    )

    span = root_span(langfuse, "req-ko-1")
    attrs = span.attributes
    assert response.headers["x-request-id"] == "req-ko-1"
    assert sorted(attrs["langfuse.trace.tags"]) == sorted(
        ["tier:strong", "keyword_match:true", "turn_count:2", "classifier_version:v7"]
    )
    assert json.loads(attrs["langfuse.trace.metadata.content_length"]) == len(
        "You are helpful. 이 모듈의 보안 설계를 검토해줘"
    )
    assert json.loads(attrs["langfuse.trace.metadata.strong_keywords_found"]) == ["설계"]
    assert json.loads(attrs["langfuse.trace.metadata.classifier_version"]) == "v7"
    assert attrs["langfuse.trace.name"] == "cascade-route"
    assert attrs["user.id"] == "dev-7"
    assert attrs["langfuse.observation.type"] == "generation"
    assert attrs["langfuse.observation.model.name"] == "glm-5"
    assert json.loads(attrs["langfuse.observation.input"]) == messages
    assert attrs["langfuse.observation.output"] == "strong-0 strong-1 strong-2 "
    assert span.end_ns > span.start_ns
    assert span.headers.get("x-langfuse-ingestion-version") == "4"


def test_a_weak_streamed_request_is_tagged_weak_with_its_streamed_output(start_pod, langfuse, weak):
    pod = traced_pod(start_pod, langfuse.base_url)

    pod.post(chat("hello", stream=True), headers={"x-request-id": "req-en-2"})

    attrs = root_span(langfuse, "req-en-2").attributes
    assert sorted(attrs["langfuse.trace.tags"]) == sorted(
        ["tier:weak", "keyword_match:false", "turn_count:1", "classifier_version:v7"]
    )
    assert json.loads(attrs["langfuse.trace.metadata.strong_keywords_found"]) == []
    assert attrs["langfuse.observation.output"] == "weak-0 weak-1 weak-2 "
    assert "langfuse.observation.completion_start_time" in attrs


def test_a_fallback_is_recorded_on_the_trace(start_pod, langfuse, weak, strong):
    pod = traced_pod(start_pod, langfuse.base_url)
    strong.behave(status=500)

    pod.post(chat("architecture"), headers={"x-request-id": "req-fb-3"})

    attrs = root_span(langfuse, "req-fb-3").attributes
    assert "tier:strong" in attrs["langfuse.trace.tags"]
    assert json.loads(attrs["langfuse.observation.metadata.fallback"]) == "status_5xx"
    assert json.loads(attrs["langfuse.observation.metadata.backend"]) == "weak"


def test_a_request_without_an_id_gets_one_that_finds_its_trace(start_pod, langfuse, weak):
    pod = traced_pod(start_pod, langfuse.base_url)

    response = pod.post(chat("hello"))

    assert root_span(langfuse, response.headers["x-request-id"])


def timed_requests(pod, count: int) -> list[float]:
    took = []
    for _ in range(count):
        started = time.perf_counter()
        assert pod.post(chat("hello")).status_code == 200
        took.append(time.perf_counter() - started)
    return took


def test_a_hanging_langfuse_does_not_slow_requests(start_pod, langfuse, weak):
    langfuse.stall(5)  # every export waits 5 s for an answer
    pod = traced_pod(start_pod, langfuse.base_url)

    took = timed_requests(pod, 30)

    assert langfuse.export_requests >= 1  # the exporter really is stuck on it
    assert max(took) < 1.0, took  # far below the 5 s stall, with room for a busy CI machine


def test_an_unreachable_langfuse_does_not_break_requests(start_pod, weak):
    pod = traced_pod(start_pod, closed_port_url().removesuffix("/v1"))

    took = timed_requests(pod, 20)

    assert max(took) < 0.5, took
