"""End to end on 127.0.0.1: publish v8 to real pods through the Kubernetes stand-in, run the
canary with gates on Debian's Prometheus scraping those pods, hold on no data, advance and
promote on healthy traffic, and roll back on its own (in a stage or paused) when a 5xx
burst hits the canary."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from rollouts import services
from rollouts.gates import DEFAULT_GATES
from rollouts.models import GateResult, PublicationState, RolloutState, Route
from rollouts.publish import publication_execute, publication_start
from tests.pod.podkit import chat

from .conftest import CANARY, STABLE, register_pods, route_weights
from .promkit import PrometheusProcess
from .test_publish import free_port

pytestmark = pytest.mark.django_db

V8_REQUESTS = 'sum(cascade_pod_requests_total{version="v8"})'
V8_5XX = 'sum(cascade_pod_requests_total{version="v8",status_class="5xx"})'


def gate_specs():
    """The default gates on a 30 s window, 10 requests minimum, rollback after 1 s failing.

    30 s, not less: a burst must stay in the window through the evaluations that follow it,
    however slowly a loaded machine gets there.
    """
    specs = []
    for spec in DEFAULT_GATES:
        spec = {**spec, "window": "30s", "min_requests": 10}
        if spec.get("rollback_after_seconds") is not None:
            spec["rollback_after_seconds"] = 1
        specs.append(spec)
    return specs


def send(pods, n):
    return {pods[i % len(pods)].post(chat(f"hello {i}")).status_code for i in range(n)}


def burst(prometheus, pods, n, promql):
    """Send ``n`` requests so that ``rate()`` sees them: a counter series that appears with
    its final value shows no increase, so one request per pod goes first and is scraped, then
    the rest, then one more scrape interval passes."""
    before = prometheus.query(promql)
    seen = float(before[0]["value"][1]) if before else 0.0
    statuses = send(pods, len(pods))
    prometheus.wait_for(promql, lambda r: r and float(r[0]["value"][1]) >= seen + len(pods))
    statuses |= send(pods, n)
    prometheus.wait_for(promql, lambda r: r and float(r[0]["value"][1]) >= seen + n + len(pods))
    time.sleep(1.0)
    return statuses


@pytest.fixture
def prometheus(tmp_path, pods, settings):
    proc = PrometheusProcess(tmp_path, [p.url.removeprefix("http://") for p in pods])
    settings.PROMETHEUS_URL = proc.url
    yield proc
    proc.stop()


@pytest.fixture
def canary(k8s, cluster_route, v8, operator, fresh_pods, fake_backends, prometheus):
    """v8 published to two real pods and started on steps 50 -> 100, 1 s windows."""
    for backend in fake_backends:
        backend.reset()
    register_pods(k8s, fresh_pods)
    publication = publication_start(actor=operator, version=v8, slot=cluster_route.canary_slot)
    assert publication_execute(publication.pk).state == PublicationState.SUCCEEDED
    rollout = services.rollout_start(
        actor=operator,
        route=cluster_route,
        version=v8,
        steps=[50, 100],
        window_seconds=1,
        gate_specs=gate_specs(),
    )
    assert route_weights(k8s) == [(STABLE, 50), (CANARY, 50)]
    prometheus.wait_for("up", lambda r: len(r) == 2 and all(x["value"][1] == "1" for x in r))
    yield rollout
    for backend in fake_backends:
        backend.reset()


def test_publish_hold_advance_and_promote_on_gates(canary, k8s, fresh_pods, prometheus):
    time.sleep(1.05)  # the stage's observation window is over

    # No traffic on v8 yet: every gate is unknown, the stage holds.
    rollout = services.rollout_evaluate(rollout_id=canary.pk)
    assert (rollout.state, rollout.stage) == (RolloutState.STAGE, 1)
    assert {g.last_result for g in rollout.gates.all()} == {GateResult.UNKNOWN}
    assert rollout.held_since is not None
    assert "held" in rollout.status_note

    # Healthy traffic: the gates pass, but on less than a whole gate window of fresh data
    # after the unknowns (their 30 s windows still span the silence): the stage holds.
    assert burst(prometheus, fresh_pods, 30, V8_REQUESTS) == {200}
    rollout = services.rollout_evaluate(rollout_id=rollout.pk)
    results = {g.name: (g.last_result, g.last_detail) for g in rollout.gates.all()}
    assert {r for r, _ in results.values()} == {GateResult.PASS}, results
    assert (rollout.stage, rollout.canary_weight) == (1, 50)
    assert "window of fresh data" in rollout.status_note

    # A whole window later (the clock handed in: the data stays fresh), the canary goes to 100%.
    later = timezone.now() + timedelta(seconds=31)
    rollout = services.rollout_evaluate(rollout_id=rollout.pk, now=later)
    results = {g.name: (g.last_result, g.last_detail) for g in rollout.gates.all()}
    assert (rollout.stage, rollout.canary_weight) == (2, 100), results
    assert route_weights(k8s) == [(STABLE, 0), (CANARY, 100)]

    # Still observing the last stage: nothing happens before its window is over.
    rollout = services.rollout_evaluate(rollout_id=rollout.pk, now=later)
    assert (rollout.state, rollout.stage) == (RolloutState.STAGE, 2)

    # The window is over and every gate, the last-stage P99 one too, passes: promoted.
    rollout = services.rollout_evaluate(rollout_id=rollout.pk, now=later + timedelta(seconds=1.05))
    results = {g.name: (g.last_result, g.last_detail) for g in rollout.gates.all()}
    assert rollout.state == RolloutState.PROMOTED, results
    assert results["p99-latency"][0] == GateResult.PASS
    route = Route.objects.get(pk=rollout.route_id)
    assert (route.stable_backend, route.stable_weight) == (CANARY, 100)
    assert (route.canary_backend, route.canary_weight) == (STABLE, 0)
    assert [t.action for t in rollout.transitions.all()] == ["start", "advance", "promote"]


@pytest.mark.parametrize("paused", [False, True], ids=["in-stage", "paused"])
def test_a_5xx_burst_rolls_the_canary_back_on_its_own(
    canary, k8s, fresh_pods, fake_backends, prometheus, operator, paused
):
    weak, strong = fake_backends
    if paused:  # a pause holds the weights; it does not switch off the rollback
        services.rollout_pause(actor=operator, rollout=canary, reason="looking")

    weak.behave(status=500)
    strong.behave(status=500)
    assert burst(prometheus, fresh_pods, 30, V8_5XX) == {503}
    rollout = services.rollout_evaluate(rollout_id=canary.pk)
    error_rate = rollout.gates.get(name="error-rate")
    assert error_rate.last_result == GateResult.FAIL, error_rate.last_detail
    assert error_rate.last_value > 0.02
    assert rollout.state == (RolloutState.PAUSED if paused else RolloutState.STAGE)

    time.sleep(1.05)
    rollout = services.rollout_evaluate(rollout_id=rollout.pk)

    assert rollout.state == RolloutState.ROLLED_BACK
    assert route_weights(k8s) == [(STABLE, 100), (CANARY, 0)]
    last = rollout.transitions.last()
    assert (last.action, last.actor_name) == ("rollback", "automation")
    assert last.reason.startswith("automatic: error-rate fail")


def test_a_prometheus_outage_during_a_breach_does_not_delay_the_rollback(
    canary, k8s, fresh_pods, fake_backends, prometheus, settings
):
    weak, strong = fake_backends
    weak.behave(status=500)
    strong.behave(status=500)
    assert burst(prometheus, fresh_pods, 30, V8_5XX) == {503}
    rollout = services.rollout_evaluate(rollout_id=canary.pk)
    error_rate = rollout.gates.get(name="error-rate")
    assert error_rate.last_result == GateResult.FAIL, error_rate.last_detail
    failing_since = error_rate.failing_since

    # Prometheus goes away (a real connection refused): every gate turns unknown.
    settings.PROMETHEUS_URL = f"http://127.0.0.1:{free_port()}"
    rollout = services.rollout_evaluate(rollout_id=rollout.pk)
    error_rate = rollout.gates.get(name="error-rate")
    assert error_rate.last_result == GateResult.UNKNOWN
    assert error_rate.failing_since == failing_since  # the rollback clock kept running
    assert rollout.state == RolloutState.STAGE

    time.sleep(1.05)  # the trigger window (1 s) is over, Prometheus still away
    rollout = services.rollout_evaluate(rollout_id=rollout.pk)

    assert rollout.state == RolloutState.ROLLED_BACK
    assert route_weights(k8s) == [(STABLE, 100), (CANARY, 0)]


def test_a_scorer_version_canaries_like_any_other(
    k8s, cluster_route, v9_scored, operator, fresh_pods, fake_backends, prometheus
):
    register_pods(k8s, fresh_pods)
    publication = publication_start(
        actor=operator, version=v9_scored, slot=cluster_route.canary_slot
    )
    assert publication_execute(publication.pk).state == PublicationState.SUCCEEDED
    rollout = services.rollout_start(
        actor=operator, route=cluster_route, version=v9_scored, steps=[50, 100],
        window_seconds=1, gate_specs=gate_specs(),
    )  # fmt: skip
    prometheus.wait_for("up", lambda r: len(r) == 2 and all(x["value"][1] == "1" for x in r))
    time.sleep(1.05)

    scored = 'sum(cascade_pod_classifier_score_count{version="v9"})'
    assert burst(prometheus, fresh_pods, 30, scored) == {200}
    rollout = services.rollout_evaluate(rollout_id=rollout.pk)  # gates pass on v9's metrics
    results = {g.name: (g.last_result, g.last_detail) for g in rollout.gates.all()}
    assert {r for r, _ in results.values()} == {GateResult.PASS}, results
    later = timezone.now() + timedelta(seconds=31)  # a whole gate window of fresh data
    rollout = services.rollout_evaluate(rollout_id=rollout.pk, now=later)
    assert route_weights(k8s) == [(STABLE, 0), (CANARY, 100)]

    rollout = services.rollout_rollback(actor=operator, rollout=rollout, reason="one click")

    assert rollout.state == RolloutState.ROLLED_BACK
    assert route_weights(k8s) == [(STABLE, 100), (CANARY, 0)]


def test_a_rate_limited_backend_does_not_fail_the_error_rate_gate(
    canary, fresh_pods, fake_backends, prometheus
):
    weak, strong = fake_backends
    weak.behave(status=429, retry_after="2")
    strong.behave(status=429, retry_after="2")

    assert burst(prometheus, fresh_pods, 30, V8_REQUESTS) == {429}
    rollout = services.rollout_evaluate(rollout_id=canary.pk)

    error_rate = rollout.gates.get(name="error-rate")
    assert error_rate.last_result == GateResult.PASS, error_rate.last_detail
    assert error_rate.last_value == 0
    assert rollout.state == RolloutState.STAGE
