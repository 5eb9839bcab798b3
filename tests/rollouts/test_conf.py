"""Rollout settings from the environment: the Prometheus query timeout."""

import socket
import time

import httpx
import pytest
from django.core.exceptions import ImproperlyConfigured

from rollouts import conf, services
from rollouts.gates import Prometheus, PrometheusError

from .test_services import published


@pytest.fixture
def no_timeout_set(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_TIMEOUT", raising=False)
    monkeypatch.delenv("PROMETHEUS_TIMEOUT_FILE", raising=False)


@pytest.fixture
def silent_prometheus():
    """A port that takes connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_the_prometheus_timeout_defaults_to_three_seconds(no_timeout_set):
    assert conf.prometheus_timeout() == 3.0


def test_the_prometheus_timeout_is_read_from_the_environment_or_a_file(
    no_timeout_set, monkeypatch, tmp_path
):
    monkeypatch.setenv("PROMETHEUS_TIMEOUT", "7")
    assert conf.prometheus_timeout() == 7.0

    monkeypatch.delenv("PROMETHEUS_TIMEOUT")
    (tmp_path / "timeout").write_text("12\n")
    monkeypatch.setenv("PROMETHEUS_TIMEOUT_FILE", str(tmp_path / "timeout"))
    assert conf.prometheus_timeout() == 12.0


@pytest.mark.parametrize("value", ["abc", "2.5", "3s", "0", "-1", "31"])
def test_a_malformed_or_out_of_range_prometheus_timeout_fails_loudly(
    no_timeout_set, monkeypatch, value
):
    monkeypatch.setenv("PROMETHEUS_TIMEOUT", value)
    with pytest.raises(ImproperlyConfigured, match="PROMETHEUS_TIMEOUT"):
        conf.prometheus_timeout()


def test_the_client_defaults_to_the_configured_timeout(no_timeout_set, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_TIMEOUT", "4")
    with Prometheus("http://127.0.0.1:9") as configured:
        assert configured._http.timeout == httpx.Timeout(4.0)
    with Prometheus("http://127.0.0.1:9", timeout=1.5) as explicit:
        assert explicit._http.timeout == httpx.Timeout(1.5)


def test_a_silent_prometheus_gives_up_after_the_configured_timeout(
    no_timeout_set, monkeypatch, silent_prometheus
):
    monkeypatch.setenv("PROMETHEUS_TIMEOUT", "1")
    started = time.monotonic()
    with Prometheus(silent_prometheus) as prometheus, pytest.raises(PrometheusError) as caught:
        prometheus.query("vector(1)")
    assert time.monotonic() - started < 3.5  # the old default alone was 5 s
    assert caught.value.retryable


@pytest.mark.django_db
def test_an_evaluation_against_a_silent_prometheus_is_unknown_within_the_timeout(
    no_timeout_set, monkeypatch, silent_prometheus, local_target, route, v8, operator
):
    published(v8, route.canary_slot)
    rollout = services.rollout_start(actor=operator, route=route, version=v8)
    monkeypatch.setenv("PROMETHEUS_URL", silent_prometheus)
    monkeypatch.setenv("PROMETHEUS_TIMEOUT", "1")

    started = time.monotonic()
    services.rollout_evaluate(rollout_id=rollout.pk)
    elapsed = time.monotonic() - started

    # One query per gate (the request count) times out; the gates hold as unknown.
    assert elapsed < 2 * rollout.gates.count() + 1  # 5 s per gate before
    assert {g.last_result for g in rollout.gates.all()} == {"unknown"}
