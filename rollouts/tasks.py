"""Thin Celery tasks: ids in, a service does the work, retries live here."""

from datetime import date

from celery import shared_task
from celery.signals import worker_ready
from django.utils import timezone

from . import notify
from .health import beat_ticked
from .publish import publication_execute, stale_publication_ids
from .services import rollout_daily_check, rollout_evaluate, settle_pending, watched_rollout_ids


@shared_task(acks_late=True, time_limit=300)
def publish_config(publication_id: int) -> dict:
    """One attempt of a publication; partial or failed ones are retried by an operator."""
    publication = publication_execute(publication_id)
    return {"publication": publication.pk, "state": publication.state}


@shared_task(acks_late=True, time_limit=120)
def evaluate_rollout(rollout_id: int) -> dict:
    rollout = rollout_evaluate(rollout_id=rollout_id)
    return {"rollout": rollout.pk, "state": rollout.state, "stage": rollout.stage}


@shared_task(time_limit=120)
def settle_intents() -> dict:
    """Weight changes whose answer was lost (or whose worker died) settled by reading the
    routes back."""
    return {"pending": settle_pending()}


@shared_task(time_limit=60)
def resume_publications() -> list[int]:
    """Beat (and a starting worker): take over publications whose worker died."""
    ids = stale_publication_ids()
    for publication_id in ids:
        publish_config.delay(publication_id)
    return ids


@worker_ready.connect
def _settle_at_start(sender=None, **kwargs) -> None:
    # A worker that died mid-change left its intent pending, or its publication running:
    # the next one to start settles and takes them over.
    settle_intents.delay()
    resume_publications.delay()


@shared_task(time_limit=25, soft_time_limit=20)
def evaluate_rollouts() -> list[int]:
    """Beat: queue an evaluation of every rollout in a stage or paused (paused ones only
    for their rollback triggers).

    One task per rollout, each with its own time limit: a slow Prometheus on one rollout
    never cuts another's decision short. The row lock in ``rollout_evaluate`` keeps
    overlapping ticks from acting twice.
    """
    beat_ticked(timezone.now())
    ids = watched_rollout_ids()
    for rollout_id in ids:
        evaluate_rollout.delay(rollout_id)
    return ids


@shared_task(time_limit=600, soft_time_limit=540)
def daily_misroute_checks() -> list[dict]:
    """Beat, once a day: the previous UTC day's misroute check of every rollout in a stage
    or paused. A rollback the cluster refused for now is retried by ``daily_misroute_check``."""
    done = []
    for rollout_id in watched_rollout_ids():
        check = rollout_daily_check(rollout_id=rollout_id)
        if check is None:
            continue
        if check.action == "retry":
            daily_misroute_check.apply_async((rollout_id, check.day.isoformat()), countdown=60)
        done.append({"rollout": rollout_id, "result": check.result, "action": check.action})
    return done


@shared_task(bind=True, max_retries=10, acks_late=True, time_limit=300)
def daily_misroute_check(self, rollout_id: int, day: str | None = None) -> dict | None:
    """One rollout's daily check (``day``: ISO date, default yesterday); retried while the
    rollback it calls for is refused for now (timeouts, 5xx, 409)."""
    check = rollout_daily_check(rollout_id=rollout_id, day=date.fromisoformat(day) if day else None)
    if check is None:
        return None
    if check.action == "retry" and self.request.retries < self.max_retries:
        raise self.retry(countdown=min(60 * 2**self.request.retries, 1800))
    return {"rollout": rollout_id, "result": check.result, "action": check.action}


@shared_task(bind=True, max_retries=5, acks_late=True)
def send_notification(self, body: dict) -> None:
    from . import conf

    url = conf.notify_webhook_url()
    if not url:
        return
    try:
        notify.post(url, body)
    except notify.WebhookError as exc:
        if exc.retryable and self.request.retries < self.max_retries:
            raise self.retry(countdown=min(10 * 2**self.request.retries, 600), exc=exc) from exc
        raise
