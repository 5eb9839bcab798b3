"""Reads for pages and the API: query sets with what their templates need, no N+1."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Count, F, IntegerField, Prefetch, Q, QuerySet, Window
from django.db.models.functions import Lag, Mod, RowNumber

from tuning.metrics import label_metrics
from tuning.selectors import labeled_rows
from tuning.stats import Rate

from . import conf
from .models import (
    ACTIVE_STATES,
    DailyMisrouteCheck,
    GateEvaluation,
    IntentState,
    PodState,
    PodStatus,
    Publication,
    PublicationState,
    Rollout,
    RolloutState,
    RolloutTransition,
    Route,
    WeightIntent,
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


def routes_with_serving() -> list[Route]:
    """Routes, each slot carrying ``serves``: the version its pods serve (None: unknown)."""
    routes = list(route_list())
    slot_ids = {s for r in routes for s in (r.stable_slot_id, r.canary_slot_id) if s}
    serving: dict[int, str] = {}
    for slot_id, name in (
        Publication.objects.filter(slot_id__in=slot_ids, state=PublicationState.SUCCEEDED)
        .order_by("slot_id", "-finished_at", "-id")
        .values_list("slot_id", "version__name")
    ):
        serving.setdefault(slot_id, name)
    for route in routes:
        route.stable_serves = serving.get(route.stable_slot_id) if route.stable_slot_id else None
        route.canary_serves = serving.get(route.canary_slot_id) if route.canary_slot_id else None
    return routes


def publication_list() -> QuerySet[Publication]:
    return (
        Publication.objects.select_related("version", "slot", "created_by")
        .annotate(
            pod_count=Count("pods"),
            confirmed_count=Count("pods", filter=Q(pods__state=PodState.CONFIRMED)),
        )
        .order_by("-created_at", "-id")
    )


def slot_serving(slot) -> Publication | None:
    """The publication whose config ``slot``'s pods serve: the last one to succeed there."""
    return (
        Publication.objects.filter(slot=slot, state=PublicationState.SUCCEEDED)
        .select_related("version")
        .order_by("-finished_at", "-id")
        .first()
    )


def publication_pods(publication: Publication) -> QuerySet[PodStatus]:
    return publication.pods.order_by("pod_name", "address")


#: Points per gate and stage on the rollout page (a 48 h stage at 30 s has ~5,800 evaluations).
HISTORY_POINTS = 40  # the live block re-renders every 5 s: keep it a page, not a log


def _stage_window(expression) -> Window:
    return Window(
        expression,
        partition_by=[F("gate_id"), F("stage")],
        order_by=[F("at").asc(), F("id").asc()],
    )


def _evenly(evaluations: QuerySet[GateEvaluation], points: int) -> QuerySet:
    """The ids of every n-th of ``evaluations`` per gate and stage, n chosen so that at most
    ``points`` remain, plus each stage's latest; all of them when there are no more."""
    total = Window(Count("id"), partition_by=[F("gate_id"), F("stage")])
    step = (F("total") + (points - 1)) / points  # integer division: ceil(total / points)
    return (
        evaluations.annotate(position=_stage_window(RowNumber()), total=total)
        .alias(offset=Mod(F("position") - 1, step, output_field=IntegerField()))
        .filter(Q(offset=0) | Q(position=F("total")))
        .values("id")
    )


def gate_history(rollout: Rollout, points: int = HISTORY_POINTS) -> list[GateEvaluation]:
    """The rollout's gate evaluations, newest first, thinned in SQL to a bounded history.

    Per gate and stage: every result change (the first of each run of pass/fail/unknown)
    and the latest, with the rest sampled evenly to at most ``points``. Changes are thinned
    evenly too, only for a gate that flaps more than ``points`` times in a stage, so the page
    stays bounded (at most ``2 * (points + 1)`` rows per gate and stage). One query.
    """
    evaluations = GateEvaluation.objects.filter(gate__rollout=rollout)
    changes = evaluations.annotate(previous=_stage_window(Lag("result"))).filter(
        Q(previous__isnull=True) | ~Q(previous=F("result"))
    )
    change_rows = GateEvaluation.objects.filter(id__in=changes.values("id"))
    kept = Q(id__in=_evenly(evaluations, points)) | Q(id__in=_evenly(change_rows, points))
    return list(GateEvaluation.objects.filter(kept).select_related("gate").order_by("-at", "-id"))


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


STALL_INTERVALS = 3  # an evaluation older than this many intervals is a stall


@dataclass(frozen=True)
class EvaluationAge:
    """How long ago a watched rollout was last evaluated, and whether that is a stall."""

    seconds: float | None  # None: never evaluated
    interval: int
    stalled: bool

    @property
    def text(self) -> str:
        if self.seconds is None:
            return "never"
        seconds = int(self.seconds)
        if seconds < 120:
            return f"{seconds} s ago"
        if seconds < 7200:
            return f"{seconds // 60} min ago"
        return f"{seconds // 3600} h ago"


def evaluation_age(rollout: Rollout, now: datetime) -> EvaluationAge | None:
    """None unless the rollout is watched (in a stage or paused)."""
    if rollout.state not in (RolloutState.STAGE, RolloutState.PAUSED):
        return None
    interval = conf.evaluate_interval()
    since = rollout.last_evaluated_at or rollout.stage_started_at
    seconds = (now - since).total_seconds() if since else None
    limit = STALL_INTERVALS * interval
    stalled = seconds is None or seconds > limit
    if rollout.last_evaluated_at is None:
        seconds = None
    return EvaluationAge(seconds, interval, stalled)


def pending_intent(rollout: Rollout) -> WeightIntent | None:
    """A weight change whose outcome is not known yet (shown until it is settled)."""
    return rollout.intents.filter(state=IntentState.PENDING).first()
