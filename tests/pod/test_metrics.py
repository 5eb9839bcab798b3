"""Metrics: exact counter values from the pod, and Prometheus itself scraping them."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import httpx
import pytest

from tests.pod.podkit import chat

STRONG_TEXT = "security review"


def test_requests_are_counted_by_tier_backend_status_and_version(start_pod, weak, strong):
    pod = start_pod()
    pod.post(chat("hi"))
    pod.post(chat("hi", stream=True))
    pod.post(chat(STRONG_TEXT))
    strong.behave(status=500, times=1)
    pod.post(chat(STRONG_TEXT))  # falls back to weak
    pod.client.post(
        "/v1/chat/completions", content=b"{", headers={"content-type": "application/json"}
    )

    m = pod.metric
    assert (
        m(
            "cascade_pod_requests_total",
            tier="weak",
            backend="weak",
            status_class="2xx",
            version="v7",
        )
        == 2
    )
    assert (
        m(
            "cascade_pod_requests_total",
            tier="strong",
            backend="strong",
            status_class="2xx",
            version="v7",
        )
        == 1
    )
    assert (
        m(
            "cascade_pod_requests_total",
            tier="strong",
            backend="weak",
            status_class="2xx",
            version="v7",
        )
        == 1
    )
    assert (
        m(
            "cascade_pod_requests_total",
            tier="none",
            backend="none",
            status_class="4xx",
            version="v7",
        )
        == 1
    )
    assert m("cascade_pod_fallbacks_total", reason="status_5xx", version="v7") == 1
    assert m("cascade_pod_upstream_failures_total", backend="strong", reason="status_5xx") == 1
    assert m("cascade_pod_request_duration_seconds_count", tier="weak") == 2
    assert m("cascade_pod_time_to_first_token_seconds_count", tier="strong") == 2


def test_time_to_first_token_is_measured_to_the_first_chunk(start_pod, weak):
    pod = start_pod()
    # First chunk at 0.3 s, the second at 1.1 s: a TTFT below 1 s was taken at the first.
    # (Weak is the only backend, so no first-byte deadline applies to it.)
    weak.behave(first_byte_delay=0.3, chunks=2, chunk_delay=0.8)

    pod.post(chat("hi", stream=True))

    ttft = pod.metric("cascade_pod_time_to_first_token_seconds_sum", tier="weak")
    duration = pod.metric("cascade_pod_request_duration_seconds_sum", tier="weak")
    assert 0.3 <= ttft < 1.0
    assert duration >= 1.1
    # Falls in the 1 s bucket, not the 0.25 s one.
    assert pod.metric("cascade_pod_time_to_first_token_seconds_bucket", tier="weak", le="0.25") == 0
    assert pod.metric("cascade_pod_time_to_first_token_seconds_bucket", tier="weak", le="1.0") == 1


def test_both_down_and_disconnects_are_counted(start_pod, weak, strong):
    pod = start_pod()
    strong.behave(status=500)
    weak.behave(status=503)
    pod.post(chat(STRONG_TEXT))
    weak.behave(chunks=40, chunk_delay=0.05)
    with (
        httpx.Client(base_url=pod.url) as client,
        client.stream("POST", "/v1/chat/completions", json=chat("hi", stream=True)) as response,
    ):
        next(response.iter_lines())

    assert (
        pod.metric("cascade_pod_requests_total", tier="strong", backend="none", status_class="5xx")
        == 1
    )
    assert (
        pod.metric("cascade_pod_upstream_failures_total", backend="weak", reason="status_5xx") == 1
    )
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and not pod.metric("cascade_pod_client_disconnects_total"):
        time.sleep(0.02)
    assert pod.metric("cascade_pod_client_disconnects_total", tier="weak", version="v7") == 1


PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
# bin/test installs it; under CI a missing binary is a failure, not a skip.
HAVE_PROMETHEUS = os.path.exists(PROMETHEUS) or os.environ.get("CI") == "true"


@pytest.fixture
def prometheus(tmp_path):
    """Start Prometheus scraping the given targets every 0.5 s; returns its base URL."""
    procs = []

    def start(*targets: str) -> str:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 500ms\n  scrape_timeout: 400ms\n"
            "scrape_configs:\n  - job_name: pod\n    static_configs:\n"
            f"      - targets: [{', '.join(repr(t) for t in targets)}]\n"
        )
        procs.append(
            subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=error",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.skipif(
    not HAVE_PROMETHEUS, reason="needs apt-get install --no-install-recommends prometheus"
)
def test_prometheus_scrapes_the_request_counters(start_pod, prometheus, weak, strong):
    pod = start_pod()
    for text in ("hi", "hello", STRONG_TEXT):
        pod.post(chat(text))
    url = prometheus(pod.url.removeprefix("http://"))
    query = 'sum by (tier) (cascade_pod_requests_total{version="v7", status_class="2xx"})'

    result = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=2)
            result = answer.json()["data"]["result"] if answer.status_code == 200 else []
        except httpx.HTTPError:
            result = []  # not listening yet
        if result:  # an empty result is "no data yet", never a zero
            break
        time.sleep(0.2)

    by_tier = {r["metric"]["tier"]: float(r["value"][1]) for r in result}
    assert by_tier == {"weak": 2.0, "strong": 1.0}
