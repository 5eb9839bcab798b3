"""Thin Celery tasks: ids in, a service does the work."""

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from . import selectors, services


@shared_task(acks_late=True, time_limit=1800)
def compute_report(report_id: int) -> dict:
    report = services.report_compute(report_id)
    if report is None:
        return {"report": report_id, "skipped": "claimed by another worker"}
    return {"report": report.pk, "status": report.status}


@shared_task(acks_late=True, time_limit=3600)
def run_job(job_id: int) -> dict:
    job = services.job_run(job_id)
    if job is None:
        return {"job": job_id, "skipped": "claimed by another worker"}
    return {"job": job.pk, "status": job.status}


@shared_task(time_limit=300)
def refresh_stale_reports() -> dict:
    """Recompute reports whose labels changed since they were computed.

    Only reports that recent labeling touched are checked (selectors.refreshable_reports):
    the rest cannot have changed since the last tick.
    """
    queued = []
    for report in selectors.refreshable_reports(timezone.now()):
        if selectors.labels_changed_since(report):
            services.report_request(
                actor=None,
                version=report.version,
                period_start=report.period_start,
                period_end=report.period_end,
            )
            queued.append(report.pk)
    return {"queued": queued}


@shared_task(time_limit=300)
def nightly_reports() -> dict:
    """Yesterday's and the last seven days' reports (UTC days) of every version with traffic."""
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    queued = []
    for version in selectors.versions_with_traffic():
        for start in (today - timedelta(days=1), today - timedelta(days=7)):
            report = services.report_request(
                actor=None, version=version, period_start=start, period_end=today
            )
            queued.append(report.pk)
    return {"queued": queued}
