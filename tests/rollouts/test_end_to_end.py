"""End to end on 127.0.0.1: publish v8 to real pods through the Kubernetes stand-in, run the
canary with gates on Debian's Prometheus scraping those pods, hold on no data, promote on
healthy traffic, then roll back on its own when a 5xx burst hits the canary."""

import time

import pytest

from rollouts import services
from rollouts.gates import DEFAULT_GATES
from rollouts.models import GateResult, PublicationState, RolloutState
from rollouts.publish import publication_execute, publication_start
from tests.pod.podkit import chat

from .conftest import CANARY, STABLE, register_pods, route_weights
from .promkit import PrometheusProcess

pytestmark = pytest.mark.django_db

V8_REQUESTS = 'sum(cascade_pod_requests_total{version="v8"})'
V8_5XX = 'sum(cascade_pod_requests_total{version="v8",status_class="5xx"})'


def gate_specs():
    """The default gates on a 10 s window, 10 requests minimum, rollback after 1 s failing."""
    specs = []
    for spec in DEFAULT_GATES:
        spec = {**spec, "window": "10s", "min_requests": 10}
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
    statuses = send(pods, len(pods))
    prometheus.wait_for(promql, lambda r: r and float(r[0]["value"][1]) >= len(pods))
    statuses |= send(pods, n)
    prometheus.wait_for(promql, lambda r: r and float(r[0]["value"][1]) >= n + len(pods))
    time.sleep(1.0)
    return statuses


@pytest.fixture
def prometheus(tmp_path, pods, monkeypatch):
    proc = PrometheusProcess(tmp_path, [p.url.removeprefix("http://") for p in pods])
    monkeypatch.setenv("PROMETHEUS_URL", proc.url)
    yield proc
    proc.stop()


def test_publish_canary_promote_and_automatic_rollback(
    k8s, cluster_route, v8, operator, fresh_pods, fake_backends, prometheus
):
    weak, strong = fake_backends
    weak.reset()
    strong.reset()
    register_pods(k8s, fresh_pods)

    # Publish v8 to the canary slot: both pods confirm its hash.
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
    time.sleep(1.05)  # the stage's observation window is over

    # No traffic on v8 yet: every gate is unknown, the stage holds.
    prometheus.wait_for("up", lambda r: len(r) == 2 and all(x["value"][1] == "1" for x in r))
    rollout = services.rollout_evaluate(rollout_id=rollout.pk)
    assert (rollout.state, rollout.stage) == (RolloutState.STAGE, 1)
    assert {g.last_result for g in rollout.gates.all()} == {GateResult.UNKNOWN}
    assert rollout.held_since is not None
    assert "held" in rollout.status_note

    # Healthy traffic: the gates pass and the canary goes to 100%.
    assert burst(prometheus, fresh_pods, 30, V8_REQUESTS) == {200}
    rollout = services.rollout_evaluate(rollout_id=rollout.pk)
    results = {g.name: (g.last_result, g.last_detail) for g in rollout.gates.all()}
    assert (rollout.stage, rollout.canary_weight) == (2, 100), results
    assert route_weights(k8s) == [(STABLE, 0), (CANARY, 100)]

    # A 5xx burst on the canary: failing, then (held for 1 s) rolled back automatically.
    weak.behave(status=500)
    strong.behave(status=500)
    assert burst(prometheus, fresh_pods, 30, V8_5XX) == {503}
    rollout = services.rollout_evaluate(rollout_id=rollout.pk)
    error_rate = rollout.gates.get(name="error-rate")
    assert error_rate.last_result == GateResult.FAIL, error_rate.last_detail
    assert error_rate.last_value > 0.02
    assert rollout.state == RolloutState.STAGE

    time.sleep(1.05)
    rollout = services.rollout_evaluate(rollout_id=rollout.pk)

    assert rollout.state == RolloutState.ROLLED_BACK
    assert route_weights(k8s) == [(STABLE, 100), (CANARY, 0)]
    last = rollout.transitions.last()
    assert (last.action, last.actor_name) == ("rollback", "automation")
    assert last.reason.startswith("automatic: error-rate fail")
    weak.reset()
    strong.reset()
