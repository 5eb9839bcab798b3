"""Rollouts API: reviewers read; operators publish, start, advance, pause, resume, roll back."""

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from cascade_admin.api import validated
from cascade_admin.errors import Conflict

from .. import publish, selectors, services
from ..models import (
    DailyMisrouteCheck,
    PodStatus,
    Publication,
    Rollout,
    RolloutTransition,
    Slot,
)
from . import serializers as s


class SlotViewSet(viewsets.ReadOnlyModelViewSet):
    """Deployment slots (kept in the Django admin)."""

    queryset = Slot.objects.order_by("name")
    serializer_class = s.SlotSerializer
    lookup_field = "name"


class RouteViewSet(viewsets.ReadOnlyModelViewSet):
    """Routes with the weights the console last set."""

    queryset = selectors.route_list()
    serializer_class = s.RouteSerializer
    lookup_field = "name"


class PublicationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Publication.objects.select_related("version", "slot", "created_by").prefetch_related(
        Prefetch("pods", queryset=PodStatus.objects.order_by("pod_name", "address"))
    )
    serializer_class = s.PublicationSerializer
    filterset_fields = ["state"]

    @extend_schema(request=s.PublicationCreateSerializer, responses={202: s.PublicationSerializer})
    def create(self, request):
        """Publish a frozen version to a slot; a worker pushes it and verifies every pod."""
        data = validated(s.PublicationCreateSerializer, request.data)
        publication = publish.publication_start(actor=request.user, **data)
        return Response(s.PublicationSerializer(publication).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: s.PublicationSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Run a partial or failed publication again (409 otherwise)."""
        publication = publish.publication_retry(actor=request.user, publication=self.get_object())
        return Response(s.PublicationSerializer(publication).data, status=status.HTTP_202_ACCEPTED)


class RolloutViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = selectors.rollout_list()
    serializer_class = s.RolloutSerializer
    filterset_fields = ["state", "route__name"]

    def get_queryset(self):
        if self.action == "list":
            return selectors.rollout_list()
        return (
            selectors.rollout_list()
            .select_related("stable_version")
            .prefetch_related(
                "gates",
                Prefetch("transitions", queryset=RolloutTransition.objects.order_by("at", "id")),
                Prefetch(
                    "daily_checks", queryset=DailyMisrouteCheck.objects.order_by("-day", "-id")
                ),
            )
        )

    def get_serializer_class(self):
        return s.RolloutSerializer if self.action == "list" else s.RolloutDetailSerializer

    def _detail(self, rollout: Rollout, code=status.HTTP_200_OK) -> Response:
        rollout = self.get_queryset().get(pk=rollout.pk)
        return Response(s.RolloutDetailSerializer(rollout).data, status=code)

    @extend_schema(request=s.RolloutCreateSerializer, responses={201: s.RolloutDetailSerializer})
    def create(self, request):
        """Start a canary: stage 1 weights are set before this answers."""
        data = validated(s.RolloutCreateSerializer, request.data)
        gate_specs = data.pop("gates", None)
        rollout = services.rollout_start(actor=request.user, gate_specs=gate_specs, **data)
        return self._detail(rollout, status.HTTP_201_CREATED)

    @extend_schema(request=s.AdvanceSerializer, responses=s.RolloutDetailSerializer)
    @action(detail=True, methods=["post"])
    def advance(self, request, pk=None):
        """Next stage now (or promote from the last), whatever the gates say."""
        data = validated(s.AdvanceSerializer, request.data)
        rollout = services.rollout_advance(actor=request.user, rollout=self.get_object(), **data)
        return self._detail(rollout)

    @extend_schema(request=s.ActionSerializer, responses=s.RolloutDetailSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        data = validated(s.ActionSerializer, request.data)
        rollout = services.rollout_pause(actor=request.user, rollout=self.get_object(), **data)
        return self._detail(rollout)

    @extend_schema(request=s.ActionSerializer, responses=s.RolloutDetailSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        data = validated(s.ActionSerializer, request.data)
        rollout = services.rollout_resume(actor=request.user, rollout=self.get_object(), **data)
        return self._detail(rollout)

    @extend_schema(request=s.RollbackSerializer, responses=s.RolloutDetailSerializer)
    @action(detail=True, methods=["post"])
    def rollback(self, request, pk=None):
        """Canary 0 / stable 100 now; 409 (nothing recorded) if the cluster refuses."""
        data = validated(s.RollbackSerializer, request.data)
        rollout = services.rollout_rollback(actor=request.user, rollout=self.get_object(), **data)
        return self._detail(rollout)

    @extend_schema(request=s.ActionSerializer, responses=s.RolloutDetailSerializer)
    @action(detail=True, methods=["post"])
    def adopt(self, request, pk=None):
        """Take the route's live weights (changed elsewhere) as the record; ends the drift."""
        data = validated(s.ActionSerializer, request.data)
        rollout = services.rollout_adopt_live(actor=request.user, rollout=self.get_object(), **data)
        return self._detail(rollout)

    @extend_schema(request=s.ActionSerializer, responses=s.RolloutDetailSerializer)
    @action(detail=True, methods=["post"])
    def restore(self, request, pk=None):
        """Write the recorded weights back over a change made elsewhere; ends the drift."""
        data = validated(s.ActionSerializer, request.data)
        rollout = services.rollout_restore(actor=request.user, rollout=self.get_object(), **data)
        return self._detail(rollout)

    @extend_schema(request=None, responses=s.RolloutDetailSerializer)
    @action(detail=True, methods=["post"])
    def evaluate(self, request, pk=None):
        """Evaluate the gates now and act on them, as the periodic task does."""
        rollout = services.rollout_evaluate(rollout_id=self.get_object().pk)
        return self._detail(rollout)

    @extend_schema(request=s.MisrouteCheckSettingsSerializer, responses=s.RolloutDetailSerializer)
    @action(detail=True, methods=["patch"], url_path="misroute-check")
    def misroute_check(self, request, pk=None):
        """Change the daily misroute check's threshold or minimum number of labels."""
        data = validated(s.MisrouteCheckSettingsSerializer, request.data)
        rollout = services.rollout_set_misroute_check(
            actor=request.user,
            rollout=self.get_object(),
            threshold=data.get("misroute_threshold"),
            min_labels=data.get("misroute_min_labels"),
        )
        return self._detail(rollout)

    @extend_schema(request=s.GatesChangeSerializer, responses=s.RolloutDetailSerializer)
    @action(detail=True, methods=["patch"])
    def gates(self, request, pk=None):
        """Change gates of an active rollout by name, or add gates; none is ever dropped."""
        data = validated(s.GatesChangeSerializer, request.data)
        rollout = services.rollout_set_gates(
            actor=request.user,
            rollout=self.get_object(),
            gate_specs=data["gates"],
            reason=data.get("reason", ""),
        )
        return self._detail(rollout)

    @extend_schema(request=s.DailyCheckRunSerializer, responses=s.RolloutDetailSerializer)
    @action(detail=True, methods=["post"], url_path="daily-check")
    def daily_check(self, request, pk=None):
        """Run the daily misroute check now (default: yesterday, UTC) and act on it; 409 when
        the rollout is neither in a stage nor paused."""
        data = validated(s.DailyCheckRunSerializer, request.data)
        rollout = self.get_object()
        if services.rollout_daily_check(rollout_id=rollout.pk, day=data.get("day")) is None:
            raise Conflict(f"Rollout #{rollout.pk} is {rollout.state}: nothing to check.")
        return self._detail(rollout)
