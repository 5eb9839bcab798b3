"""Reads for pages and the API: query sets with what their templates need, no N+1."""

from django.db.models import Count, Prefetch, Q, QuerySet

from .models import (
    ACTIVE_STATES,
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
