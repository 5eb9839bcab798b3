"""Faults with real processes: Celery workers and beat as subprocesses on Redis, killed
mid-change, against the Kubernetes stand-in and real classifier pods. At the end the
console's record equals the cluster and nothing was applied twice."""

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from cascade_admin.celery import app
from rollouts.models import (
    IntentState,
    PodState,
    Publication,
    PublicationState,
    Rollout,
    WeightIntent,
)
from rollouts.publish import publication_start
from rollouts.tasks import evaluate_rollout

from .conftest import CANARY, HTTPROUTE, POD_TOKEN, STABLE, register_pods, route_weights
from .test_services import start

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60  # seconds: generous, for a loaded two-core machine


def wait_for(condition, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def process_env(k8s, **extra) -> dict[str, str]:
    """The test process's settings, pointed at its test database and the stand-in."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CASCADE_K8S_HOST": k8s.url,
        "POD_ADMIN_TOKEN": POD_TOKEN,
        "PUBLISH_TIMEOUT": "10",
        "PUBLISH_POLL_INTERVAL": "50",
        **extra,
    }
    for name in ("PROMETHEUS_URL", "NOTIFY_WEBHOOK_URL", "CASCADE_K8S_TARGET"):
        env.pop(name, None)
    return env


@contextmanager
def celery(command: str, env: dict[str, str], tmp_path: Path, *args: str):
    """``celery worker`` or ``beat`` as its own process; SIGKILLed on the way out."""
    log = open(tmp_path / f"{command}-{time.monotonic_ns()}.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "cascade_admin", command, "--loglevel", "INFO",
         *args],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        log.close()


def worker(env, tmp_path):
    return celery("worker", env, tmp_path, "--pool", "solo", "--without-heartbeat",
                  "--without-gossip", "--without-mingle")  # fmt: skip


@pytest.fixture
def broker():
    """An empty queue: nothing left over from earlier tests reaches these workers."""
    app.conf.update(broker_url=settings.CELERY_BROKER_URL, task_always_eager=False)
    with app.connection_for_write() as conn:
        app.amqp.queues["celery"].bind(conn).purge()
    yield
    with app.connection_for_write() as conn:
        app.amqp.queues["celery"].bind(conn).purge()


def test_a_worker_killed_during_an_advance_leaves_an_intent_the_next_worker_settles(
    k8s, cluster_route, v8, operator, broker, tmp_path
):
    rollout = start(operator, cluster_route, v8, gate_specs=[], window_seconds=1)
    Rollout.objects.filter(pk=rollout.pk).update(
        stage_started_at=timezone.now() - timedelta(seconds=10)
    )
    held = k8s.faults.hold("PATCH", "httproutes", HTTPROUTE, seconds=300, apply="after")
    env = process_env(k8s)

    with worker(env, tmp_path) as first:
        evaluate_rollout.delay(rollout.pk)
        wait_for(lambda: held.requests, "the advance's PATCH to reach the cluster")
        first.send_signal(signal.SIGKILL)  # dies with the PATCH in flight
        first.wait(timeout=30)
    intent = WeightIntent.objects.get(rollout=rollout, action="advance")
    assert intent.state == IntentState.PENDING
    held.release()  # the patch lands after all, with nobody waiting for it
    assert held.wait()
    assert dict(route_weights(k8s)) == {STABLE: 50, CANARY: 50}

    with worker(env, tmp_path):  # a starting worker settles what the dead one left
        wait_for(
            lambda: Rollout.objects.get(pk=rollout.pk).stage == 2, "the advance to be recorded"
        )

    rollout.refresh_from_db()
    assert (rollout.stable_weight, rollout.canary_weight) == (50, 50)  # record == cluster
    assert [t.action for t in rollout.transitions.all()] == ["start", "advance"]
    applied = [r for r in k8s.requests("PATCH") if (r.outcome or r.status) == 200]
    assert len(applied) == 2  # the start and the one advance: nothing applied twice


def test_a_worker_killed_during_a_publish_is_taken_over_and_pods_confirm(
    k8s, route, v8, operator, fresh_pods, broker, tmp_path
):
    register_pods(k8s, fresh_pods)
    held = k8s.faults.hold("PUT", "configmaps", f"{CANARY}-config", seconds=300, apply="after")
    env = process_env(k8s, PUBLISH_STALE_SECONDS="2")

    with worker(env, tmp_path) as first:
        publication = publication_start(actor=operator, version=v8, slot=route.canary_slot)
        wait_for(lambda: held.requests, "the ConfigMap write to reach the cluster")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    publication.refresh_from_db()
    assert publication.state == PublicationState.RUNNING  # what a dead worker leaves
    held.release()
    assert held.wait()

    time.sleep(2.5)  # its heartbeat goes stale
    with worker(env, tmp_path):  # the starting worker takes the run over
        wait_for(
            lambda: Publication.objects.get(pk=publication.pk).state == PublicationState.SUCCEEDED,
            "the publication to finish",
        )

    publication.refresh_from_db()
    assert {p.state for p in publication.pods.all()} == {PodState.CONFIRMED}
    for pod in fresh_pods:
        served = httpx.get(f"{pod.url}/config", trust_env=False).json()
        assert served["sha256"] == v8.config_sha256  # record == what the pods serve
    writes = [r for r in k8s.requests("PUT") if "configmaps" in r.path]
    assert len(writes) == 1  # the takeover found the ConfigMap written: no second write
    assert publication.attempts == 2


def test_a_stopped_beat_shows_as_a_stall_within_three_intervals(
    client, k8s, cluster_route, v8, operator, broker, tmp_path, settings
):
    rollout = start(operator, cluster_route, v8, gate_specs=[])
    env = process_env(k8s, ROLLOUT_EVALUATE_INTERVAL="1")
    settings.ROLLOUT_EVALUATE_INTERVAL = 1  # this process judges with the same interval
    with (
        worker(env, tmp_path),
        celery("beat", env, tmp_path, "--schedule", str(tmp_path / "beat-schedule")) as beat,
    ):
        wait_for(lambda: Rollout.objects.get(pk=rollout.pk).last_evaluated_at, "an evaluation")
        assert client.get("/rollouts/health").json()["stalled"] is False
        beat.send_signal(signal.SIGKILL)
        beat.wait(timeout=30)
        stopped = time.monotonic()
        wait_for(lambda: client.get("/rollouts/health").status_code == 503, "the stall")
        noticed = time.monotonic() - stopped
    page = client.get("/rollouts/health").json()

    assert page["stalled"] is True and page["beat_last_tick_age_seconds"] > 3
    assert noticed < 3 + 10  # three intervals, plus room for a loaded machine
