"""Rollout safety under faults, on the Kubernetes stand-in: weights changed elsewhere (drift),
answers lost or held, a worker gone mid-change, and Prometheus blips during a breach."""

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from cascade_admin.errors import Conflict
from rollouts import services
from rollouts.models import (
    Gate,
    IntentState,
    Rollout,
    RolloutState,
    Route,
    WeightIntent,
)

from .conftest import CANARY, HTTPROUTE, NS, STABLE, route_weights
from .test_services import start

pytestmark = pytest.mark.django_db

CLIENT_TIMEOUT = 1  # seconds per API call in these tests; held answers outlast it


@pytest.fixture
def quick(settings):
    settings.CASCADE_K8S_TIMEOUT = CLIENT_TIMEOUT


def recorded(rollout: Rollout) -> tuple[int, int]:
    rollout.refresh_from_db()
    return rollout.stable_weight, rollout.canary_weight


def live(k8s) -> dict[str, int]:
    return dict(route_weights(k8s))


# --- drift -----------------------------------------------------------------------------------


def test_weights_changed_elsewhere_hold_the_rollout_and_are_shown_audited_once(
    k8s, cluster_route, v8, operator
):
    rollout = start(operator, cluster_route, v8, gate_specs=[], window_seconds=1)
    k8s.store.set_route_weights(NS, HTTPROUTE, 0, {STABLE: 80, CANARY: 20})
    later = timezone.now() + timedelta(seconds=5)  # the stage window is over

    for _ in range(2):
        rollout = services.rollout_evaluate(rollout_id=rollout.pk, now=later)

    assert (rollout.stage, rollout.canary_weight) == (1, 10)  # not advanced, not overwritten
    assert rollout.drift_live == {STABLE: 80, CANARY: 20}
    assert "drift" in rollout.status_note and "80" in rollout.status_note
    assert live(k8s) == {STABLE: 80, CANARY: 20}
    assert AuditEvent.objects.filter(action="rollout.drift").count() == 1
    with pytest.raises(Conflict, match="changed elsewhere"):
        services.rollout_advance(actor=operator, rollout=rollout)


def test_an_operator_adopts_the_live_weights(k8s, cluster_route, v8, operator):
    rollout = start(operator, cluster_route, v8, gate_specs=[])
    k8s.store.set_route_weights(NS, HTTPROUTE, 0, {STABLE: 80, CANARY: 20})
    assert services.check_drift(rollout) is True

    services.rollout_adopt_live(actor=operator, rollout=rollout, reason="ops set 20% by hand")

    assert recorded(rollout) == (80, 20) and rollout.drift_live is None
    route = Route.objects.get(pk=cluster_route.pk)
    assert (route.stable_weight, route.canary_weight) == (80, 20)
    assert rollout.transitions.last().action == "adopt"
    assert services.check_drift(rollout) is False


def test_an_operator_restores_the_recorded_weights(k8s, cluster_route, v8, operator):
    rollout = start(operator, cluster_route, v8, gate_specs=[])
    k8s.store.set_route_weights(NS, HTTPROUTE, 0, {STABLE: 80, CANARY: 20})
    services.check_drift(rollout)

    services.rollout_restore(actor=operator, rollout=rollout, reason="the edit was a mistake")

    assert live(k8s) == {STABLE: 90, CANARY: 10}
    rollout.refresh_from_db()
    assert rollout.drift_live is None and rollout.transitions.last().action == "restore"
    with pytest.raises(Conflict, match="no drift"):
        services.rollout_restore(actor=operator, rollout=rollout)


def test_a_weight_change_between_read_and_patch_is_refused_by_the_server(
    k8s, cluster_route, v8, operator
):
    rollout = start(operator, cluster_route, v8)
    # Someone sets other weights right after the console read the route.
    k8s.before_next(
        lambda: k8s.store.set_route_weights(NS, HTTPROUTE, 0, {STABLE: 70, CANARY: 30}),
        method="PATCH",
    )

    with pytest.raises(services.RolloutError, match="not changed"):
        services.rollout_advance(actor=operator, rollout=rollout)

    assert live(k8s) == {STABLE: 70, CANARY: 30}
    assert recorded(rollout) == (90, 10)
    assert WeightIntent.objects.get(action="advance").state == IntentState.NOT_APPLIED


def test_a_rollback_goes_through_whatever_the_route_holds(k8s, cluster_route, v8, operator):
    rollout = start(operator, cluster_route, v8)
    k8s.store.set_route_weights(NS, HTTPROUTE, 0, {STABLE: 40, CANARY: 60})
    services.check_drift(rollout)

    services.rollout_rollback(actor=operator, rollout=rollout, reason="stop it")

    assert live(k8s) == {STABLE: 100, CANARY: 0}
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.ROLLED_BACK and rollout.drift_live is None


# --- lost answers ------------------------------------------------------------------------------


def test_a_lost_answer_of_a_change_that_landed_is_recorded_as_done(
    k8s, cluster_route, v8, operator, quick
):
    rollout = start(operator, cluster_route, v8)
    k8s.faults.hold("PATCH", "httproutes", HTTPROUTE, seconds=CLIENT_TIMEOUT * 4, apply="before")

    rollout = services.rollout_advance(actor=operator, rollout=rollout)

    assert (rollout.stage, rollout.canary_weight) == (2, 50)
    assert live(k8s) == {STABLE: 50, CANARY: 50}
    intent = WeightIntent.objects.get(action="advance")
    assert intent.state == IntentState.APPLIED
    assert "reading the route back" in rollout.transitions.last().reason


def test_a_held_change_stays_unknown_blocks_other_moves_and_is_recorded_when_it_lands(
    k8s, cluster_route, v8, operator, quick
):
    rollout = start(operator, cluster_route, v8, gate_specs=[])
    rule = k8s.faults.hold("PATCH", "httproutes", HTTPROUTE, seconds=30, apply="after")

    with pytest.raises(services.RolloutError, match="outcome unknown"):
        services.rollout_advance(actor=operator, rollout=rollout)
    assert recorded(rollout) == (90, 10)
    with pytest.raises(Conflict, match="not known yet"):
        services.rollout_advance(actor=operator, rollout=rollout)

    rule.release()  # the held patch lands now, seconds after the client gave up
    assert rule.wait()
    rollout = services.rollout_evaluate(rollout_id=rollout.pk)

    assert (rollout.stage, rollout.canary_weight) == (2, 50)
    assert live(k8s) == {STABLE: 50, CANARY: 50}
    assert [t.action for t in rollout.transitions.all()] == ["start", "advance"]


def test_a_change_lost_on_the_way_in_is_not_applied_once_the_grace_is_over(
    k8s, cluster_route, v8, operator, quick
):
    rollout = start(operator, cluster_route, v8, gate_specs=[])
    k8s.faults.drop("PATCH", "httproutes", HTTPROUTE, apply="never")

    with pytest.raises(services.RolloutError, match="outcome unknown"):
        services.rollout_advance(actor=operator, rollout=rollout)
    intent = WeightIntent.objects.get(action="advance")
    services.settle(intent, now=timezone.now() + services.SETTLE_GRACE + timedelta(seconds=1))

    intent.refresh_from_db()
    assert intent.state == IntentState.NOT_APPLIED
    assert recorded(rollout) == (90, 10) and live(k8s) == {STABLE: 90, CANARY: 10}
    services.rollout_advance(actor=operator, rollout=rollout)  # free to try again
    assert live(k8s) == {STABLE: 50, CANARY: 50}


def test_a_change_whose_worker_died_is_settled_when_a_worker_starts(
    k8s, cluster_route, v8, operator
):
    rollout = start(operator, cluster_route, v8, gate_specs=[])
    # What a worker killed mid-advance leaves: its intent, and the route already moved.
    WeightIntent.objects.create(
        rollout=rollout, action="advance", from_state="stage", from_stage=1, to_state="stage",
        to_stage=2, target={CANARY: 50, STABLE: 50}, previous={CANARY: 10, STABLE: 90},
        actor_name="automation", created_at=timezone.now(),
    )  # fmt: skip
    k8s.store.set_route_weights(NS, HTTPROUTE, 0, {STABLE: 50, CANARY: 50})

    assert services.settle_pending() == 0

    assert recorded(rollout) == (50, 50)
    rollout.refresh_from_db()
    assert rollout.stage == 2 and rollout.drift_live is None


def test_a_rollback_supersedes_a_change_still_in_flight(k8s, cluster_route, v8, operator, quick):
    rollout = start(operator, cluster_route, v8)
    rule = k8s.faults.hold("PATCH", "httproutes", HTTPROUTE, seconds=30, apply="after")
    with pytest.raises(services.RolloutError, match="outcome unknown"):
        services.rollout_advance(actor=operator, rollout=rollout)

    services.rollout_rollback(actor=operator, rollout=rollout, reason="now")
    rule.release()  # the old advance lands late: its resourceVersion test refuses it
    assert rule.wait()

    assert live(k8s) == {STABLE: 100, CANARY: 0}
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.ROLLED_BACK
    states = dict(WeightIntent.objects.values_list("action", "state"))
    assert states == {
        "start": IntentState.APPLIED,
        "advance": IntentState.NOT_APPLIED,
        "rollback": IntentState.APPLIED,
    }


# --- unknown never resets the clock --------------------------------------------------------------


@pytest.fixture
def gate_outcomes(settings):
    """A Prometheus HTTP API on 127.0.0.1 whose answers are scripted: each gate evaluation
    (it asks its requests query first) takes the next of the results given (fail / unknown /
    pass). The gates query it through the console's own client."""
    queue: list[str] = []
    current = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # http.server's hook
            length = int(self.headers["Content-Length"])
            query = parse_qs(self.rfile.read(length).decode())["query"][0]
            if query == ERROR_RATE["requests_query"]:
                current["result"] = queue.pop(0)
            value = {"fail": 0.5, "pass": 0.0}.get(current["result"])
            number = 500 if query == ERROR_RATE["requests_query"] else value
            series = [] if value is None else [{"metric": {}, "value": [0, str(number)]}]
            body = json.dumps(
                {"status": "success", "data": {"resultType": "vector", "result": series}}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.PROMETHEUS_URL = f"http://127.0.0.1:{server.server_address[1]}"
    yield queue.extend
    server.shutdown()
    server.server_close()


ERROR_RATE = {
    "name": "error-rate", "query": "q", "requests_query": "r", "window": "30s",
    "comparator": "lt", "threshold": 0.02, "min_requests": 10, "rollback_after_seconds": 20,
}  # fmt: skip


@pytest.mark.parametrize("unknown_rolls_back", [True, False])
def test_a_failing_gate_that_turns_unknown_keeps_its_clock(
    k8s, cluster_route, v8, operator, gate_outcomes, unknown_rolls_back
):
    rollout = start(operator, cluster_route, v8, gate_specs=[ERROR_RATE], window_seconds=3600)
    Gate.objects.filter(rollout=rollout).update(unknown_rolls_back=unknown_rolls_back)
    gate_outcomes(["fail", "unknown", "unknown"])
    t0 = timezone.now()

    services.rollout_evaluate(rollout_id=rollout.pk, now=t0)
    services.rollout_evaluate(rollout_id=rollout.pk, now=t0 + timedelta(seconds=10))
    gate = Gate.objects.get(rollout=rollout)
    assert gate.failing_since == t0  # an outage does not restart the clock
    rollout = services.rollout_evaluate(rollout_id=rollout.pk, now=t0 + timedelta(seconds=21))

    if unknown_rolls_back:
        assert rollout.state == RolloutState.ROLLED_BACK
        assert live(k8s) == {STABLE: 100, CANARY: 0}
    else:
        assert rollout.state == RolloutState.STAGE


def test_a_pass_ends_the_failing_streak(k8s, cluster_route, v8, operator, gate_outcomes):
    rollout = start(operator, cluster_route, v8, gate_specs=[ERROR_RATE], window_seconds=3600)
    gate_outcomes(["fail", "pass", "fail"])
    t0 = timezone.now()

    for seconds in (0, 10, 21):
        rollout = services.rollout_evaluate(
            rollout_id=rollout.pk, now=t0 + timedelta(seconds=seconds)
        )

    assert rollout.state == RolloutState.STAGE
    assert Gate.objects.get(rollout=rollout).failing_since == t0 + timedelta(seconds=21)


def test_after_unknowns_a_stage_waits_a_whole_window_of_fresh_passes(
    k8s, cluster_route, v8, operator, gate_outcomes
):
    rollout = start(operator, cluster_route, v8, gate_specs=[ERROR_RATE], window_seconds=1)
    gate_outcomes(["unknown", "pass", "pass", "pass"])
    t0 = timezone.now() + timedelta(seconds=5)

    services.rollout_evaluate(rollout_id=rollout.pk, now=t0)
    held = services.rollout_evaluate(rollout_id=rollout.pk, now=t0 + timedelta(seconds=5))
    assert held.stage == 1 and "window of fresh data" in held.status_note
    still = services.rollout_evaluate(rollout_id=rollout.pk, now=t0 + timedelta(seconds=20))
    assert still.stage == 1  # 15 s of passes in a 30 s window
    done = services.rollout_evaluate(rollout_id=rollout.pk, now=t0 + timedelta(seconds=36))
    assert (done.stage, done.canary_weight) == (2, 50)


# --- a stalled evaluator is loud ---------------------------------------------------------------


def test_a_stalled_evaluator_shows_on_the_page_and_the_health_endpoint_once_notified(
    client,
    k8s,
    cluster_route,
    v8,
    operator,
    settings,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    from rollouts import health, notify

    settings.ROLLOUT_EVALUATE_INTERVAL = 10
    sent = []
    monkeypatch.setattr(notify, "notify", lambda event, rollout, message="": sent.append(event))
    rollout = start(operator, cluster_route, v8, gate_specs=[])
    now = timezone.now()
    health.beat_ticked(now)
    services.rollout_evaluate(rollout_id=rollout.pk, now=now)

    fresh = client.get("/rollouts/health")
    assert fresh.status_code == 200 and fresh.json()["stalled"] is False

    # The beat stops: 31 s later (over three 10 s intervals) it is a stall.
    Rollout.objects.filter(pk=rollout.pk).update(last_evaluated_at=now - timedelta(seconds=31))
    from rollouts.models import Heartbeat

    Heartbeat.objects.filter(name="beat").update(at=now - timedelta(seconds=31))
    stalled = client.get("/rollouts/health")
    again = client.get("/rollouts/health")

    assert stalled.status_code == 503 and stalled.json()["stalled"] is True
    assert stalled.json()["beat_last_tick_age_seconds"] >= 31
    assert again.status_code == 503 and sent.count("stalled") == 1  # notified once
    client.force_login(operator)
    page = client.get(f"/rollouts/{rollout.pk}/").content.decode()
    assert "Last evaluated" in page and "three intervals" in page
    health.beat_ticked(timezone.now())  # the beat is back: a later stall is notified again
    assert Heartbeat.objects.get(name="beat").stall_notified_at is None


def test_the_rollout_page_shows_drift_and_the_operator_buttons(
    client, k8s, cluster_route, v8, operator
):
    rollout = start(operator, cluster_route, v8, gate_specs=[])
    k8s.store.set_route_weights(NS, HTTPROUTE, 0, {STABLE: 80, CANARY: 20})
    client.force_login(operator)

    page = client.get(f"/rollouts/{rollout.pk}/").content.decode()

    assert "changed elsewhere" in page and "Adopt live weights" in page
    assert f"{CANARY} 20%" in page and f"{CANARY} 10%" in page  # live and recorded
    response = client.post(f"/rollouts/{rollout.pk}/adopt/", {"reason": "by hand"})
    assert response.status_code == 302
    assert recorded(rollout) == (80, 20)


def test_the_api_reports_drift_and_adopts(api, k8s, cluster_route, v8, operator, reviewer):
    rollout = start(operator, cluster_route, v8, gate_specs=[])
    k8s.store.set_route_weights(NS, HTTPROUTE, 0, {STABLE: 80, CANARY: 20})
    services.check_drift(rollout)

    body = api.as_(reviewer).get(f"/api/v1/rollouts/{rollout.pk}/").json()
    assert body["drift_live"] == {STABLE: 80, CANARY: 20} and body["pending_change"] is None
    assert api.as_(reviewer).post(f"/api/v1/rollouts/{rollout.pk}/adopt/").status_code == 403
    adopted = api.as_(operator).post(f"/api/v1/rollouts/{rollout.pk}/adopt/", {}, format="json")
    assert adopted.status_code == 200 and adopted.json()["canary_weight"] == 20
    again = api.as_(operator).post(f"/api/v1/rollouts/{rollout.pk}/adopt/", {}, format="json")
    assert again.status_code == 409


def test_unknown_rolls_back_is_set_per_gate_through_the_api(api, local_target, route, v8, operator):
    rollout = start(operator, route, v8, gate_specs=[ERROR_RATE])

    response = api.as_(operator).patch(
        f"/api/v1/rollouts/{rollout.pk}/gates/",
        {"gates": [{"name": "error-rate", "unknown_rolls_back": False}], "reason": "flaky"},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert Gate.objects.get(rollout=rollout).unknown_rolls_back is False
    gate = next(g for g in response.json()["gates"] if g["name"] == "error-rate")
    assert gate["unknown_rolls_back"] is False


def test_a_start_whose_first_step_never_landed_frees_the_route(
    k8s, cluster_route, v8, operator, quick
):
    from .test_services import published

    published(v8, cluster_route.canary_slot)
    k8s.faults.drop("PATCH", "httproutes", HTTPROUTE, apply="never")

    with pytest.raises(services.RolloutError, match="outcome unknown"):
        services.rollout_start(actor=operator, route=cluster_route, version=v8)
    rollout = Rollout.objects.get()
    assert rollout.state == RolloutState.PENDING
    services.settle_pending(now=timezone.now() + services.SETTLE_GRACE + timedelta(seconds=1))

    rollout.refresh_from_db()
    assert rollout.state == RolloutState.FAILED and rollout.canary_weight == 0
    services.rollout_start(actor=operator, route=cluster_route, version=v8)  # the route is free
    assert live(k8s) == {STABLE: 90, CANARY: 10}


def test_a_rollback_goes_through_a_change_landing_between_its_read_and_its_patch(
    k8s, cluster_route, v8, operator
):
    rollout = start(operator, cluster_route, v8)
    k8s.before_next(
        lambda: k8s.store.set_route_weights(NS, HTTPROUTE, 0, {STABLE: 50, CANARY: 50}),
        method="PATCH",
    )

    services.rollout_rollback(actor=operator, rollout=rollout, reason="now")

    assert live(k8s) == {STABLE: 100, CANARY: 0}
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.ROLLED_BACK
