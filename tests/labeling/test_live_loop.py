"""The live loop, in both Langfuse generations: a real pod's traces reach the stand-in by
OTLP, the console syncs them, a reviewer labels one, and the score lands in the stand-in.
Plus the batch ingestion API and OTLP/JSON."""

from __future__ import annotations

import gzip
import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from django.utils import timezone
from langfuse import Langfuse

from labeling import services
from labeling.langfuse_adapter import LangfuseAdapter, RetryPolicy
from labeling.models import BatchKind, Trace
from labeling.standin import DEFAULT_PUBLIC_KEY, DEFAULT_SECRET_KEY, Store, start_in_thread
from labeling.standin.fake_llm import FakeLLM
from labeling.sync import sync_execute, sync_start
from labeling.writeback import label_push, score_id
from tests.pod.podkit import Pod, chat, v7, write_config

AUTH = (DEFAULT_PUBLIC_KEY, DEFAULT_SECRET_KEY)
PROMPTS = [
    "please review the security design of this module",
    "rename this variable",
    "이 함수의 아키텍처를 설계해줘",
    "what does this regex match?",
]


@pytest.fixture(params=["v4", "v3"])
def standin(request, monkeypatch, settings):
    store = Store(api_generation=request.param)
    url, stop = start_in_thread(store)
    monkeypatch.setenv("LANGFUSE_BASE_URL", url)
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", DEFAULT_PUBLIC_KEY)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", DEFAULT_SECRET_KEY)
    settings.LANGFUSE_INGEST_LAG_SECONDS = 0
    yield request.param, store, url
    stop()


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def roots(store: Store) -> int:
    return sum(o.get("parentObservationId") is None for o in store.observations())


@pytest.mark.django_db
def test_a_pods_traces_reach_the_console_and_a_label_goes_back(
    standin, tmp_path, reviewer, operator
):
    generation, store, url = standin
    path = tmp_path / "config.json"
    write_config(path, v7())
    with FakeLLM("weak") as weak, FakeLLM("strong") as strong:
        pod = Pod(
            ["--config", str(path), "--weak-url", weak.base_url, "--strong-url",
             strong.base_url, "--weak-model", "qwen3-4b", "--strong-model", "glm-5",
             "--langfuse-public-key", DEFAULT_PUBLIC_KEY, "--langfuse-secret-key",
             DEFAULT_SECRET_KEY, "--langfuse-base-url", url],
            {"LANGFUSE_FLUSH_INTERVAL": "0.1", "LANGFUSE_FLUSH_AT": "1"},
        )  # fmt: skip
        try:
            for i, prompt in enumerate(PROMPTS):
                answer = pod.post(
                    chat(prompt, user=f"dev-{i}"), headers={"x-request-id": f"live-{i}"}
                )
                assert answer.status_code == 200
            wait_for(lambda: roots(store) >= len(PROMPTS))
        finally:
            pod.stop()

    now = timezone.now()
    run = sync_start(since=now - timedelta(hours=1))
    adapter = LangfuseAdapter.from_env(retry=RetryPolicy(attempts=2), sleep=lambda s: None)
    with adapter:
        run = sync_execute(run.pk, adapter=adapter)
        assert adapter.server_info().generation == generation
    assert (run.status, run.created, run.skipped) == ("succeeded", len(PROMPTS), 0), run.error
    expected = {Langfuse.create_trace_id(seed=f"live-{i}"): p for i, p in enumerate(PROMPTS)}
    traces = {t.langfuse_id: t for t in Trace.objects.all()}
    assert {k: t.input_text for k, t in traces.items()} == expected
    first = traces[Langfuse.create_trace_id(seed="live-0")]
    assert (first.tier, first.classifier_version, first.model) == ("strong", "v7", "glm-5")
    assert first.matched_keywords == ["security", "design"] and first.ttft_s is not None
    assert traces[Langfuse.create_trace_id(seed="live-1")].tier == "weak"

    batch = services.batch_create(
        actor=operator, kind=BatchKind.HEADLINE, period_start=now - timedelta(hours=1),
        period_end=timezone.now(), size=len(PROMPTS), seed=1,
    )  # fmt: skip
    item = batch.items.get(trace=first)
    label = services.label_submit(reviewer=reviewer, item=item, value="strong_needed")
    label = label_push(label.pk)

    assert label.langfuse_sent_at is not None, label.langfuse_error
    [score] = [s for s in store.scores() if s["id"] == score_id(label)]
    assert score["subject"] == {"kind": "trace", "id": first.langfuse_id}
    assert (score["name"], score["value"]) == ("routing_label", "strong_needed")


def test_the_ingestion_api_takes_traces_generations_and_scores(standin):
    generation, store, url = standin
    at = "2026-12-01T10:00:00.000Z"
    batch = {
        "batch": [
            {"id": "e1", "type": "trace-create", "timestamp": at,
             "body": {"id": "t1", "name": "cascade-route", "userId": "u1",
                      "tags": ["tier:weak", "classifier_version:v7"],
                      "metadata": {"content_length": "5"}}},
            {"id": "e2", "type": "generation-create", "timestamp": at,
             "body": {"id": "g1", "traceId": "t1", "name": "chat", "startTime": at,
                      "endTime": "2026-12-01T10:00:01.000Z", "model": "qwen3-4b",
                      "input": [{"role": "user", "content": "hello"}], "output": "hi"}},
            {"id": "e3", "type": "score-create", "timestamp": at,
             "body": {"id": "s1", "traceId": "t1", "name": "thumbs", "value": 1,
                      "dataType": "NUMERIC"}},
            {"id": "e4", "type": "sdk-log", "timestamp": at, "body": {"log": "x"}},
        ]
    }  # fmt: skip

    answer = httpx.post(f"{url}/api/public/ingestion", json=batch, auth=AUTH, trust_env=False)

    assert answer.status_code == 207
    assert [s["id"] for s in answer.json()["successes"]] == ["e1", "e2", "e3"]
    assert [(e["id"], e["status"]) for e in answer.json()["errors"]] == [("e4", 400)]
    since, until = (
        datetime(2026, 12, 1, 9, tzinfo=UTC),
        datetime(2026, 12, 1, 11, tzinfo=UTC),
    )
    with LangfuseAdapter.from_env(sleep=lambda s: None) as adapter:
        pages = adapter.iter_trace_records(since, until)
        [record] = [r for _, parsed in pages for r in parsed.records]
        assert (record.langfuse_id, record.tier, record.model) == ("t1", "weak", "qwen3-4b")
        assert record.messages == [{"role": "user", "content": "hello"}]
        assert [s.id for s in adapter.fetch_scores(["t1"])] == ["s1"]
    bad = httpx.post(f"{url}/api/public/ingestion", json=[1], auth=AUTH, trust_env=False)
    assert bad.status_code == 400


def test_otlp_json_and_gzip_are_read_and_a_wrong_type_refused(standin):
    generation, store, url = standin
    span = {
        "traceId": "ab" * 16, "spanId": "cd" * 8, "name": "chat",
        "startTimeUnixNano": "1764583200000000000", "endTimeUnixNano": "1764583201000000000",
        "attributes": [
            {"key": "langfuse.observation.type", "value": {"stringValue": "generation"}},
            {"key": "langfuse.observation.input",
             "value": {"stringValue": json.dumps([{"role": "user", "content": "hi"}])}},
            {"key": "langfuse.trace.tags", "value": {"arrayValue": {"values": [
                {"stringValue": "tier:weak"}]}}},
            {"key": "langfuse.trace.metadata.content_length", "value": {"stringValue": "2"}},
        ],
    }  # fmt: skip
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()
    endpoint = f"{url}/api/public/otel/v1/traces"

    answer = httpx.post(
        endpoint, content=gzip.compress(body), auth=AUTH, trust_env=False,
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )  # fmt: skip
    wrong = httpx.post(
        endpoint, content=body, auth=AUTH, trust_env=False, headers={"content-type": "text/plain"}
    )

    assert answer.status_code == 200 and wrong.status_code == 400
    [obs] = [o for o in store.observations() if o["traceId"] == "ab" * 16]
    assert obs["parentObservationId"] is None and obs["type"] == "GENERATION"
    assert obs["tags"] == ["tier:weak"] and obs["metadata"] == {"content_length": "2"}
    assert obs["startTime"].startswith("2025-12-01T10:00:00")


def test_the_demo_driver_sends_generated_prompts_at_its_rate():
    import threading

    from labeling.standin.drive import drive

    with FakeLLM("pod") as fake:
        stop = threading.Event()
        sender = threading.Thread(
            target=drive, args=(fake.base_url.removesuffix("/v1"), 20, 3, stop)
        )
        sender.start()
        wait_for(lambda: len(fake.requests) >= 3)
        stop.set()
        sender.join(5)

    bodies = [r.body for r in fake.requests]
    assert all(b["messages"][-1]["role"] == "user" and b["messages"][-1]["content"] for b in bodies)
    assert len({b["messages"][-1]["content"] for b in bodies}) > 1
    assert all(b["user"].startswith("demo-") for b in bodies)
