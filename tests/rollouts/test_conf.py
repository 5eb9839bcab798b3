"""Rollout settings: read and checked when the settings module loads (so the web process,
the worker and manage.py all stop at start naming a bad one); the Prometheus timeout."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from rollouts import conf, services
from rollouts.gates import Prometheus, PrometheusError

from .test_services import published

ROOT = Path(__file__).resolve().parents[2]


def loaded(name: str, **env: str) -> subprocess.CompletedProcess:
    """Load the settings in a fresh process with ``env`` added; print setting ``name``."""
    code = (
        "import django; django.setup(); from django.conf import settings;"
        f"print(repr(settings.{name}))"
    )
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("PROMETHEUS_", "CASCADE_K8S"))
    }
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "cascade_admin.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def silent_prometheus():
    """A port that takes connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_the_prometheus_timeout_defaults_to_three_seconds():
    assert loaded("PROMETHEUS_TIMEOUT").stdout.strip() == "3"


def test_the_prometheus_timeout_is_read_from_the_environment_or_a_file(tmp_path):
    assert loaded("PROMETHEUS_TIMEOUT", PROMETHEUS_TIMEOUT="7").stdout.strip() == "7"
    (tmp_path / "timeout").write_text("12\n")
    from_file = loaded("PROMETHEUS_TIMEOUT", PROMETHEUS_TIMEOUT_FILE=str(tmp_path / "timeout"))
    assert from_file.stdout.strip() == "12"


@pytest.mark.parametrize("value", ["abc", "2.5", "3s", "0", "-1", "31"])
def test_a_malformed_or_out_of_range_prometheus_timeout_stops_start_up(value):
    out = loaded("PROMETHEUS_TIMEOUT", PROMETHEUS_TIMEOUT=value)
    assert out.returncode != 0
    assert "ImproperlyConfigured" in out.stderr and "PROMETHEUS_TIMEOUT" in out.stderr


@pytest.mark.parametrize(
    "env, says",
    [
        ({"CASCADE_K8S_TARGET": "cloud"}, "CASCADE_K8S_TARGET='cloud' must be one of"),
        ({"CASCADE_K8S_TARGET": "host"}, "needs CASCADE_K8S_HOST"),
        ({"ROLLOUT_DAILY_CHECK_HOUR": "24"}, "ROLLOUT_DAILY_CHECK_HOUR=24 must be at most 23"),
        ({"PUBLISH_POLL_INTERVAL": "5"}, "PUBLISH_POLL_INTERVAL=5 must be at least 10"),
    ],
)
def test_a_bad_rollout_setting_stops_start_up_naming_it(env, says):
    out = loaded("CASCADE_K8S_TARGET", **env)
    assert out.returncode != 0
    assert says in out.stderr


def test_the_k8s_target_follows_what_is_set(settings, monkeypatch):
    settings.CASCADE_K8S_TARGET = ""
    settings.CASCADE_K8S_HOST = ""
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert conf.k8s_target() == "local"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert conf.k8s_target() == "cluster"
    settings.CASCADE_K8S_HOST = "https://k8s.example:6443"
    assert conf.k8s_target() == "host"
    settings.CASCADE_K8S_TARGET = "local"
    assert conf.k8s_target() == "local"


def test_the_client_defaults_to_the_configured_timeout(settings):
    settings.PROMETHEUS_TIMEOUT = 4
    with Prometheus("http://127.0.0.1:9") as configured:
        assert configured._http.timeout == httpx.Timeout(4.0)
    with Prometheus("http://127.0.0.1:9", timeout=1.5) as explicit:
        assert explicit._http.timeout == httpx.Timeout(1.5)


def test_a_silent_prometheus_gives_up_after_the_configured_timeout(settings, silent_prometheus):
    settings.PROMETHEUS_TIMEOUT = 1
    started = time.monotonic()
    with Prometheus(silent_prometheus) as prometheus, pytest.raises(PrometheusError) as caught:
        prometheus.query("vector(1)")
    assert time.monotonic() - started < 3.5  # the old default alone was 5 s
    assert caught.value.retryable


@pytest.mark.django_db
def test_an_evaluation_against_a_silent_prometheus_is_unknown_within_the_timeout(
    settings, silent_prometheus, local_target, route, v8, operator
):
    published(v8, route.canary_slot)
    rollout = services.rollout_start(actor=operator, route=route, version=v8)
    settings.PROMETHEUS_URL = silent_prometheus
    settings.PROMETHEUS_TIMEOUT = 1

    started = time.monotonic()
    services.rollout_evaluate(rollout_id=rollout.pk)
    elapsed = time.monotonic() - started

    # One query per gate (the request count) times out; the gates hold as unknown.
    assert elapsed < 2 * rollout.gates.count() + 1  # 5 s per gate before
    assert {g.last_result for g in rollout.gates.all()} == {"unknown"}
