"""Rollout settings. The settings module reads and checks them at start-up (so gunicorn, the
worker and manage.py all stop naming a malformed variable); these functions give them the
units the code uses, and decide the Kubernetes target when none is named."""

from __future__ import annotations

import os

from django.conf import settings


def k8s_target() -> str:
    """``CASCADE_K8S_TARGET``, or: ``host`` if ``CASCADE_K8S_HOST`` is set, ``cluster`` if
    ``KUBECONFIG`` or ``KUBERNETES_SERVICE_HOST`` is (the client reads those), else ``local``."""
    if settings.CASCADE_K8S_TARGET:
        return settings.CASCADE_K8S_TARGET
    if settings.CASCADE_K8S_HOST:
        return "host"
    if os.environ.get("KUBECONFIG") or os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "cluster"
    return "local"


def k8s_host() -> str:
    return settings.CASCADE_K8S_HOST


def k8s_token() -> str | None:
    return settings.CASCADE_K8S_TOKEN or None


def k8s_timeout() -> float:
    return float(settings.CASCADE_K8S_TIMEOUT)


def pod_admin_token() -> str:
    return settings.POD_ADMIN_TOKEN


def publish_timeout() -> float:
    return float(settings.PUBLISH_TIMEOUT)


def publish_stale_seconds() -> int:
    return settings.PUBLISH_STALE_SECONDS


def publish_poll_interval() -> float:
    return settings.PUBLISH_POLL_INTERVAL / 1000


def prometheus_url() -> str:
    return settings.PROMETHEUS_URL.rstrip("/")


def prometheus_timeout() -> float:
    return float(settings.PROMETHEUS_TIMEOUT)


def evaluate_interval() -> int:
    return settings.ROLLOUT_EVALUATE_INTERVAL


def daily_check_hour() -> int:
    return settings.ROLLOUT_DAILY_CHECK_HOUR


def notify_webhook_url() -> str:
    return settings.NOTIFY_WEBHOOK_URL
