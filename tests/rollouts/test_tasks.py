"""Tasks on a real Celery worker (Redis), notifications to a local webhook receiver."""

import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from rollouts import services
from rollouts.models import PublicationState, Rollout
from rollouts.publish import publication_start
from rollouts.schedule import BEAT_SCHEDULE
from rollouts.tasks import evaluate_rollouts
from tests.celery_worker import running_worker

from .test_services import published

pytestmark = pytest.mark.django_db(transaction=True)


class _Receiver(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True

    def do_POST(self):  # the http.server hook name
        length = int(self.headers.get("Content-Length", 0))
        self.server.bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook(settings):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.bodies = []
    server.status = 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.NOTIFY_WEBHOOK_URL = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


def test_a_publication_runs_on_the_worker_after_commit(local_target, route, v8, operator):
    with running_worker():
        publication = publication_start(actor=operator, version=v8, slot=route.canary_slot)

        def done():
            publication.refresh_from_db()
            return publication.state == PublicationState.SUCCEEDED

        assert wait_for(done)


def test_start_hold_and_rollback_are_sent_to_the_webhook(
    local_target, webhook, route, v8, operator
):
    published(v8, route.canary_slot)
    with running_worker():
        rollout = services.rollout_start(
            actor=operator, route=route, version=v8, window_seconds=1, reason="weekly"
        )
        Rollout.objects.filter(pk=rollout.pk).update(
            stage_started_at=timezone.now() - timedelta(seconds=5)
        )
        assert evaluate_rollouts() == [rollout.pk]  # no Prometheus: unknown gates hold
        assert evaluate_rollouts() == [rollout.pk]  # still held: notified once
        assert wait_for(lambda: Rollout.objects.get(pk=rollout.pk).held_since is not None)
        services.rollout_rollback(actor=operator, rollout=rollout, reason="looks bad")

        assert wait_for(lambda: len(webhook.bodies) == 3)

    events = [b["cascade"]["event"] for b in webhook.bodies]
    assert sorted(events) == ["hold", "rollback", "start"]
    by_event = {b["cascade"]["event"]: b for b in webhook.bodies}
    assert by_event["start"]["text"].startswith(":rocket: Canary started: v8 on router")
    assert "canary 10% / stable 90%" in by_event["start"]["text"]
    assert by_event["rollback"]["cascade"]["canary_weight"] == 0
    assert "looks bad" in by_event["rollback"]["text"]
    assert "PROMETHEUS_URL unset" in by_event["hold"]["text"]
    assert by_event["hold"]["blocks"][0]["text"]["type"] == "mrkdwn"


def test_gates_are_evaluated_every_30_seconds_by_default():
    entry = BEAT_SCHEDULE["rollouts-evaluate"]
    assert entry["task"] == "rollouts.tasks.evaluate_rollouts"
    assert entry["schedule"] == 30.0
