"""Reviewers' labels, and operators' adjudicated final values, written back to Langfuse as a
categorical score on the trace."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.db.models import F
from django.utils import timezone

from .langfuse_adapter import (
    SCORE_ID_NAMESPACE,
    LabelScore,
    LangfuseAdapter,
    LangfuseConfigError,
    LangfuseError,
)
from .models import BatchItem, Label, LabelValue, ScoreRetraction

log = logging.getLogger(__name__)


def score_id(label: Label) -> str:
    """One stable score per console label: resending it updates, never duplicates."""
    return str(uuid.uuid5(SCORE_ID_NAMESPACE, f"cascade-label:{label.pk}"))


def final_score_id(item: BatchItem) -> str:
    """One stable score per adjudicated item, beside the reviewers' own label scores."""
    return str(uuid.uuid5(SCORE_ID_NAMESPACE, f"cascade-final:{item.pk}"))


def _send(score: LabelScore, adapter: LangfuseAdapter | None) -> str | None:
    """Write one score; None when accepted, else the permanent error to keep.

    Retryable failures raise LangfuseError so the caller (a Celery task) can try again later.
    """
    own = adapter is None
    try:
        adapter = adapter or LangfuseAdapter.from_env()
    except LangfuseConfigError as e:
        # No Langfuse (e.g. the embedded console): the label stands; the error is kept.
        return f"Langfuse is not configured: {e}"[:2000]
    try:
        result = adapter.write_label_scores([score])
    except LangfuseError as e:
        if e.retryable:
            raise
        return str(e)[:2000]
    finally:
        if own:
            adapter.close()
    return None if result.ok else "; ".join(result.errors)[:2000]


def label_push(label_id: int, *, adapter: LangfuseAdapter | None = None) -> Label | None:
    """Send one label. Permanent failures are recorded on the label; retryable ones raise
    LangfuseError so the caller (a Celery task) can try again later. None when the label
    was undone: before sending nothing goes out, after it the score is taken back."""
    label = Label.objects.select_related("item__trace", "reviewer").filter(pk=label_id).first()
    if label is None:
        return None
    if label.value == LabelValue.SKIPPED:
        return label
    error = _send(
        LabelScore(
            trace_id=label.item.trace.langfuse_id,
            value=label.value,
            comment=label.comment or None,
            score_id=score_id(label),
            timestamp=label.created_at,
            metadata={"reviewer": label.reviewer.get_username(), "batch": label.item.batch_id},
        ),
        adapter,
    )
    # Only if the label is still what we sent: a newer value has its own push on the way.
    same = Label.objects.filter(pk=label.pk, updated_at=label.updated_at)
    if error is None:
        kept = same.update(langfuse_sent_at=timezone.now(), langfuse_error="")
    else:
        kept = same.update(langfuse_error=error)
    if not kept and not Label.objects.filter(pk=label.pk).exists():
        # Undone while on its way: the undo's own retraction may have run before this write.
        from .tasks import retract_label_later

        retract_label_later(score_id(label))
        return None
    label.refresh_from_db()
    return label


def label_retract(label_score_id: str, *, adapter: LangfuseAdapter | None = None) -> bool:
    """Ask Langfuse to delete an undone label's score. True when it took the request (202:
    the score goes later; ``retractions_verify`` confirms it); False when there is nothing
    to ask (no Langfuse configured).

    Retryable failures raise LangfuseError for the task to try again; a permanent one is
    logged and the retraction stays pending.
    """
    own = adapter is None
    try:
        adapter = adapter or LangfuseAdapter.from_env()
    except LangfuseConfigError as e:
        log.warning("undone label's score %s: Langfuse is not configured: %s", label_score_id, e)
        ScoreRetraction.objects.filter(score_id=label_score_id).update(
            confirmed_at=timezone.now()  # no Langfuse, so no score to take back
        )
        return False
    try:
        adapter.delete_score(label_score_id)
    except LangfuseError as e:
        if e.retryable:
            raise
        log.warning("undone label's score %s stays in Langfuse: %s", label_score_id, e)
        return False
    finally:
        if own:
            adapter.close()
    retraction, _ = ScoreRetraction.objects.get_or_create(score_id=label_score_id)
    ScoreRetraction.objects.filter(pk=retraction.pk).update(
        sent_at=timezone.now(), attempts=F("attempts") + 1
    )
    return True


# Langfuse deletes a score some seconds after it answered 202 (a queue in between).
VERIFY_AFTER = timedelta(seconds=30)  # before this, a score still there proves nothing
RESEND_AFTER = timedelta(minutes=10)  # a score still there this long after: ask again


def retractions_verify(adapter: LangfuseAdapter, *, now=None) -> dict[str, int]:
    """Check the pending retractions: a score Langfuse no longer has is confirmed gone; one
    still there long after its delete is deleted again. Run after each sync."""
    now = now or timezone.now()
    pending = list(
        ScoreRetraction.objects.filter(
            confirmed_at__isnull=True, sent_at__isnull=False, sent_at__lte=now - VERIFY_AFTER
        )
    )
    if not pending:
        return {"confirmed": 0, "resent": 0}
    present = {score.id for score in adapter.fetch_scores_by_id([r.score_id for r in pending])}
    gone = [r.pk for r in pending if r.score_id not in present]
    ScoreRetraction.objects.filter(pk__in=gone).update(confirmed_at=now)
    stale = [r for r in pending if r.score_id in present and r.sent_at <= now - RESEND_AFTER]
    for retraction in stale:
        label_retract(retraction.score_id, adapter=adapter)
    return {"confirmed": len(gone), "resent": len(stale)}


def final_push(item_id: int, *, adapter: LangfuseAdapter | None = None) -> BatchItem:
    """Send an item's adjudicated final value, as ``label_push`` sends a label."""
    item = BatchItem.objects.select_related("trace", "adjudicated_by").get(pk=item_id)
    if not item.final_value:
        return item
    error = _send(
        LabelScore(
            trace_id=item.trace.langfuse_id,
            value=item.final_value,
            score_id=final_score_id(item),
            timestamp=item.adjudicated_at,
            metadata={
                "final": True,
                "adjudicated_by": item.adjudicated_by.get_username()
                if item.adjudicated_by
                else None,
                "batch": item.batch_id,
            },
        ),
        adapter,
    )
    if error is None:
        BatchItem.objects.filter(pk=item.pk).update(final_sent_at=timezone.now(), final_error="")
    else:
        BatchItem.objects.filter(pk=item.pk).update(final_error=error)
    item.refresh_from_db()
    return item
