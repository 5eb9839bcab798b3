"""A scorer version in the pod: same decisions as the console, explained, reloaded, and
refused by a pod from before scorers."""

from __future__ import annotations

import json
import random
from urllib.parse import unquote

import pytest
from langfuse import Langfuse

from routing.engine import SCHEMAS, build_classifier
from tests.pod.conftest import pod_args
from tests.pod.podkit import Pod, chat, old_pod_tree, scored, v7, wait_until
from tests.pod.podkit import write_config as write
from tests.pod.test_tracing import langfuse, traced_pod  # noqa: F401 - fixture

ADMIN = {"authorization": "Bearer admin-secret"}
WORDS = [
    "리팩터", "race condition", "설계", "architecture", "why", "thanks", "hello", "typo",
    "이 함수", "please", "코드", "fix", "리스트", "sort", "RACE", "Why", "설 계",
]  # fmt: skip


def prompts(count: int, seed: int = 3) -> list[list[dict]]:
    rng = random.Random(seed)
    return [
        [{"role": "user", "content": " ".join(rng.choices(WORDS, k=rng.randint(1, 6)))}]
        for _ in range(count)
    ]


def test_the_pod_decides_and_scores_exactly_as_the_console(start_pod):
    document = scored()
    pod = start_pod(config=document)
    console = build_classifier(document)

    for messages in prompts(60):
        answer = pod.post({"model": "m", "messages": messages})
        decision = console.classify(messages)
        assert answer.headers["x-cascade-tier"] == decision.tier, messages
        assert answer.headers["x-cascade-score"] == f"{decision.score:.6g}"
        assert unquote(answer.headers["x-cascade-reasons"]) == "; ".join(decision.reasons)


def test_config_reports_schema_two_and_the_schemas_the_pod_reads(start_pod, tmp_path):
    pod = start_pod(config=scored())

    body = pod.client.get("/config").json()

    assert body["schema"] == "cascade-classifier/2"
    assert body["schemas"] == list(SCHEMAS)
    empty = start_pod(config_path=tmp_path / "missing.json")
    assert empty.client.get("/config").json()["error"]["schemas"] == list(SCHEMAS)


def test_the_score_histogram_counts_each_scored_decision(start_pod):
    pod = start_pod(config=scored())

    pod.post(chat("race condition 설계"))  # -1.5 + 2.5 + 1.0 = 2.0
    pod.post(chat("hello thanks"))  # -1.5 - 1.0 - 0.75 = -3.25

    metrics = pod.metrics()
    assert metrics[("cascade_pod_classifier_score_count", (("version", "v9"),))] == 2
    le = (("le", "-3.0"), ("version", "v9"))
    assert metrics[("cascade_pod_classifier_score_bucket", le)] == 1
    zero = (("le", "0.0"), ("version", "v9"))
    assert metrics[("cascade_pod_classifier_score_bucket", zero)] == 1


def test_a_file_reload_swaps_keywords_for_a_scorer(start_pod, tmp_path):
    path = tmp_path / "mounted.json"
    write(path, v7())
    pod = start_pod(config_path=path)
    assert "x-cascade-score" not in pod.post(chat("why is this slow?")).headers

    write(path, scored())

    wait_until(lambda: pod.client.get("/config").json()["version"] == "v9")
    answer = pod.post(chat("리팩터 해줘"))  # -1.5 + 1.75
    assert answer.headers["x-cascade-tier"] == "strong"
    assert answer.headers["x-cascade-score"] == "0.25"


def test_a_scored_trace_carries_the_score_and_its_top_features(start_pod, langfuse):  # noqa: F811
    pod = traced_pod(start_pod, langfuse.base_url, "--admin-token", "admin-secret")
    assert pod.client.put("/admin/config", json=scored(), headers=ADMIN).status_code == 200

    pod.post(chat("hello, why 설계 architecture thanks"), headers={"x-request-id": "req-s-1"})

    trace_id = Langfuse.create_trace_id(seed="req-s-1")
    attrs = langfuse.wait_for_spans(lambda s: s.trace_id == trace_id)[0].attributes
    assert json.loads(attrs["langfuse.trace.metadata.classifier_score"]) == -0.75
    top = json.loads(attrs["langfuse.trace.metadata.score_top_features"])
    assert top == ["architecture:+1", "hello:-1", "설계:+1", "thanks:-0.75", "why:+0.5"]


def test_top_features_are_cut_to_fit_langfuses_metadata_limit(start_pod, langfuse):  # noqa: F811
    features = [[f"{i}" + "가" * 60, 0.1 * (i + 1)] for i in range(5)]
    document = scored("v10", scorer={"bias": 0.0, "threshold": 9.0, "features": features})
    pod = traced_pod(start_pod, langfuse.base_url, "--admin-token", "admin-secret")
    assert pod.client.put("/admin/config", json=document, headers=ADMIN).status_code == 200

    pod.post(chat(" ".join(f for f, _ in features)), headers={"x-request-id": "req-s-2"})

    trace_id = Langfuse.create_trace_id(seed="req-s-2")
    attrs = langfuse.wait_for_spans(lambda s: s.trace_id == trace_id)[0].attributes
    raw = attrs["langfuse.trace.metadata.score_top_features"]
    assert len(raw) <= 200
    assert json.loads(raw)[0].startswith("4가")  # the heaviest first, whole


@pytest.fixture(scope="module")
def old_pod_code(tmp_path_factory):
    return old_pod_tree(tmp_path_factory.mktemp("old-pod"))


def test_a_pod_from_before_scorers_refuses_schema_two_and_keeps_serving(
    old_pod_code, backends, tmp_path
):
    weak, strong = backends
    path = tmp_path / "config.json"
    write(path, v7())
    old = Pod(
        pod_args(path, weak.base_url, strong.base_url, "--admin-token", "admin-secret"),
        cwd=old_pod_code,
    )
    try:
        assert "schemas" not in old.client.get("/config").json()

        refused = old.client.put("/admin/config", json=scored(), headers=ADMIN)

        assert refused.status_code == 400
        assert "cascade-classifier/1" in refused.json()["error"]["fields"]["schema"][0]
        assert old.client.get("/config").json()["version"] == "v7"
    finally:
        old.stop()
