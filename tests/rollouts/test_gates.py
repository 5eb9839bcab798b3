"""Gates against Debian's real Prometheus: pass, fail, and unknown (never a pass)."""

import pytest

from rollouts.gates import DEFAULT_GATES, REQUESTS, Prometheus, PrometheusError, evaluate, render

from .promkit import PrometheusProcess


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    proc = PrometheusProcess(tmp_path_factory.mktemp("prom"), ["127.0.0.1:9"])
    proc.wait_for("vector(1)")
    with Prometheus(proc.url) as client:
        yield client
    proc.stop()


def gate(query, *, requests="vector(500)", comparator="lt", threshold=0.02, min_requests=100):
    return {
        "query": query,
        "requests_query": requests,
        "window": "5m",
        "comparator": comparator,
        "threshold": threshold,
        "min_requests": min_requests,
    }


@pytest.mark.parametrize(
    ("query", "comparator", "threshold", "result"),
    [
        ("vector(0.01)", "lt", 0.02, "pass"),
        ("vector(0.05)", "lt", 0.02, "fail"),
        ("vector(0.02)", "lt", 0.02, "fail"),
        ("vector(0.02)", "le", 0.02, "pass"),
        ("vector(4)", "ge", 4.0, "pass"),
        ("vector(3.9)", "gt", 4.0, "fail"),
        ("scalar(vector(0.5))", "lt", 1.0, "pass"),
    ],
)
def test_a_value_is_compared_with_the_threshold(prometheus, query, comparator, threshold, result):
    outcome = evaluate(
        prometheus,
        gate(query, comparator=comparator, threshold=threshold),
        version="v8",
        backend="b",
    )

    assert outcome.result == result
    assert outcome.requests == 500


@pytest.mark.parametrize(
    ("query", "requests", "why"),
    [
        ('cascade_pod_requests_total{version="nope"}', "vector(500)", "no data"),
        ("vector(0) / 0", "vector(500)", "no data"),  # NaN: a rate over zero requests
        ("vector(0.5)", "vector(99)", "too few requests (99 < 100)"),
        ("vector(0.5)", 'sum(cascade_pod_requests_total{version="nope"})', "no data < 100"),
    ],
)
def test_no_data_or_too_few_requests_is_unknown_even_for_a_bad_value(
    prometheus, query, requests, why
):
    outcome = evaluate(prometheus, gate(query, requests=requests), version="v8", backend="b")

    assert outcome.result == "unknown"
    assert why in outcome.detail


def test_several_series_are_judged_by_the_worst(prometheus):
    query = (
        'label_replace(vector(0.01), "a", "1", "", "")'
        ' or label_replace(vector(0.5), "a", "2", "", "")'
    )
    assert evaluate(prometheus, gate(query), version="v8", backend="b").result == "fail"


def test_a_broken_query_is_unknown_and_not_retryable(prometheus):
    with pytest.raises(PrometheusError) as caught:
        prometheus.query("sum(")
    assert not caught.value.retryable

    outcome = evaluate(prometheus, gate("sum("), version="v8", backend="b")
    assert outcome.result == "unknown"
    assert "query failed (400)" in outcome.detail


def test_an_unreachable_prometheus_is_unknown_and_retryable():
    with Prometheus("http://127.0.0.1:9", timeout=1) as dead:
        with pytest.raises(PrometheusError) as caught:
            dead.query("vector(1)")
        assert caught.value.retryable
        assert evaluate(dead, gate("vector(0)"), version="v8", backend="b").result == "unknown"


def test_templates_fill_version_backend_and_window_but_keep_promql_braces():
    text = render(REQUESTS, version="v8", backend="llm-classifier-v8", window="5m")
    assert text == 'sum(increase(cascade_pod_requests_total{version="v8"}[5m]))'
    assert render("{backend}", version="v", backend="b", window="w") == "b"


def test_the_default_gates_are_valid_promql(prometheus):
    for spec in DEFAULT_GATES:
        promql = render(spec["query"], version="v8", backend="b", window="5m")
        assert prometheus.query(promql) == []  # valid, and no data yet
