"""Thin Celery tasks: ids in, a service does the work, retries live here."""

from celery import shared_task

from .langfuse_adapter import LangfuseError
from .models import SyncStatus
from .sync import sync_execute, sync_resume
from .writeback import label_push

SYNC_RETRY_DELAYS = (30, 120, 600)  # seconds; Langfuse outages are usually short


@shared_task(bind=True, acks_late=True, max_retries=len(SYNC_RETRY_DELAYS))
def sync_traces(self, run_id: int) -> dict:
    """Run (or continue) a sync; a retryable failure resumes from its cursor later."""
    run = sync_execute(run_id)
    if (
        run.status == SyncStatus.FAILED
        and run.retryable
        and self.request.retries < self.max_retries
    ):
        sync_resume(run=run)
        raise self.retry(countdown=SYNC_RETRY_DELAYS[self.request.retries])
    return {"run": run.pk, "status": run.status, "created": run.created, "skipped": run.skipped}


@shared_task(bind=True, acks_late=True, max_retries=6)
def push_label(self, label_id: int) -> None:
    """Write one label to Langfuse; Langfuse being down only delays it."""
    try:
        label_push(label_id)
    except LangfuseError as e:
        raise self.retry(countdown=min(30 * 2**self.request.retries, 3600), exc=e) from e
