"""The sync task on a real Celery worker with the real Redis broker."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from cascade_admin.celery import app
from labeling.models import SyncRun, SyncStatus, Trace
from labeling.sync import sync_start
from labeling.tasks import sync_traces
from tests.celery_worker import running_worker

from .conftest import TRAFFIC_END

pytestmark = pytest.mark.django_db(transaction=True)


def wait_until_finished(run_id, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = SyncRun.objects.get(pk=run_id)
        if run.status != SyncStatus.RUNNING:
            return run
        time.sleep(0.1)
    raise AssertionError(f"sync run {run_id} still running after {timeout} s")


def test_a_worker_runs_a_sync_queued_through_redis(langfuse):
    run = sync_start(since=TRAFFIC_END - timedelta(days=3), until=TRAFFIC_END)
    with running_worker():
        sync_traces.delay(run.pk)
        run = wait_until_finished(run.pk)
    assert run.status == SyncStatus.SUCCEEDED
    assert run.created == Trace.objects.count() > 0


def test_periodic_sync_does_nothing_without_langfuse(monkeypatch):
    from labeling.tasks import sync_periodic

    monkeypatch.delenv("LANGFUSE_BASE_URL", raising=False)
    monkeypatch.delenv("LANGFUSE_HOST", raising=False)
    assert sync_periodic() == "langfuse not configured"
    assert not SyncRun.objects.exists()


def test_periodic_sync_reads_langfuse_settings_from_files_too(monkeypatch, tmp_path, langfuse):
    from labeling.tasks import sync_periodic

    url_file = tmp_path / "url"
    url_file.write_text(langfuse.url + "\n")
    monkeypatch.delenv("LANGFUSE_BASE_URL", raising=False)
    monkeypatch.setenv("LANGFUSE_BASE_URL_FILE", str(url_file))

    assert sync_periodic().startswith("sync ")  # queued, not "not configured"
    assert SyncRun.objects.count() == 1


def test_labels_never_sent_are_pushed_again_by_the_worker(langfuse, make_batch, reviewer):
    from django.utils import timezone

    from labeling.models import Label
    from labeling.tasks import push_pending_labels

    with running_worker():
        run = sync_start(since=TRAFFIC_END - timedelta(days=3), until=TRAFFIC_END)
        sync_traces.delay(run.pk)
        wait_until_finished(run.pk)
        batch = make_batch(size=2, seed=1)
        # As if the worker died before the write-back: labels exist, nothing was sent.
        for item in batch.items.all():
            Label.objects.create(item=item, reviewer=reviewer, value="strong_needed")
        Label.objects.update(updated_at=timezone.now() - timedelta(hours=1))
        assert push_pending_labels() == 2
        deadline = time.monotonic() + 30
        while Label.objects.filter(langfuse_sent_at__isnull=True).exists():
            assert time.monotonic() < deadline, "labels were not pushed"
            time.sleep(0.1)
    sent = {s["subject"]["id"] for s in langfuse.scores() if s["name"] == "routing_label"}
    assert sent == set(batch.items.values_list("trace__langfuse_id", flat=True))


@pytest.mark.parametrize("size", [40, 5])
def test_concurrent_reviewers_never_claim_the_same_item(synced, make_batch, make_user, size):
    """Eight reviewers ask for work at the same moment, on separate connections, with more
    items than reviewers and with fewer."""
    import threading

    from django.db import connection

    from labeling import services

    batch = make_batch(size=size, seed=4)
    reviewers = [make_user(f"r{n}", "reviewer") for n in range(8)]
    start, claimed, errors = threading.Barrier(len(reviewers)), [], []

    def claim(reviewer):
        try:
            start.wait()
            item = services.item_claim_next(batch=batch, reviewer=reviewer)
            claimed.append(item.pk if item else None)
        except Exception as e:  # reported below
            errors.append(e)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(r,)) for r in reviewers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    items = [pk for pk in claimed if pk is not None]
    assert len(items) == len(set(items)) == min(batch.items.count(), len(reviewers))


# --- retry timing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "retry_after,backoff,countdown",
    [
        (None, 120, 120),  # Langfuse said nothing: our backoff
        (45.0, 120, 45.0),  # it asked for less: its word
        (600.0, 30, 600.0),  # or more
        (86_400.0, 30, 900),  # a day is not believed: 15 minutes at most
        (-5.0, 30, 0.0),
    ],
)
def test_the_retry_countdown_honours_retry_after_within_bounds(retry_after, backoff, countdown):
    from labeling.tasks import retry_countdown

    assert retry_countdown(retry_after, backoff) == countdown


def held_retry_countdown(sent_at: datetime, timeout: float = 20) -> float:
    """Seconds from ``sent_at`` to the ETA of the retry the real worker now holds (a retry
    goes back through Redis with its ETA; the worker keeps it until then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held = app.control.inspect(timeout=1).scheduled() or {}
        etas = [datetime.fromisoformat(e["eta"]) for entries in held.values() for e in entries]
        if etas:
            (eta,) = etas
            return (eta - sent_at).total_seconds()
        time.sleep(0.2)
    raise AssertionError("the worker holds no retry")


def test_a_sync_task_waits_as_long_as_langfuse_asks(langfuse):
    from labeling.standin import Fault

    # Over the adapter's own wait limit, so the error reaches the task at once.
    langfuse.inject_fault(
        Fault(status=429, count=1, retry_after="600", path="/api/public/v2/observations")
    )
    run = sync_start(since=TRAFFIC_END - timedelta(days=3), until=TRAFFIC_END)
    with running_worker():
        sent_at = datetime.now(UTC)
        sync_traces.delay(run.pk)
        countdown = held_retry_countdown(sent_at)
    assert 600 <= countdown < 610
    assert SyncRun.objects.get(pk=run.pk).status == SyncStatus.RUNNING  # resumed, queued


def test_a_label_push_waits_at_most_the_bound(langfuse, synced, make_batch, reviewer):
    from labeling.models import Label
    from labeling.standin import Fault
    from labeling.tasks import MAX_RETRY_AFTER, push_label

    item = make_batch(size=1, seed=1).items.get()
    label = Label.objects.create(item=item, reviewer=reviewer, value="strong_needed")
    langfuse.inject_fault(Fault(status=503, count=1, retry_after="7200"))
    with running_worker():
        sent_at = datetime.now(UTC)
        push_label.delay(label.pk)
        countdown = held_retry_countdown(sent_at)
    assert MAX_RETRY_AFTER <= countdown < MAX_RETRY_AFTER + 10
