"""Prometheus metrics of the pod (names and labels are documented in README.md).

Each app gets its own registry, so several pods can live in one process (tests, bench)
without clashing over the global one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from routing.engine import ConfigError

    from .config_store import Loaded

# The *_created series double the scrape size and nothing here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # unannotated in prometheus_client

# Bucket edges include the SLO lines (TTFT 3 s weak / 10 s strong, P99 15 s gate).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 15, 30, 60, 120, 300)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 30, 60)
SCORE_BUCKETS = (-8, -6, -4, -3, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 3, 4, 6, 8)

NONE = "none"  # label value when a request never got a tier, backend or version


def status_class(status: int) -> str:
    return f"{status // 100}xx"


class PodMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "cascade_pod_requests",
            "Requests answered, by classified tier, serving backend, "
            "status class of the answer and config version.",
            ["tier", "backend", "status_class", "version"],
            registry=r,
        )
        self.duration = Histogram(
            "cascade_pod_request_duration_seconds",
            "From request received to last byte sent.",
            ["tier", "backend", "version"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "cascade_pod_time_to_first_token_seconds",
            "From request received to the first "
            "response byte sent to the client (the first SSE chunk when streaming).",
            ["tier", "backend", "version"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.score = Histogram(
            "cascade_pod_classifier_score",
            "Scores of a scorer version's decisions (log-odds of strong; the version's "
            "threshold is the cut).",
            ["version"],
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.fallbacks = Counter(
            "cascade_pod_fallbacks",
            "Requests classified strong that the weak backend served "
            "because the strong one failed before its first byte.",
            ["reason", "version"],
            registry=r,
        )
        self.upstream_failures = Counter(
            "cascade_pod_upstream_failures",
            "Backend attempts that failed before the first byte.",
            ["backend", "reason"],
            registry=r,
        )
        self.rate_limited = Counter(
            "cascade_pod_rate_limited",
            "Requests answered 429 because the last backend tried was rate limited (its "
            "Retry-After passed on); status_class 4xx, so no error for the error-rate gate.",
            ["backend", "version"],
            registry=r,
        )
        self.stream_errors = Counter(
            "cascade_pod_stream_errors",
            "Backend failures after the first byte reached the "
            "client (the answer is cut; no fallback is possible).",
            ["backend", "version"],
            registry=r,
        )
        self.client_disconnects = Counter(
            "cascade_pod_client_disconnects",
            "Clients that went away before the answer ended; the backend request was cancelled.",
            ["tier", "version"],
            registry=r,
        )
        self.config_reloads = Counter(
            "cascade_pod_config_reloads",
            "Configs accepted, by source (file or admin).",
            ["source"],
            registry=r,
        )
        self.config_rejects = Counter(
            "cascade_pod_config_rejects",
            "Configs rejected, by source (file or admin).",
            ["source"],
            registry=r,
        )
        self.config_info = Gauge(
            "cascade_pod_config_info",
            "1 for the config being served.",
            ["version", "sha256"],
            registry=r,
        )
        self.config_loaded_at = Gauge(
            "cascade_pod_config_loaded_timestamp_seconds",
            "When the config being served was accepted (Unix time).",
            registry=r,
        )

    def config_changed(self, source: str, loaded: Loaded | None, error: ConfigError | None) -> None:
        """ConfigStore listener: count the outcome and point the info gauge at the new one."""
        if error is not None or loaded is None:  # the store passes one or the other
            self.config_rejects.labels(source).inc()
            return
        self.config_reloads.labels(source).inc()
        self.config_info.clear()
        self.config_info.labels(loaded.version, loaded.sha256).set(1)
        self.config_loaded_at.set(loaded.loaded_at.timestamp())

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
