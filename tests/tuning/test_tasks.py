"""Reports and jobs on a real Celery worker with the real Redis broker."""

import time

import pytest

from labeling.models import Trace
from tests.celery_worker import running_worker
from tuning import services
from tuning.models import Job, JobStatus, MetricReport

from .conftest import PERIOD

pytestmark = pytest.mark.django_db(transaction=True)
# Generous: worker start-up and a report share two busy cores with the rest of CI.
TIMEOUT = 180


def wait_for(model, pk, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = model.objects.get(pk=pk)
        if row.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            return row
        time.sleep(0.1)
    raise AssertionError(f"{model.__name__} {pk} unfinished after {timeout} s")


def test_a_worker_computes_a_report_queued_on_commit(synced, operator):
    with running_worker():
        report = services.report_request(
            actor=operator, version="v7", period_start=PERIOD[0], period_end=PERIOD[1]
        )
        report = wait_for(MetricReport, report.pk)
    assert report.status == JobStatus.SUCCEEDED, report.error
    assert (
        report.result["traffic"]["requests"]
        == Trace.objects.filter(classifier_version="v7").count()
    )
    assert report.computed_at is not None


def test_a_worker_runs_a_replay_job(synced, operator, v7):
    with running_worker():
        job = services.job_start(
            actor=operator,
            kind="replay",
            params={
                "version": "v7",
                "since": PERIOD[0].isoformat(),
                "until": PERIOD[1].isoformat(),
            },
        )
        job = wait_for(Job, job.pk)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result["traffic"]["requests"] == Trace.objects.count()


def test_a_report_asked_for_while_computing_is_computed_again(synced, operator, monkeypatch):
    """The request during the run is not lost: the worker runs the report once more."""
    from tuning import metrics

    real_compute, calls = metrics.compute, []

    def compute_while_someone_asks_again(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            # An operator (or new labels) asks for the report while it is being computed.
            services.report_request(
                actor=operator, version="v7", period_start=PERIOD[0], period_end=PERIOD[1]
            )
        return real_compute(*args, **kwargs)

    monkeypatch.setattr(metrics, "compute", compute_while_someone_asks_again)
    with running_worker():
        report = services.report_request(
            actor=operator, version="v7", period_start=PERIOD[0], period_end=PERIOD[1]
        )
        deadline = time.monotonic() + TIMEOUT
        while len(calls) < 2 or MetricReport.objects.get(pk=report.pk).status != "succeeded":
            assert time.monotonic() < deadline, f"computed {len(calls)} time(s)"
            time.sleep(0.1)
    assert len(calls) == 2
