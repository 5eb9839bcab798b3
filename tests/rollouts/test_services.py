"""Rollout services on the Kubernetes stand-in: start, advance, pause, resume, rollback."""

import threading
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from audit.models import AuditEvent
from cascade_admin.errors import Conflict
from rollouts import services
from rollouts.models import (
    Publication,
    PublicationState,
    Rollout,
    RolloutState,
    Route,
)
from tests.standins.k8s_api import httproute

from .conftest import CANARY, HTTPROUTE, NS, STABLE, route_weights


def published(version, slot) -> Publication:
    """A publication every pod confirmed (the publishing itself is tested elsewhere)."""
    return Publication.objects.create(
        version=version,
        slot=slot,
        sha256=version.config_sha256,
        state=PublicationState.SUCCEEDED,
        finished_at=timezone.now(),
    )


def start(operator, route, version, **kwargs) -> Rollout:
    published(version, route.canary_slot)
    return services.rollout_start(actor=operator, route=route, version=version, **kwargs)


@pytest.mark.django_db
class TestLifecycle:
    def test_starting_a_canary_sets_the_first_step_on_the_httproute(
        self, cluster_route, v8, v7, operator
    ):
        published(v7, cluster_route.stable_slot)

        rollout = start(operator, cluster_route, v8, reason="weekly update")

        assert (rollout.state, rollout.stage) == (RolloutState.STAGE, 1)
        assert route_weights(k8s_of(cluster_route)) == [(STABLE, 90), (CANARY, 10)]
        assert rollout.stable_version == v7
        assert [g.name for g in rollout.gates.all()] == [
            "error-rate",
            "p99-latency",
            "weak-ttft-p95",
        ]
        (transition,) = rollout.transitions.all()
        assert (transition.action, transition.actor, transition.reason) == (
            "start",
            operator,
            "weekly update",
        )
        route = Route.objects.get(pk=cluster_route.pk)
        assert (route.stable_weight, route.canary_weight) == (90, 10)
        assert AuditEvent.objects.filter(action="rollout.start", object_id=str(rollout.pk)).exists()

    def test_a_canary_needs_a_confirmed_publication_on_its_slot(self, cluster_route, v8, operator):
        Publication.objects.create(
            version=v8, slot=cluster_route.canary_slot, sha256="x", state=PublicationState.PARTIAL
        )
        with pytest.raises(Conflict, match="is partial: every pod must confirm"):
            services.rollout_start(actor=operator, route=cluster_route, version=v8)
        assert not Rollout.objects.exists()

    def test_a_canary_needs_a_publication_on_its_slot(self, cluster_route, v8, operator):
        with pytest.raises(Conflict, match="Publish v8 to llm-classifier-v8 first."):
            services.rollout_start(actor=operator, route=cluster_route, version=v8)

    def test_a_canary_needs_its_slot_to_serve_it_still(self, cluster_route, v7, v8, operator):
        published(v8, cluster_route.canary_slot)
        published(v7, cluster_route.canary_slot)  # published over it since

        with pytest.raises(Conflict, match="its newest publication is of v7"):
            services.rollout_start(actor=operator, route=cluster_route, version=v8)

    def test_stages_advance_through_the_steps_and_promotion_swaps_the_roles(
        self, cluster_route, v8, operator
    ):
        rollout = start(operator, cluster_route, v8)

        services.rollout_advance(actor=operator, rollout=rollout, expected_stage=1)
        assert route_weights(k8s_of(cluster_route)) == [(STABLE, 50), (CANARY, 50)]
        services.rollout_advance(actor=operator, rollout=rollout, expected_stage=2)
        assert route_weights(k8s_of(cluster_route)) == [(STABLE, 0), (CANARY, 100)]
        services.rollout_advance(actor=operator, rollout=rollout, expected_stage=3)

        rollout.refresh_from_db()
        assert rollout.state == RolloutState.PROMOTED
        assert rollout.finished_at is not None
        assert [t.action for t in rollout.transitions.all()] == [
            "start",
            "advance",
            "advance",
            "promote",
        ]
        route = Route.objects.get(pk=cluster_route.pk)
        assert (route.stable_backend, route.canary_backend) == (CANARY, STABLE)
        assert (route.stable_weight, route.canary_weight) == (100, 0)

    def test_a_stale_click_does_not_advance_twice(self, cluster_route, v8, operator):
        rollout = start(operator, cluster_route, v8)
        services.rollout_advance(actor=operator, rollout=rollout, expected_stage=1)

        with pytest.raises(Conflict, match="someone else"):
            services.rollout_advance(actor=operator, rollout=rollout, expected_stage=1)

        rollout.refresh_from_db()
        assert rollout.stage == 2

    def test_pause_holds_the_weights_and_resume_restarts_the_window(
        self, cluster_route, v8, operator
    ):
        rollout = start(operator, cluster_route, v8)
        services.rollout_pause(actor=operator, rollout=rollout, reason="looking at a spike")

        with pytest.raises(Conflict):
            services.rollout_advance(actor=operator, rollout=rollout)
        rollout.refresh_from_db()
        assert rollout.state == RolloutState.PAUSED
        assert route_weights(k8s_of(cluster_route)) == [(STABLE, 90), (CANARY, 10)]

        services.rollout_resume(actor=operator, rollout=rollout)
        rollout.refresh_from_db()
        assert (rollout.state, rollout.stage) == (RolloutState.STAGE, 1)
        with pytest.raises(Conflict):
            services.rollout_resume(actor=operator, rollout=rollout)

    def test_rollback_sets_canary_0_and_stable_100_and_records_who_and_why(
        self, cluster_route, v8, v7, operator
    ):
        published(v7, cluster_route.stable_slot)
        rollout = start(operator, cluster_route, v8)
        services.rollout_advance(actor=operator, rollout=rollout)

        services.rollout_rollback(
            actor=operator, rollout=rollout, reason="5xx on canary", republish=True
        )

        assert route_weights(k8s_of(cluster_route)) == [(STABLE, 100), (CANARY, 0)]
        rollout.refresh_from_db()
        assert (rollout.state, rollout.canary_weight, rollout.stable_weight) == (
            RolloutState.ROLLED_BACK,
            0,
            100,
        )
        last = rollout.transitions.last()
        assert (last.action, last.actor_name, last.reason) == ("rollback", "otto", "5xx on canary")
        republished = Publication.objects.filter(
            slot=cluster_route.canary_slot, state=PublicationState.PENDING
        ).get()
        assert republished.version == v7
        with pytest.raises(Conflict):
            services.rollout_rollback(actor=operator, rollout=rollout)

    def test_a_retired_stable_version_never_undoes_the_recorded_rollback(
        self, cluster_route, v8, v7, operator
    ):
        from routing import services as routing_services

        published(v7, cluster_route.stable_slot)
        rollout = start(operator, cluster_route, v8)
        routing_services.version_retire(actor=operator, version=v7)

        services.rollout_rollback(actor=operator, rollout=rollout, reason="bad", republish=True)

        assert route_weights(k8s_of(cluster_route)) == [(STABLE, 100), (CANARY, 0)]
        rollout.refresh_from_db()
        assert rollout.state == RolloutState.ROLLED_BACK
        assert "not republished: v7 is retired" in rollout.transitions.last().reason
        assert not Publication.objects.filter(state=PublicationState.PENDING).exists()

    def test_a_route_reordered_during_the_change_is_refused_and_nothing_recorded(
        self, cluster_route, v8, operator
    ):
        k8s = k8s_of(cluster_route)
        rollout = start(operator, cluster_route, v8)
        reordered = httproute(NS, HTTPROUTE, [[(CANARY, 10), (STABLE, 90)]])
        k8s.before_next(lambda: k8s.put(reordered), method="PATCH")

        with pytest.raises(services.RolloutError, match="not changed"):
            services.rollout_advance(actor=operator, rollout=rollout)

        rollout.refresh_from_db()
        assert (rollout.stage, rollout.canary_weight) == (1, 10)
        assert rollout.transitions.count() == 1
        assert route_weights(k8s) == [(CANARY, 10), (STABLE, 90)]

    def test_only_one_active_rollout_per_route(self, cluster_route, v8, operator):
        rollout = start(operator, cluster_route, v8)

        with pytest.raises(Conflict, match="already has an active rollout"):
            services.rollout_start(actor=operator, route=cluster_route, version=v8)
        with pytest.raises(IntegrityError), transaction.atomic():
            Rollout.objects.create(
                route=cluster_route, version=v8, stable_backend=STABLE, canary_backend=CANARY
            )

        services.rollout_rollback(actor=operator, rollout=rollout)
        again = services.rollout_start(actor=operator, route=cluster_route, version=v8)
        assert again.state == RolloutState.STAGE

    def test_the_database_refuses_weights_outside_0_to_100(self, route, v8):
        with pytest.raises(IntegrityError), transaction.atomic():
            Rollout.objects.create(
                route=route,
                version=v8,
                stable_backend=STABLE,
                canary_backend=CANARY,
                canary_weight=101,
                state=RolloutState.ROLLED_BACK,
            )
        with pytest.raises(IntegrityError), transaction.atomic():
            Route.objects.filter(pk=route.pk).update(stable_weight=250)

    @pytest.mark.parametrize("steps", [[], [10, 10, 100], [50, 20, 100], [10, 50], [0, 100]])
    def test_bad_steps_are_refused(self, route, v8, operator, local_target, steps):
        from django.core.exceptions import ValidationError

        with pytest.raises(ValidationError):
            start(operator, route, v8, steps=steps)

    def test_the_local_target_records_the_weights_in_the_database(
        self, local_target, route, v8, operator
    ):
        rollout = start(operator, route, v8, steps=[25, 100], window_seconds=60)
        route.refresh_from_db()
        assert (route.stable_weight, route.canary_weight) == (75, 25)

        services.rollout_rollback(actor=operator, rollout=rollout, reason="demo")

        route.refresh_from_db()
        assert (route.stable_weight, route.canary_weight) == (100, 0)


def k8s_of(route):
    """The stand-in the ``cluster_route`` fixture seeded (found through its URL in the env)."""
    return _STANDINS[-1]


_STANDINS: list = []


@pytest.fixture(autouse=True)
def _remember_standin(request):
    if "cluster_route" in request.fixturenames:
        _STANDINS.append(request.getfixturevalue("k8s"))
    yield
    _STANDINS.clear()


# --- concurrency ----------------------------------------------------------------------------


def _race(*calls):
    """Run the calls at the same moment in threads; return their results or exceptions."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait()
            results[i] = call()
        except Exception as exc:  # the test inspects what each thread got
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    return results


@pytest.mark.django_db(transaction=True)
def test_two_operators_clicking_advance_at_once_advance_one_stage(k8s, cluster_route, v8, operator):
    rollout = start(operator, cluster_route, v8)
    k8s.clear_requests()
    # The first to get the lock reads the route slowly: the other surely arrives meanwhile,
    # so only the row lock can keep it from advancing too (run one after the other, the
    # stale expected_stage alone would refuse it).
    k8s.delay_next(0.5, method="GET")

    def click():
        return services.rollout_advance(actor=operator, rollout=rollout, expected_stage=1)

    results = _race(click, click)

    assert sorted(type(r).__name__ for r in results) == ["Conflict", "Rollout"]
    rollout.refresh_from_db()
    assert rollout.stage == 2
    assert [r.status for r in k8s.requests("PATCH")] == [200]
    assert route_weights(k8s) == [(STABLE, 50), (CANARY, 50)]


@pytest.mark.django_db(transaction=True)
def test_two_beat_ticks_at_once_advance_one_stage(k8s, cluster_route, v8, operator):
    rollout = start(operator, cluster_route, v8, gate_specs=[], window_seconds=1)
    Rollout.objects.filter(pk=rollout.pk).update(
        stage_started_at=timezone.now() - timedelta(seconds=5)
    )
    k8s.clear_requests()
    k8s.delay_next(0.5, method="GET")  # both ticks are surely inside at once (see above)

    def tick():
        return services.rollout_evaluate(rollout_id=rollout.pk)

    _race(tick, tick)

    rollout.refresh_from_db()
    assert rollout.stage == 2
    assert [t.action for t in rollout.transitions.all()] == ["start", "advance"]
    assert len(k8s.requests("PATCH")) == 1


@pytest.mark.django_db
def test_a_canary_of_the_version_the_stable_slot_serves_is_refused(
    local_target, route, v7, operator
):
    published(v7, route.stable_slot)

    with pytest.raises(Conflict, match="against itself"):
        start(operator, route, v7)
