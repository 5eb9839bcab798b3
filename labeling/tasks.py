"""Thin Celery tasks: ids in, a service does the work, retries live here."""

from datetime import timedelta

from celery import shared_task
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from cascade_admin.errors import Conflict

from .langfuse_adapter import LangfuseConfigError, LangfuseError, settings_from_env
from .models import BatchItem, Label, LabelValue, SyncStatus
from .sync import sync_execute, sync_resume, sync_start
from .writeback import final_push, label_push, label_retract

SYNC_RETRY_DELAYS = (30, 120, 600)  # seconds; Langfuse outages are usually short
# A Retry-After past this is not believed: a bad header must not park a task for hours.
MAX_RETRY_AFTER = 15 * 60


def retry_countdown(retry_after: float | None, backoff: float) -> float:
    """Seconds until the next try: what Langfuse asked for (bounded), else our backoff."""
    if retry_after is None:
        return backoff
    return min(max(retry_after, 0.0), MAX_RETRY_AFTER)


def push_backoff(retries: int) -> float:
    return min(30 * 2**retries, 3600)


# Langfuse stores a written score asynchronously: a delete sent at once could find nothing
# yet and leave the score behind, so an undone label's score is deleted a minute later.
RETRACT_DELAY = 60


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
        backoff = SYNC_RETRY_DELAYS[self.request.retries]
        raise self.retry(countdown=retry_countdown(run.retry_after, backoff))
    return {"run": run.pk, "status": run.status, "created": run.created, "skipped": run.skipped}


def _write_back(task, write, *args) -> None:
    """Run one write to Langfuse; a retryable failure tries again later (Langfuse being
    down only delays a write), a permanent one is kept by ``write`` itself."""
    try:
        write(*args)
    except LangfuseError as e:
        countdown = retry_countdown(e.retry_after, push_backoff(task.request.retries))
        raise task.retry(countdown=countdown, exc=e) from e


@shared_task(bind=True, acks_late=True, max_retries=6)
def push_label(self, label_id: int) -> None:
    """Write one label to Langfuse."""
    _write_back(self, label_push, label_id)


@shared_task(bind=True, acks_late=True, max_retries=6)
def push_final(self, item_id: int) -> None:
    """Write one adjudicated final value to Langfuse."""
    _write_back(self, final_push, item_id)


@shared_task(bind=True, acks_late=True, max_retries=6)
def retract_label(self, score_id: str) -> None:
    """Delete an undone label's score from Langfuse; one never sent counts as deleted."""
    _write_back(self, label_retract, score_id)


def retract_label_later(score_id: str) -> None:
    retract_label.apply_async((score_id,), countdown=RETRACT_DELAY)


@shared_task
def sync_periodic() -> str:
    """Beat: pull new traces when Langfuse is configured and no sync is running."""
    try:
        settings_from_env()  # the same reading the sync does, *_FILE variables included
    except LangfuseConfigError:
        return "langfuse not configured"
    try:
        run = sync_queue()
    except Conflict as e:
        return str(e)
    return f"sync {run.pk} queued"


def sync_queue(*, actor=None, since=None, until=None):
    """Open a sync run (or resume the interrupted one of that window) and queue it for a
    worker once the transaction commits: the one way the pages, the API and the beat
    start a sync."""
    run = sync_start(actor=actor, since=since, until=until)
    transaction.on_commit(lambda: sync_traces.delay(run.pk))
    return run


# A write-back queued this long ago and still not done was lost (worker gone, broker
# flushed): the periodic re-send queues it again. Younger ones are still in the queue.
QUEUED_LOST_AFTER = timedelta(hours=1)


def queue_label_push(label_id: int) -> None:
    """Queue one label's write-back and mark it queued (so it is not queued twice)."""
    Label.objects.filter(pk=label_id).update(langfuse_queued_at=timezone.now())
    push_label.delay(label_id)


@shared_task
def push_pending_labels() -> int:
    """Beat: labels and final values whose write-back never happened (worker lost, broker
    down) go again. A label still waiting in the queue is left there: under load the
    queue drains late, and queuing it again would only make it longer."""
    now = timezone.now()
    stale = now - timedelta(minutes=10)
    pending = list(
        Label.objects.filter(langfuse_sent_at__isnull=True, langfuse_error="", updated_at__lt=stale)
        .filter(
            Q(langfuse_queued_at__isnull=True) | Q(langfuse_queued_at__lt=now - QUEUED_LOST_AFTER)
        )
        .exclude(value=LabelValue.SKIPPED)
        .values_list("pk", flat=True)[:500]
    )
    for label_id in pending:
        queue_label_push(label_id)
    finals = list(
        BatchItem.objects.filter(
            final_sent_at__isnull=True, final_error="", adjudicated_at__lt=stale
        )
        .exclude(final_value="")
        .values_list("pk", flat=True)[:500]
    )
    for item_id in finals:
        push_final.delay(item_id)
    return len(pending) + len(finals)
