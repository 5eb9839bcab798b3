"""Reviewers' labels written back to Langfuse as a categorical score on the trace."""

from __future__ import annotations

import uuid

from django.utils import timezone

from .langfuse_adapter import SCORE_ID_NAMESPACE, LabelScore, LangfuseAdapter, LangfuseError
from .models import Label, LabelValue


def score_id(label: Label) -> str:
    """One stable score per console label: resending it updates, never duplicates."""
    return str(uuid.uuid5(SCORE_ID_NAMESPACE, f"cascade-label:{label.pk}"))


def label_push(label_id: int, *, adapter: LangfuseAdapter | None = None) -> Label:
    """Send one label. Permanent failures are recorded on the label; retryable ones raise
    LangfuseError so the caller (a Celery task) can try again later."""
    label = Label.objects.select_related("item__trace", "reviewer").get(pk=label_id)
    if label.value == LabelValue.SKIPPED:
        return label
    own = adapter is None
    adapter = adapter or LangfuseAdapter.from_env()
    try:
        result = adapter.write_label_scores(
            [
                LabelScore(
                    trace_id=label.item.trace.langfuse_id,
                    value=label.value,
                    comment=label.comment or None,
                    score_id=score_id(label),
                    timestamp=label.created_at,
                    metadata={
                        "reviewer": label.reviewer.get_username(),
                        "batch": label.item.batch_id,
                    },
                )
            ]
        )
    except LangfuseError as e:
        if e.retryable:
            raise
        Label.objects.filter(pk=label.pk).update(langfuse_error=str(e)[:2000])
        label.refresh_from_db()
        return label
    finally:
        if own:
            adapter.close()
    # Only if the label is still what we sent: a newer value has its own push on the way.
    same = Label.objects.filter(pk=label.pk, updated_at=label.updated_at)
    if result.ok:
        same.update(langfuse_sent_at=timezone.now(), langfuse_error="")
    else:
        same.update(langfuse_error="; ".join(result.errors)[:2000])
    label.refresh_from_db()
    return label
