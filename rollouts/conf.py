"""Rollout settings, read from the environment when used (strict, ``NAME_FILE`` accepted).

- ``CASCADE_K8S_TARGET``: ``local`` (weights and publications recorded in the database only:
  the embedded default), ``cluster`` (``KUBECONFIG`` + ``CASCADE_K8S_CONTEXT``, else the
  in-cluster service account) or ``host`` (``CASCADE_K8S_HOST``, optional
  ``CASCADE_K8S_TOKEN``). Unset: ``host`` if ``CASCADE_K8S_HOST`` is set, ``cluster`` if
  ``KUBECONFIG`` or ``KUBERNETES_SERVICE_HOST`` is, else ``local``.
- ``CASCADE_K8S_TIMEOUT``: seconds per API call (default 5).
- ``POD_ADMIN_TOKEN``: bearer token for the pods' ``PUT /admin/config``.
- ``PUBLISH_TIMEOUT`` (default 30) / ``PUBLISH_POLL_INTERVAL`` (ms, default 250).
- ``PUBLISH_STALE_SECONDS``: a running publication silent this long lost its worker and is
  taken over (default 60).
- ``PROMETHEUS_URL``: Prometheus (or AMP-compatible) HTTP API base; unset: every gate unknown.
- ``PROMETHEUS_TIMEOUT``: seconds per Prometheus query (1-30, default 3).
- ``ROLLOUT_EVALUATE_INTERVAL``: seconds between gate evaluations by beat (default 30).
- ``ROLLOUT_DAILY_CHECK_HOUR``: UTC hour (0-23, default 6) of the daily misroute check of
  the previous UTC day's labels; late enough for the night's labeling to be in.
- ``NOTIFY_WEBHOOK_URL``: a Slack-compatible incoming webhook; unset: no notifications.
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

from cascade_admin.env import env_int, env_str

TARGETS = ("local", "cluster", "host")


def k8s_target() -> str:
    target = env_str("CASCADE_K8S_TARGET", "")
    if target:
        if target not in TARGETS:
            raise ImproperlyConfigured(
                f"CASCADE_K8S_TARGET={target!r} must be one of {', '.join(TARGETS)}."
            )
        return target
    if env_str("CASCADE_K8S_HOST", ""):
        return "host"
    if os.environ.get("KUBECONFIG") or os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "cluster"
    return "local"


def k8s_host() -> str:
    return env_str("CASCADE_K8S_HOST")


def k8s_token() -> str | None:
    return env_str("CASCADE_K8S_TOKEN", "") or None


def k8s_timeout() -> float:
    return float(env_int("CASCADE_K8S_TIMEOUT", 5, minimum=1))


def pod_admin_token() -> str:
    return env_str("POD_ADMIN_TOKEN", "")


def publish_timeout() -> float:
    return float(env_int("PUBLISH_TIMEOUT", 30, minimum=1))


def publish_stale_seconds() -> int:
    return env_int("PUBLISH_STALE_SECONDS", 60, minimum=1)


def publish_poll_interval() -> float:
    return env_int("PUBLISH_POLL_INTERVAL", 250, minimum=10) / 1000


def prometheus_url() -> str:
    return env_str("PROMETHEUS_URL", "").rstrip("/")


def prometheus_timeout() -> float:
    # Short: each evaluation tick runs two queries per gate, so a hung Prometheus must fail
    # fast rather than overrun the tick; a query that times out leaves its gate unknown.
    return float(env_int("PROMETHEUS_TIMEOUT", 3, minimum=1, maximum=30))


def evaluate_interval() -> int:
    return env_int("ROLLOUT_EVALUATE_INTERVAL", 30, minimum=1)


def daily_check_hour() -> int:
    return env_int("ROLLOUT_DAILY_CHECK_HOUR", 6, minimum=0, maximum=23)


def notify_webhook_url() -> str:
    return env_str("NOTIFY_WEBHOOK_URL", "")
