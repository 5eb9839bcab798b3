"""Reads for pages and the API: query sets with what their templates need, no N+1."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Count, Prefetch, Q, QuerySet

from tuning.metrics import label_metrics
from tuning.selectors import labeled_rows
from tuning.stats import Rate

from .models import (
    ACTIVE_STATES,
    DailyMisrouteCheck,
    GateEvaluation,
    PodState,
    PodStatus,
    Publication,
    Rollout,
    RolloutTransition,
    Route,
)


def rollout_list() -> QuerySet[Rollout]:
    return Rollout.objects.select_related("route", "version", "created_by").order_by(
        "-created_at", "-id"
    )


def rollout_detail() -> QuerySet[Rollout]:
    return (
        rollout_list()
        .select_related("stable_version", "publication")
        .prefetch_related(
            "gates",
            Prefetch(
                "transitions",
                queryset=RolloutTransition.objects.select_related("actor").order_by("at", "id"),
            ),
        )
    )


def active_rollouts() -> QuerySet[Rollout]:
    return rollout_list().filter(state__in=ACTIVE_STATES)


def route_list() -> QuerySet[Route]:
    return Route.objects.select_related("stable_slot", "canary_slot").order_by("name")


def publication_list() -> QuerySet[Publication]:
    return (
        Publication.objects.select_related("version", "slot", "created_by")
        .annotate(
            pod_count=Count("pods"),
            confirmed_count=Count("pods", filter=Q(pods__state=PodState.CONFIRMED)),
        )
        .order_by("-created_at", "-id")
    )


def publication_pods(publication: Publication) -> QuerySet[PodStatus]:
    return publication.pods.order_by("pod_name", "address")


def gate_history(rollout: Rollout, limit: int = 60) -> list[GateEvaluation]:
    """The latest evaluations of the rollout's gates, newest first."""
    return list(
        GateEvaluation.objects.filter(gate__rollout=rollout)
        .select_related("gate")
        .order_by("-at", "-id")[:limit]
    )


def daily_checks(rollout: Rollout, limit: int = 30) -> list[DailyMisrouteCheck]:
    """The rollout's daily misroute checks, newest day first."""
    return list(DailyMisrouteCheck.objects.filter(rollout=rollout).order_by("-day", "-id")[:limit])


@dataclass(frozen=True)
class MisrouteEstimate:
    """A version's misroute rate over one period from headline labels (tuning's metrics)."""

    rate: Rate  # value None: no labeled item; n is the effective sample size
    labeled: int  # labeled headline items of traces with a recorded tier
    start: datetime
    end: datetime


def utc_day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def misroute_estimate(version: str, day: date) -> MisrouteEstimate:
    """``version``'s misroute over the UTC ``day``: labels of the traces it routed that day.

    Headline batches only (discovery queues never feed a rate); a trace counts once; skipped
    and unresolved items and traces without a recorded tier do not count. The statistics
    (weighted rate, effective n, Wilson interval) are ``tuning``'s, as on the metrics reports.
    """
    start, end = utc_day_bounds(day)
    rows, _ = labeled_rows(start, end, version=version, headline_only=True)
    rows = [r for r in rows if r.tier]
    metrics = label_metrics(rows, lambda r: r.tier)
    return MisrouteEstimate(Rate.from_dict(metrics["misroute"]), metrics["labeled"], start, end)
