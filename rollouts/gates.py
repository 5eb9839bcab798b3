"""Gates on Prometheus: PromQL templates for the canary, evaluated through the HTTP API.

No data, a NaN, or fewer requests than the gate's minimum is *unknown*: it holds a stage and
never passes it. ``DEFAULT_GATES`` are the spec's promotion and rollback conditions written on
the classifier pod's own metrics (``routing/pod/README.md``), with the canary's config version
as the parameter.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from . import conf

PLACEHOLDER = re.compile(r"\{(version|backend|window)\}")
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")

REQUESTS = 'sum(increase(cascade_pod_requests_total{version="{version}"}[{window}]))'

#: The spec's gates: promote while 5xx < 2% (and P99 < 15 s to leave the last step); roll
#: back when 5xx > 2% or P99 > 15 s holds for 5 minutes; weak-tier TTFT P95 < 3 s (the SLO).
DEFAULT_GATES: list[dict[str, Any]] = [
    {
        "name": "error-rate",
        # "or vector(0)": no 5xx series at all is a 0 rate, but no traffic stays no data.
        "query": (
            '(sum(rate(cascade_pod_requests_total{version="{version}",status_class="5xx"}'
            "[{window}])) or vector(0))"
            ' / sum(rate(cascade_pod_requests_total{version="{version}"}[{window}]))'
        ),
        "comparator": "lt",
        "threshold": 0.02,
        "rollback_after_seconds": 300,
    },
    {
        "name": "p99-latency",
        "query": (
            "histogram_quantile(0.99, sum by (le) (rate("
            'cascade_pod_request_duration_seconds_bucket{version="{version}"}[{window}])))'
        ),
        "comparator": "lt",
        "threshold": 15.0,
        "rollback_after_seconds": 300,
        "last_stage_only": True,
    },
    {
        "name": "weak-ttft-p95",
        "query": (
            "histogram_quantile(0.95, sum by (le) (rate("
            "cascade_pod_time_to_first_token_seconds_bucket"
            '{version="{version}",backend="weak"}[{window}])))'
        ),
        "comparator": "lt",
        "threshold": 3.0,
    },
]

_COMPARE = {"lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge}


_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def window_seconds(window: str) -> float:
    """A PromQL duration ("5m", "1h30m") in seconds (0 for one that does not parse)."""
    if not DURATION.match(window or ""):
        return 0.0
    return sum(
        int(n) * _UNIT_SECONDS[unit] for n, unit in re.findall(r"([0-9]+)(ms|s|m|h|d|w|y)", window)
    )


def render(template: str, *, version: str, backend: str, window: str) -> str:
    """Fill ``{version}``, ``{backend}`` and ``{window}``; PromQL's own braces are left alone."""
    values = {"version": version, "backend": backend, "window": window}
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


class PrometheusError(Exception):
    """A query failed. ``retryable``: the server was unreachable or answered 5xx/503."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Prometheus:
    """The Prometheus HTTP API (``/api/v1/query``) through httpx.

    ``timeout`` (seconds per query) defaults to ``conf.prometheus_timeout()``.
    """

    def __init__(self, base_url: str, *, timeout: float | None = None) -> None:
        if timeout is None:
            timeout = conf.prometheus_timeout()
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, trust_env=False)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, promql: str) -> list[float]:
        """The values of an instant query's series (scalars as one value); [] is no data."""
        try:
            response = self._http.post("/api/v1/query", data={"query": promql})
        except httpx.HTTPError as exc:
            raise PrometheusError(f"Prometheus unreachable: {exc}", retryable=True) from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or body.get("status") != "success":
            retryable = response.status_code >= 500 or response.status_code == 429
            detail = body.get("error") or response.text[:200]
            raise PrometheusError(
                f"query failed ({response.status_code}): {detail}", retryable=retryable
            )
        data = body.get("data") or {}
        # Its shape follows resultType: [time, "value"] for a scalar, series for a vector.
        result: Any = data.get("result")
        if data.get("resultType") == "scalar":
            return [float(result[1])]
        if data.get("resultType") != "vector":
            raise PrometheusError(
                f"expected an instant vector, got {data.get('resultType')}", retryable=False
            )
        return [float(series["value"][1]) for series in result]


@dataclass(frozen=True)
class Outcome:
    result: str  # pass | fail | unknown
    value: float | None
    requests: float | None
    detail: str


def _one(values: list[float], comparator: str) -> float | None:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return None
    # Several series: judge the worst of them.
    return max(values) if comparator in ("lt", "le") else min(values)


def evaluate(
    prometheus: Prometheus, gate: Mapping[str, Any] | Any, *, version: str, backend: str
) -> Outcome:
    """Evaluate one gate (a ``Gate`` or a dict with its fields) for the canary."""

    def field(name: str) -> Any:
        return gate[name] if isinstance(gate, Mapping) else getattr(gate, name)

    window = field("window")
    comparator = field("comparator")
    try:
        requests = _one(
            prometheus.query(
                render(field("requests_query"), version=version, backend=backend, window=window)
            ),
            "ge",
        )
        if requests is None or requests < field("min_requests"):
            seen = "no data" if requests is None else f"{requests:.0f}"
            return Outcome(
                "unknown",
                None,
                requests,
                f"too few requests ({seen} < {field('min_requests')}) in {window}",
            )
        value = _one(
            prometheus.query(
                render(field("query"), version=version, backend=backend, window=window)
            ),
            comparator,
        )
    except PrometheusError as exc:
        return Outcome("unknown", None, None, str(exc))
    if value is None:
        return Outcome("unknown", None, requests, f"no data in {window}")
    ok = _COMPARE[comparator](value, field("threshold"))
    return Outcome("pass" if ok else "fail", value, requests, "")
