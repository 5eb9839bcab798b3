"""The sync task on a real Celery worker with the real Redis broker."""

import time
from datetime import timedelta

import pytest

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
