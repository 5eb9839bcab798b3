"""The Langfuse adapter, driven through the real SDK against the stand-in over HTTP."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from labeling.langfuse_adapter import (
    STRONG_NEEDED,
    WEAK_SUFFICIENT,
    LabelScore,
    LangfuseAdapter,
    LangfuseConfigError,
    LangfuseError,
    LangfuseSettings,
    MalformedTrace,
    RetryPolicy,
    label_score_name_from_env,
    parse_messages,
    parse_observation,
    parse_output,
    parse_page,
    parse_retry_after,
    settings_from_env,
)
from labeling.standin import (
    DEFAULT_PUBLIC_KEY,
    DEFAULT_SECRET_KEY,
    FEEDBACK_SCORE_NAME,
    THUMBS_SCORE_NAME,
    Store,
    generate_traffic,
    start_in_thread,
)

END = datetime(2026, 11, 18, 15, 0, tzinfo=UTC)
SINCE = END - timedelta(days=2)
OBSERVATIONS = "/api/public/v2/observations"
SCORES_WRITE = "/api/public/scores"


@pytest.fixture(scope="module")
def traffic():
    return generate_traffic(seed=7, days=2, per_day=160, end=END, malformed_rate=0.05)


@pytest.fixture
def store(traffic):
    store = Store()
    store.load(traffic)
    return store


@pytest.fixture
def server(store):
    url, stop = start_in_thread(store)
    yield url
    stop()


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def make_adapter(server, sleeps):
    made = []

    def make(secret=DEFAULT_SECRET_KEY, timeout=5.0, attempts=4):
        adapter = LangfuseAdapter(
            LangfuseSettings(server, DEFAULT_PUBLIC_KEY, secret, timeout, "v4"),
            retry=RetryPolicy(attempts=attempts, base_delay=0.5, jitter=0.0),
            sleep=sleeps.append,
        )
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        adapter.close()


@pytest.fixture
def adapter(make_adapter):
    return make_adapter()


def roots_between(traffic, since, until, tag=None):
    return {
        o["traceId"]
        for o in traffic.roots
        if since <= datetime.fromisoformat(o["startTime"]) < until
        and (tag is None or tag in o["tags"])
    }


def read_all(adapter, **kwargs):
    return read_window(adapter, SINCE, END, **kwargs)


def read_window(adapter, since, until, **kwargs):
    """(pages, records, skipped) of one window."""
    pairs = list(adapter.iter_trace_records(since, until, **kwargs))
    return (
        [page for page, _ in pairs],
        [r for _, parsed in pairs for r in parsed.records],
        [s for _, parsed in pairs for s in parsed.skipped],
    )


# ---------------------------------------------------------------- reading traces


def test_paging_reads_every_root_observation_once(adapter, traffic):
    pages, records, skipped = read_all(adapter, page_size=37)

    ids = [r.langfuse_id for r in records] + [s.observation_id for s in skipped]
    expected = roots_between(traffic, SINCE, END)
    assert len(pages) > 5
    assert pages[-1].next_cursor is None
    assert all(page.next_cursor for page in pages[:-1])
    assert len(records) == len(expected) - len(skipped)
    assert {r.langfuse_id for r in records} <= expected
    assert len(ids) == len(set(ids))  # no trace twice, no child span


def test_a_stored_cursor_resumes_where_the_crashed_run_stopped(make_adapter, traffic):
    first = make_adapter()
    seen = []
    for index, page in enumerate(first.iter_root_observations(SINCE, END, page_size=50)):
        seen += [o["traceId"] for o in page.observations]
        if index == 1:
            stored_cursor = page.next_cursor
            break
    first.close()  # the "crash"

    resumed = make_adapter()
    for page in resumed.iter_root_observations(SINCE, END, page_size=50, cursor=stored_cursor):
        seen += [o["traceId"] for o in page.observations]

    assert len(seen) == len(set(seen))
    assert set(seen) == roots_between(traffic, SINCE, END)


def test_the_time_window_is_half_open(adapter, traffic):
    starts = sorted(datetime.fromisoformat(o["startTime"]) for o in traffic.roots)
    boundary = starts[len(starts) // 2]

    _, before, skipped_before = read_window(adapter, SINCE, boundary)
    _, after, skipped_after = read_window(adapter, boundary, END)

    assert all(r.start_time < boundary for r in before)
    assert min(r.start_time for r in after) == boundary
    total = len(before) + len(after) + len(skipped_before) + len(skipped_after)
    assert total == len(roots_between(traffic, SINCE, END))


def test_a_tag_filter_keeps_only_traces_with_any_of_the_tags(adapter, traffic):
    _, records, skipped = read_all(adapter, tags=["tier:strong"], page_size=100)

    assert records
    assert {r.tier for r in records} == {"strong"}
    expected = roots_between(traffic, SINCE, END, tag="tier:strong")
    assert len(records) + len(skipped) == len(expected)


def test_records_carry_routing_tags_metrics_and_conversation(adapter, traffic):
    _, records, _ = read_all(adapter, page_size=200)
    by_id = {o["traceId"]: o for o in traffic.roots}

    for record in records:
        raw = by_id[record.langfuse_id]
        assert record.start_time.tzinfo is UTC
        assert record.tier == raw["tags"][0].removeprefix("tier:")
        assert record.classifier_version == "v7"
        assert record.turn_count == len(record.messages)
        assert record.content_length == int(raw["metadata"]["content_length"])
        assert record.matched_keywords == tuple(
            json.loads(raw["metadata"]["strong_keywords_found"])
        )
        assert record.keyword_match == bool(record.matched_keywords)
        assert record.cost_usd == pytest.approx(raw["totalCost"])
        assert record.ttft_s == pytest.approx(raw["timeToFirstToken"])
        assert record.latency_s >= record.ttft_s
        assert record.user_id and record.session_id
        assert record.output
    assert {r.model for r in records} == {"qwen3-4b", "glm-5"}


def test_malformed_traces_are_skipped_and_counted_by_reason(adapter, traffic):
    _, records, skipped = read_all(adapter, page_size=200)

    window = roots_between(traffic, SINCE, END)
    broken = {tid: how for tid, how in traffic.malformed.items() if tid in window}
    assert broken, "the fixture should contain malformed traces"
    reasons = {
        "missing_input": "missing input",
        "unparsable_input": "unparsable input JSON",
        "unknown_shape": "unknown input shape: dict",
    }
    assert Counter(s.reason for s in skipped) == Counter(reasons[h] for h in broken.values())
    assert not {r.langfuse_id for r in records} & set(broken)


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('[{"role": "user", "content": "안녕"}]', [{"role": "user", "content": "안녕"}]),
        (
            '{"model": "x", "messages": [{"role": "system", "content": "s"}, '
            '{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}',
            [
                {"role": "system", "content": "s"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            ],
        ),
        (json.dumps(json.dumps([{"role": "user", "content": "twice"}])), None),  # double-encoded
        ([{"role": "user", "content": "already parsed"}], None),
    ],
)
def test_parse_messages_accepts_openai_shapes(raw, expected):
    messages = parse_messages(raw)
    assert messages == (expected or [dict(messages[0])])
    assert messages[-1]["role"] == "user"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "missing input"),
        ("  ", "missing input"),
        ('[{"role": "user", "content": "cut', "unparsable input JSON"),
        ('{"prompt": "hello"}', "unknown input shape: dict"),
        ('"just a sentence"', "unknown input shape: plain text"),
        ("plain text prompt", "unknown input shape: plain text"),
        ("[]", "empty messages"),
        ('[{"content": "no role"}]', "unknown input shape: messages[0] has no role"),
        ('[{"role": "user", "content": 42}]', "unknown input shape: messages[0].content"),
    ],
)
def test_parse_messages_rejects_what_it_cannot_route(raw, reason):
    with pytest.raises(MalformedTrace) as caught:
        parse_messages(raw)
    assert caught.value.reason.startswith(reason)


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (None, ""),
        ('"plain answer"', "plain answer"),
        ('{"role": "assistant", "content": "from a message"}', "from a message"),
        ('{"choices": [{"message": {"content": "from a completion"}}]}', "from a completion"),
        ("not json at all", "not json at all"),
        ('{"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}', "a b"),
        ('{"choices": ["not a message"]}', '{"choices": ["not a message"]}'),
        ('{"choices": [{"message": "hi"}]}', '{"choices": [{"message": "hi"}]}'),
        ('{"content": [{"type": "text", "text": 5}]}', "5"),
    ],
)
def test_parse_output_finds_the_answer_text(raw, text):
    assert parse_output(raw) == text


def test_parse_observation_converts_times_to_utc_and_falls_back_to_metadata():
    record = parse_observation(
        {
            "id": "obs-1",
            "traceId": "trace-1",
            "startTime": "2026-11-18T09:00:00+09:00",
            "endTime": "2026-11-18T09:00:04+09:00",
            "completionStartTime": "2026-11-18T00:00:01.500Z",
            "input": '[{"role": "user", "content": "hi"}]',
            "output": '"hello"',
            "metadata": {"tier": "weak", "classifier_version": "v6", "turn_count": "1"},
            "costDetails": {"total": 0.25},
        }
    )
    assert record.start_time == datetime(2026, 11, 18, 0, 0, tzinfo=UTC)
    assert record.latency_s == 4.0
    assert record.ttft_s == 1.5
    assert record.cost_usd == 0.25
    assert (record.tier, record.classifier_version, record.turn_count) == ("weak", "v6", 1)
    assert record.tags == ()


GOOD = {
    "id": "obs-3",
    "traceId": "trace-3",
    "startTime": "2026-11-18T00:00:00Z",
    "input": '[{"role": "user", "content": "hi"}]',
}


@pytest.mark.parametrize(
    ("odd", "read_as"),
    [
        ({"costDetails": [0.2], "usageDetails": "many"}, {"cost_usd": None, "usage": {}}),
        (
            {"costDetails": {"total": "NaN"}, "latency": "inf"},
            {"cost_usd": None, "latency_s": None},
        ),
        ({"userId": 42, "sessionId": {"id": "s"}}, {"user_id": None, "session_id": None}),
        ({"name": ["x"], "traceName": 7, "model": 3}, {"name": None, "model": None}),
        ({"traceId": 9}, {"langfuse_id": "obs-3"}),  # an unusable trace id: the observation's
        ({"tags": 5, "metadata": "text"}, {"tags": (), "tier": None, "metadata": {}}),
        ({"metadata": {"classifier_version": {"v": 7}}}, {"classifier_version": None}),
    ],
)
def test_fields_of_the_wrong_type_are_read_as_missing(odd, read_as):
    record = parse_observation({**GOOD, **odd})
    assert {key: getattr(record, key) for key in read_as} == read_as


class Hostile(dict):
    """A shape no parser rule foresaw: reading its input blows up."""

    def get(self, key, default=None):
        if key == "input":
            raise RuntimeError("surprise")
        return super().get(key, default)


def test_a_page_counts_every_unreadable_observation_as_skipped_and_keeps_the_rest():
    page = parse_page([GOOD, {**GOOD, "id": 5}, "not an object", None, Hostile(GOOD)])
    assert [r.observation_id for r in page.records] == ["obs-3"]
    assert [s.reason for s in page.skipped] == [
        "missing id",
        "missing id",
        "missing id",
        "unreadable: RuntimeError",
    ]


def test_parse_observation_rejects_an_unknown_tier():
    with pytest.raises(MalformedTrace, match="unknown tier"):
        parse_observation(
            {
                "id": "obs-2",
                "startTime": "2026-11-18T00:00:00Z",
                "input": '[{"role": "user", "content": "hi"}]',
                "tags": ["tier:medium"],
            }
        )


# ---------------------------------------------------------------- scores


def test_fetch_scores_returns_the_feedback_on_the_given_traces(adapter, traffic):
    trace_ids = sorted({o["traceId"] for o in traffic.roots})  # > 50: several queries
    expected = {s["id"]: s for s in traffic.scores}

    scores = adapter.fetch_scores(trace_ids)

    assert len(scores) == len(expected)
    for score in scores:
        raw = expected[score.id]
        assert score.trace_id == raw["subject"]["id"]
        assert score.value == raw["value"]
        assert score.name in (FEEDBACK_SCORE_NAME, THUMBS_SCORE_NAME)
        assert score.source == "API"
    assert {s.data_type for s in scores} == {"NUMERIC", "BOOLEAN"}


def test_fetch_scores_filters_by_name(adapter, traffic):
    trace_ids = [o["traceId"] for o in traffic.roots]
    scores = adapter.fetch_scores(trace_ids, name=FEEDBACK_SCORE_NAME)
    assert scores
    assert {s.name for s in scores} == {FEEDBACK_SCORE_NAME}
    assert all(1 <= s.value <= 5 for s in scores)


def test_scores_can_be_read_by_time_window(adapter, traffic):
    middle = END - timedelta(days=1)
    expected = {
        s["id"]
        for s in traffic.scores
        if middle <= datetime.fromisoformat(s["timestamp"]) < END and s["name"] == THUMBS_SCORE_NAME
    }

    scores = list(adapter.iter_scores(middle, END, name=[THUMBS_SCORE_NAME]))

    assert expected
    assert {s.id for s in scores} == expected


def without_private_http_client(adapter):
    """The adapter as it would be on an SDK without ``api._client_wrapper``: the public
    resource clients are built first (each keeps its own reference, as a future SDK would
    have them work), then the private attribute goes from this one client object."""
    adapter.api.observations, adapter.api.scores, adapter.api.score_configs  # noqa: B018
    del adapter.api._client_wrapper
    return adapter


def test_reads_fall_back_to_the_public_sdk_methods_without_the_private_client(
    make_adapter, store, traffic, sleeps, caplog
):
    private, public = make_adapter(), without_private_http_client(make_adapter())
    trace_ids = sorted({o["traceId"] for o in traffic.roots})
    middle = END - timedelta(days=1)

    def by_id(scores):
        return sorted(scores, key=lambda s: s.id)

    with caplog.at_level("WARNING", logger="labeling.langfuse_adapter"):
        _, records, skipped = read_all(public, page_size=37)
        scores = by_id(public.fetch_scores(trace_ids))
        window = by_id(public.iter_scores(middle, END))

    _, expected_records, expected_skipped = read_all(private, page_size=37)
    assert records == expected_records and len(records) > 100
    assert [s.reason for s in skipped] == [s.reason for s in expected_skipped]
    assert scores == by_id(private.fetch_scores(trace_ids)) and scores
    assert window == by_id(private.iter_scores(middle, END)) and window
    warnings = [r for r in caplog.records if "public get_many" in r.getMessage()]
    assert len(warnings) == 1  # once per adapter, not per page

    # Errors keep their meaning on the public path: a 429 is waited out as asked.
    store.inject_fault(status=429, count=1, retry_after="3")
    next(public.iter_root_observations(SINCE, END))
    assert sleeps == [3.0]


def test_labels_are_written_as_categorical_annotations_and_read_back(adapter, store, traffic):
    first, second = (o["traceId"] for o in traffic.roots[:2])
    result = adapter.write_label_scores(
        [
            LabelScore(first, WEAK_SUFFICIENT),
            LabelScore(second, STRONG_NEEDED, comment="needs the race explained"),
        ]
    )

    assert (result.status, result.accepted, result.rejected, result.ok) == (202, 2, 0, True)
    scores = {s.trace_id: s for s in adapter.fetch_scores([first, second], name="routing_label")}
    assert scores[first].value == WEAK_SUFFICIENT
    assert scores[second].value == STRONG_NEEDED
    assert scores[second].comment == "needs the race explained"
    assert {s.data_type for s in scores.values()} == {"CATEGORICAL"}
    assert {s.source for s in scores.values()} == {"ANNOTATION"}
    [config] = store.score_configs()
    assert {s.config_id for s in scores.values()} == {config["id"]}
    assert [c["label"] for c in config["categories"]] == [WEAK_SUFFICIENT, STRONG_NEEDED]


def test_writing_a_label_again_updates_the_same_score(adapter, store, traffic):
    trace_id = traffic.roots[0]["traceId"]
    stamp = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)

    adapter.write_label_scores([LabelScore(trace_id, WEAK_SUFFICIENT, timestamp=stamp)])
    adapter.write_label_scores([LabelScore(trace_id, STRONG_NEEDED, timestamp=stamp)])

    [score] = adapter.fetch_scores([trace_id], name="routing_label")
    assert score.value == STRONG_NEEDED
    assert len(store.score_configs()) == 1  # the config is found, not created twice


def test_a_delete_is_taken_at_once_and_carried_out_later_and_a_repeat_is_harmless(
    adapter, store, traffic
):
    trace_id = traffic.roots[0]["traceId"]
    [sent] = adapter.write_label_scores([LabelScore(trace_id, WEAK_SUFFICIENT)]).sent_ids

    assert adapter.delete_score(sent) is True  # 202: queued by Langfuse
    assert [s.id for s in adapter.fetch_scores([trace_id], name="routing_label")] == [sent]
    store.apply_due_deletes(everything=True)
    assert adapter.fetch_scores([trace_id], name="routing_label") == []
    assert adapter.delete_score(sent) is True  # Langfuse takes a delete of any id


def test_a_partial_batch_reports_which_scores_failed_and_is_not_retried(
    adapter, store, traffic, sleeps
):
    config_id = adapter.ensure_label_score_config()
    # Someone edits the config in Langfuse and drops a category.
    store.update_score_config(config_id, categories=[{"label": WEAK_SUFFICIENT, "value": 0}])
    first, second = (o["traceId"] for o in traffic.roots[:2])

    result = adapter.write_label_scores(
        [LabelScore(first, WEAK_SUFFICIENT), LabelScore(second, STRONG_NEEDED)],
        config_id=config_id,
    )

    assert (result.status, result.accepted, result.rejected, result.ok) == (207, 1, 1, False)
    assert result.failed_ids == (result.sent_ids[1],)
    assert "strong_needed" in result.errors[0]
    assert len(store.requests_to(SCORES_WRITE)) == 1
    assert sleeps == []
    [kept] = adapter.fetch_scores([first, second], name="routing_label")
    assert kept.trace_id == first


def test_label_values_are_checked_before_anything_is_sent():
    with pytest.raises(ValueError, match="label value"):
        LabelScore("trace", "maybe")


# ---------------------------------------------------------------- errors and retries


def test_wrong_keys_are_a_permanent_error(make_adapter, store, sleeps):
    adapter = make_adapter(secret="sk-wrong")

    with pytest.raises(LangfuseError) as caught:
        next(adapter.iter_root_observations(SINCE, END))

    assert (caught.value.status, caught.value.retryable) == (401, False)
    assert sleeps == []
    assert len(store.requests_to(OBSERVATIONS)) == 1


@pytest.mark.parametrize("status", [400, 403, 404])
def test_client_errors_are_permanent(adapter, store, sleeps, status):
    store.inject_fault(status=status, count=5)

    with pytest.raises(LangfuseError) as caught:
        adapter.fetch_scores(["t1"])

    assert (caught.value.status, caught.value.retryable) == (status, False)
    assert sleeps == []


def test_429_is_retried_after_the_seconds_the_server_asks_for(adapter, store, sleeps):
    store.inject_fault(status=429, count=2, retry_after="3")

    pages = list(adapter.iter_root_observations(SINCE, END, page_size=1000))

    assert sleeps == [3.0, 3.0]
    assert sum(len(p.observations) for p in pages) > 0
    assert len(store.requests_to(OBSERVATIONS)) == 3  # the SDK did not retry on its own


def test_500_is_retried_with_backoff_then_succeeds(adapter, store, sleeps, traffic):
    store.inject_fault(status=500, count=2)

    scores = adapter.fetch_scores([o["traceId"] for o in traffic.roots[:50]])

    assert sleeps == [0.5, 1.0]
    assert isinstance(scores, list)


def test_retries_are_bounded(adapter, store, sleeps):
    store.inject_fault(status=503, count=10)

    with pytest.raises(LangfuseError) as caught:
        next(adapter.iter_root_observations(SINCE, END))

    assert (caught.value.status, caught.value.retryable) == (503, True)
    assert sleeps == [0.5, 1.0, 2.0]
    assert len(store.requests_to(OBSERVATIONS)) == 4


def test_a_retry_after_longer_than_the_limit_is_raised_not_waited(adapter, store, sleeps):
    store.inject_fault(status=429, count=1, retry_after="3600")

    with pytest.raises(LangfuseError) as caught:
        next(adapter.iter_root_observations(SINCE, END))

    assert caught.value.retryable and caught.value.retry_after == 3600.0
    assert sleeps == []


def test_a_timeout_is_retryable(make_adapter, store, sleeps):
    # A small page and a wide margin on both sides: a loaded machine must not time the
    # retry out too, nor answer the stalled request in time.
    adapter = make_adapter(timeout=1.0)
    store.inject_fault(status=None, delay=3.0, count=1)

    page = next(adapter.iter_root_observations(SINCE, END, page_size=5))

    assert sleeps == [0.5]
    assert page.observations


def test_a_dropped_connection_is_retryable(adapter, store, sleeps):
    store.inject_fault(status=None, drop=True, count=1)

    page = next(adapter.iter_root_observations(SINCE, END))

    assert sleeps == [0.5]
    assert page.observations


def test_an_unreachable_host_is_retryable_and_bounded(sleeps):
    settings = LangfuseSettings("http://127.0.0.1:9", "pk", "sk", timeout=0.5)
    retry = RetryPolicy(attempts=2, jitter=0.0)
    adapter = LangfuseAdapter(settings, retry=retry, sleep=sleeps.append)
    with adapter, pytest.raises(LangfuseError) as caught:
        adapter.check()
    assert caught.value.retryable and caught.value.status is None
    assert len(sleeps) == 1


def test_retry_after_accepts_seconds_and_http_dates():
    now = datetime(2026, 11, 18, 12, 0, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after("7", now=now) == 7.0
    assert parse_retry_after("Wed, 18 Nov 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Wed, 18 Nov 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None


def test_a_retry_after_date_from_the_server_is_honoured(adapter, store, sleeps):
    # A date 2 s ahead: the wait is computed against the clock, so allow for rounding.
    ahead = datetime.now(UTC) + timedelta(seconds=2)
    store.inject_fault(status=429, count=1, retry_after=ahead.strftime("%a, %d %b %Y %H:%M:%S GMT"))

    next(adapter.iter_root_observations(SINCE, END))

    assert len(sleeps) == 1 and 0.0 <= sleeps[0] <= 2.0


# ---------------------------------------------------------------- settings


def test_settings_come_from_the_environment(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("sk-from-file\n")

    settings = settings_from_env(
        {
            "LANGFUSE_BASE_URL": "https://langfuse.example/",
            "LANGFUSE_PUBLIC_KEY": "pk-1",
            "LANGFUSE_SECRET_KEY_FILE": str(secret_file),
            "LANGFUSE_TIMEOUT": "2.5",
        }
    )

    assert settings == LangfuseSettings("https://langfuse.example", "pk-1", "sk-from-file", 2.5)
    assert "sk-from-file" not in repr(settings)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "LANGFUSE_BASE_URL, LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY"),
        (
            {"LANGFUSE_BASE_URL": "langfuse:3000", "LANGFUSE_PUBLIC_KEY": "p"}
            | {"LANGFUSE_SECRET_KEY": "s"},
            "http(s) URL",
        ),
        (
            {"LANGFUSE_BASE_URL": "http://h", "LANGFUSE_PUBLIC_KEY": "p"}
            | {"LANGFUSE_SECRET_KEY": "s", "LANGFUSE_TIMEOUT": "soon"},
            "LANGFUSE_TIMEOUT",
        ),
        (
            {"LANGFUSE_BASE_URL": "http://h", "LANGFUSE_PUBLIC_KEY": "p"}
            | {"LANGFUSE_SECRET_KEY": "s", "LANGFUSE_SECRET_KEY_FILE": "/x"},
            "not both",
        ),
    ],
)
def test_bad_settings_fail_loudly(environ, message):
    with pytest.raises(LangfuseConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        settings_from_env(environ)


def test_the_deprecated_host_variable_still_works():
    settings = settings_from_env(
        {"LANGFUSE_HOST": "http://h:3000", "LANGFUSE_PUBLIC_KEY": "p", "LANGFUSE_SECRET_KEY": "s"}
    )
    assert settings.host == "http://h:3000"


def test_the_label_score_name_comes_from_the_environment(tmp_path):
    assert label_score_name_from_env({}) == "routing_label"
    assert label_score_name_from_env({"LANGFUSE_LABEL_SCORE_NAME": "review (v2)"}) == "review (v2)"
    name_file = tmp_path / "name"
    name_file.write_text("team_label\n")
    assert label_score_name_from_env({"LANGFUSE_LABEL_SCORE_NAME_FILE": str(name_file)}) == (
        "team_label"
    )
    with pytest.raises(LangfuseConfigError, match="LANGFUSE_LABEL_SCORE_NAME"):
        label_score_name_from_env({"LANGFUSE_LABEL_SCORE_NAME": "label/with/slashes"})
    environ = {
        "LANGFUSE_BASE_URL": "http://h",
        "LANGFUSE_PUBLIC_KEY": "p",
        "LANGFUSE_SECRET_KEY": "s",
        "LANGFUSE_LABEL_SCORE_NAME": "team_label",
    }
    with LangfuseAdapter.from_env(environ) as adapter:
        assert adapter.label_score_name == "team_label"
    with LangfuseAdapter.from_env(environ, label_score_name="explicit") as adapter:
        assert adapter.label_score_name == "explicit"
