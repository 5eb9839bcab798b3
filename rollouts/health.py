"""Is the rollout automation alive? The beat's last tick and the oldest evaluation of any
watched rollout, for monitoring (``/rollouts/health``) and the pages; a stall is notified
once, by whichever process notices it first (the beat itself may be the one that stopped)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q

from . import conf, notify
from .models import Heartbeat, Rollout, RolloutState
from .selectors import STALL_INTERVALS

BEAT = "beat"


def beat_ticked(now: datetime) -> None:
    """The evaluation tick ran (called by the beat's task)."""
    Heartbeat.objects.update_or_create(name=BEAT, defaults={"at": now, "stall_notified_at": None})


@dataclass(frozen=True)
class Report:
    beat_age: float | None  # seconds since the last tick; None: never ticked
    oldest_evaluation_age: float | None  # of the watched rollouts; None: none watched
    watched: int
    interval: int

    @property
    def limit(self) -> int:
        return STALL_INTERVALS * self.interval

    @property
    def stalled(self) -> bool:
        """Automation is not running while a rollout needs it."""
        if not self.watched:
            return False
        ages = (self.beat_age, self.oldest_evaluation_age)
        return any(age is None or age > self.limit for age in ages)

    def as_dict(self) -> dict:
        return {
            "stalled": self.stalled,
            "beat_last_tick_age_seconds": self.beat_age,
            "oldest_evaluation_age_seconds": self.oldest_evaluation_age,
            "watched_rollouts": self.watched,
            "evaluate_interval_seconds": self.interval,
            "stall_after_seconds": self.limit,
        }


def report(now: datetime) -> Report:
    watched = Rollout.objects.filter(state__in=(RolloutState.STAGE, RolloutState.PAUSED))
    oldest = None
    for evaluated, started in watched.values_list("last_evaluated_at", "stage_started_at"):
        since = evaluated or started
        age = (now - since).total_seconds() if since else None
        if age is None or oldest is None or age > oldest:
            oldest = age
    beat = Heartbeat.objects.filter(name=BEAT).first()
    return Report(
        beat_age=(now - beat.at).total_seconds() if beat else None,
        oldest_evaluation_age=oldest,
        watched=watched.count(),
        interval=conf.evaluate_interval(),
    )


def notify_stall(now: datetime) -> Report:
    """The report; a stall not yet notified is notified (once per stall, for every rollout
    it leaves unwatched)."""
    found = report(now)
    if not found.stalled:
        return found
    with transaction.atomic():
        beat, _ = Heartbeat.objects.select_for_update().get_or_create(
            name=BEAT, defaults={"at": now - timedelta(days=3650)}
        )
        if beat.stall_notified_at is not None:
            return found
        beat.stall_notified_at = now
        beat.save(update_fields=["stall_notified_at"])
        message = (
            f"rollout automation stalled: no evaluation for over {found.limit} s "
            "(is the beat or every worker down?); automatic rollback is not running"
        )
        for rollout in Rollout.objects.filter(
            Q(state=RolloutState.STAGE) | Q(state=RolloutState.PAUSED)
        ).select_related("version", "route"):
            notify.notify("stalled", rollout, message)
    return found
