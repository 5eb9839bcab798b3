"""Both Langfuse API generations: detection, the connection check, v3's one-score writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from labeling.langfuse_adapter import (
    WEAK_SUFFICIENT,
    LabelScore,
    LangfuseAdapter,
    LangfuseConfigError,
    LangfuseError,
    LangfuseSettings,
    RetryPolicy,
    settings_from_env,
)
from labeling.standin import (
    DEFAULT_PUBLIC_KEY,
    DEFAULT_SECRET_KEY,
    Store,
    generate_traffic,
    start_in_thread,
)

END = datetime(2026, 11, 18, tzinfo=UTC)


@pytest.fixture(scope="module")
def traffic():
    return generate_traffic(seed=3, days=1, per_day=80, end=END, malformed_rate=0)


def serve(generation: str, traffic):
    store = Store(api_generation=generation)
    store.load(traffic)
    url, stop = start_in_thread(store)
    return store, url, stop


@pytest.fixture(params=["v4", "v3"])
def standin(request, traffic):
    store, url, stop = serve(request.param, traffic)
    yield request.param, store, url
    stop()


def adapter_for(url, *, generation=None, sleeps=None):
    settings = LangfuseSettings(url, DEFAULT_PUBLIC_KEY, DEFAULT_SECRET_KEY, 5.0, generation)
    retry = RetryPolicy(attempts=3, jitter=0.0)
    return LangfuseAdapter(
        settings, retry=retry, sleep=(sleeps if sleeps is not None else []).append
    )


def test_the_generation_and_version_are_detected_and_the_keys_checked(standin):
    generation, store, url = standin

    with adapter_for(url) as adapter:
        info = adapter.check()

    assert (info.generation, info.detected) == (generation, True)
    assert info.version.startswith("4." if generation == "v4" else "3.180")
    assert f"API {generation} (detected)" in info.describe()
    paths = [p for _, p, _ in store.request_log]
    read = "/api/public/traces" if generation == "v3" else "/api/public/v2/observations"
    assert paths == ["/api/public/health", read]  # one health, one authenticated read


def test_without_a_version_a_404_on_the_v2_read_means_v3(traffic):
    store, url, stop = serve("v3", traffic)
    store.inject_fault(status=404, path="/api/public/health", body={"message": "no route"})
    try:
        with adapter_for(url) as adapter:
            assert adapter.server_info().generation == "v3"
    finally:
        stop()


def test_a_v3_older_than_3_180_is_refused_with_a_clear_message(traffic):
    store, url, stop = serve("v3", traffic)
    old = {"status": "OK", "version": "3.150.2"}
    try:
        for generation in (None, "v3"):
            store.inject_fault(status=200, path="/api/public/health", body=old)
            with (
                adapter_for(url, generation=generation) as adapter,
                pytest.raises(LangfuseError) as caught,
            ):
                adapter.check()
            assert not caught.value.retryable
            assert "Langfuse 3.150.2 is not supported" in str(caught.value)
            assert "3.180.0" in str(caught.value)
    finally:
        stop()


def test_the_generation_can_be_set_and_a_bad_value_is_refused(standin):
    generation, _, url = standin
    environ = {
        "LANGFUSE_BASE_URL": url,
        "LANGFUSE_PUBLIC_KEY": DEFAULT_PUBLIC_KEY,
        "LANGFUSE_SECRET_KEY": DEFAULT_SECRET_KEY,
    }

    settings = settings_from_env({**environ, "LANGFUSE_API_GENERATION": generation.upper()})
    with LangfuseAdapter(settings) as adapter:
        info = adapter.check()
    assert (info.generation, info.detected) == (generation, False)
    with pytest.raises(LangfuseConfigError, match="LANGFUSE_API_GENERATION must be v3 or v4"):
        settings_from_env({**environ, "LANGFUSE_API_GENERATION": "v2"})


def test_v3_takes_one_score_per_write_and_reports_the_refused_one(traffic):
    store, url, stop = serve("v3", traffic)
    trace_ids = [r["traceId"] for r in traffic.roots[:6]]
    labels = [LabelScore(t, WEAK_SUFFICIENT, comment=f"c{i}") for i, t in enumerate(trace_ids)]
    try:
        with adapter_for(url) as adapter:
            result = adapter.write_label_scores(labels)
            assert result.ok and result.accepted == 6
            posts = [q for m, p, q in store.request_log if (m, p) == ("POST", "/api/public/scores")]
            assert len(posts) == 6  # one request per score: v3 answers a list with 400
            stored = {s["id"]: s for s in store.scores() if s["name"] == "routing_label"}
            assert set(result.sent_ids) == set(stored)
            # A score v3 refuses (an unknown trace is fine there; a bad value is not).
            bad = LabelScore(trace_ids[0], WEAK_SUFFICIENT, score_id="bad-id")
            store.update_score_config(
                next(iter(c["id"] for c in store.score_configs())), categories=[]
            )
            refused = adapter.write_label_scores([bad, labels[1]])
        assert not refused.ok and refused.rejected == 2
        assert "bad-id" in refused.failed_ids
        assert "Invalid request data" in refused.errors[0]
    finally:
        stop()


def test_v3_writes_wait_out_a_429_and_retry(traffic):
    store, url, stop = serve("v3", traffic)
    sleeps: list[float] = []
    store.inject_fault(status=429, retry_after="2", path="/api/public/scores", method="POST")
    try:
        with adapter_for(url, sleeps=sleeps) as adapter:
            result = adapter.write_label_scores(
                [LabelScore(traffic.roots[0]["traceId"], WEAK_SUFFICIENT)]
            )
        assert result.ok and sleeps == [2.0]
    finally:
        stop()


@pytest.fixture(scope="module")
def busy_traffic():
    """Over 100 traces an hour: v3's one-page windows must split."""
    return generate_traffic(seed=4, days=1, per_day=3000, end=END, malformed_rate=0)


SINCE = END - timedelta(days=2)
COMPARED = (
    "observation_id", "start_time", "name", "user_id", "session_id", "messages", "output",
    "tags", "tier", "classifier_version", "keyword_match", "matched_keywords",
    "content_length", "turn_count", "cost_usd", "model", "environment", "usage",
)  # fmt: skip


def read_all(url, cursor=None, pages=None):
    records, cursors = {}, []
    with adapter_for(url) as adapter:
        iterator = adapter.iter_trace_records(SINCE, END, cursor=cursor)
        for number, (page, parsed) in enumerate(iterator, 1):
            for record in parsed.records:
                assert record.langfuse_id not in records, "read twice"
                records[record.langfuse_id] = record
            cursors.append(page.next_cursor)
            if pages is not None and number == pages:
                break
    return records, cursors


def test_v3_reads_the_same_routed_requests_as_v4(busy_traffic):
    results = {}
    for generation in ("v4", "v3"):
        store, url, stop = serve(generation, busy_traffic)
        try:
            results[generation], _ = read_all(url)
        finally:
            stop()
        if generation == "v3":
            windows = store.requests_to("/api/public/traces")
            assert any(int(q["limit"][0]) == 100 for q in windows)

    v3, v4 = results["v3"], results["v4"]
    assert len(v4) > 2500 and v3.keys() == v4.keys()
    for trace_id, record in v4.items():
        other = v3[trace_id]
        for name in COMPARED:
            assert getattr(other, name) == getattr(record, name), (trace_id, name)
        assert other.ttft_s == pytest.approx(record.ttft_s, abs=1e-3)
        assert other.latency_s == pytest.approx(record.latency_s, abs=1e-3)


def test_a_v3_read_resumes_from_its_cursor_without_gaps_or_repeats(busy_traffic):
    store, url, stop = serve("v3", busy_traffic)
    try:
        everything, _ = read_all(url)
        first, cursors = read_all(url, pages=5)
        rest, _ = read_all(url, cursor=cursors[-1])
    finally:
        stop()
    assert cursors[-1].startswith("v3:")
    assert not first.keys() & rest.keys()
    assert first.keys() | rest.keys() == everything.keys()


def test_a_v3_read_that_times_out_narrows_its_windows_then_says_so(busy_traffic):
    store, url, stop = serve("v3", busy_traffic)
    try:
        everything, _ = read_all(url)
        store.timeout_above = 30  # Langfuse's analytics store gives up above 30 rows
        narrowed, _ = read_all(url)
        assert narrowed.keys() == everything.keys()
        widths = [
            datetime.fromisoformat(q["toTimestamp"][0])
            - datetime.fromisoformat(q["fromTimestamp"][0])
            for _, path, q in store.request_log
            if path == "/api/public/traces"
        ]
        assert min(widths) < timedelta(minutes=20)  # windows were halved to fit
        store.timeout_above = 0  # even a one-second window times out
        with pytest.raises(LangfuseError) as caught:
            read_all(url)
    finally:
        stop()
    assert caught.value.status == 422 and caught.value.retryable
    assert "smallest the console asks for" in str(caught.value)


@pytest.mark.django_db
def test_test_connection_shows_the_generation_and_version_to_operators(
    client, operator, reviewer, standin, monkeypatch
):
    generation, _, url = standin
    monkeypatch.setenv("LANGFUSE_BASE_URL", url)
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", DEFAULT_PUBLIC_KEY)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", DEFAULT_SECRET_KEY)
    client.force_login(operator)
    assert "Test connection" in client.get("/labeling/").content.decode()

    page = client.post("/labeling/langfuse/check/", follow=True).content.decode()

    assert f"API {generation} (detected)" in page and "the keys are accepted" in page
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "wrong")
    page = client.post("/labeling/langfuse/check/", follow=True).content.decode()
    assert "401" in page
    client.force_login(reviewer)
    assert client.post("/labeling/langfuse/check/").status_code == 403


def test_a_v4_page_that_times_out_is_asked_again_smaller_then_said_so(busy_traffic):
    store, url, stop = serve("v4", busy_traffic)
    try:
        store.timeout_above = 200
        with adapter_for(url, generation="v4") as adapter:
            records = [r for _, p in adapter.iter_trace_records(SINCE, END, page_size=1000)
                       for r in p.records]  # fmt: skip
        limits = [int(q["limit"][0]) for q in store.requests_to("/api/public/v2/observations")]
        store.timeout_above = 10
        with adapter_for(url, generation="v4") as adapter, pytest.raises(LangfuseError) as caught:
            list(adapter.iter_trace_records(SINCE, END, page_size=1000))
    finally:
        stop()
    assert limits[:3] == [1000, 500, 250] and set(limits[3:]) == {125}
    assert len(records) > 2500
    assert caught.value.status == 422 and "a page of 50," in str(caught.value)


def test_the_model_is_read_from_provided_model_name_or_model():
    from labeling.langfuse_adapter import parse_observation

    base = {
        "id": "o1", "traceId": "t1", "startTime": "2026-12-01T10:00:00Z",
        "input": '[{"role": "user", "content": "hi"}]', "tags": ["tier:weak"],
    }  # fmt: skip

    assert parse_observation({**base, "providedModelName": "glm-5"}).model == "glm-5"
    assert parse_observation({**base, "model": "qwen3-4b"}).model == "qwen3-4b"
