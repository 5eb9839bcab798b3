"""Shapes only: validation of input, no logic (services decide)."""

from typing import TYPE_CHECKING

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from routing.models import ClassifierVersion, VersionStatus

from ..models import (
    Comparator,
    DailyMisrouteCheck,
    Gate,
    GateResult,
    IntentState,
    PodState,
    PodStatus,
    Publication,
    PublicationState,
    Rollout,
    RolloutState,
    RolloutTransition,
    Route,
    Slot,
    WeightIntent,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class SlotSerializer(serializers.ModelSerializer):
    class Meta:
        model = Slot
        fields = ["name", "namespace", "service", "deployment", "configmap", "configmap_key",
                  "pod_selector", "admin_port_name", "admin_port"]  # fmt: skip


class RouteSerializer(serializers.ModelSerializer):
    stable_slot: "serializers.SlugRelatedField[Slot]" = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    canary_slot: "serializers.SlugRelatedField[Slot]" = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )

    class Meta:
        model = Route
        fields = ["name", "namespace", "httproute", "rule_index", "stable_backend",
                  "canary_backend", "stable_slot", "canary_slot", "stable_weight",
                  "canary_weight", "weights_updated_at"]  # fmt: skip


def _state(choices) -> serializers.CharField:
    # Plain strings: three models have a "state" field with different choices, and their
    # enums would collide in the OpenAPI schema.
    return serializers.CharField(read_only=True, help_text=" | ".join(choices.values))


class PodStatusSerializer(serializers.ModelSerializer):
    state = _state(PodState)

    class Meta:
        model = PodStatus
        fields = ["pod_name", "address", "state", "reported_version", "reported_sha256", "error",
                  "updated_at"]  # fmt: skip


class PublicationSerializer(serializers.ModelSerializer):
    version: "serializers.SlugRelatedField[ClassifierVersion]" = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    slot: "serializers.SlugRelatedField[Slot]" = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    created_by: "serializers.StringRelatedField[User]" = serializers.StringRelatedField()
    pods = PodStatusSerializer(many=True, read_only=True)
    state = _state(PublicationState)
    retryable = serializers.BooleanField(read_only=True)

    class Meta:
        model = Publication
        fields = ["id", "version", "slot", "sha256", "state", "retryable", "attempts",
                  "configmap_outcome", "configmap_resource_version", "error", "created_by",
                  "created_at", "started_at", "finished_at", "pods"]  # fmt: skip


class PublicationCreateSerializer(serializers.Serializer):
    version = serializers.SlugRelatedField(
        slug_field="name", queryset=ClassifierVersion.objects.filter(status=VersionStatus.FROZEN)
    )
    slot = serializers.SlugRelatedField(slug_field="name", queryset=Slot.objects.all())


class GateSerializer(serializers.ModelSerializer):
    class Meta:
        model = Gate
        fields = ["name", "query", "requests_query", "window", "comparator", "threshold",
                  "min_requests", "rollback_after_seconds", "last_stage_only", "last_result",
                  "last_value", "last_requests", "last_detail", "last_evaluated_at",
                  "failing_since", "passing_since", "unknown_rolls_back"]  # fmt: skip


class GateSpecSerializer(serializers.Serializer):
    name = serializers.SlugField(max_length=50)
    query = serializers.CharField()
    requests_query = serializers.CharField(required=False)
    window = serializers.CharField(required=False, max_length=10)
    comparator = serializers.ChoiceField(choices=Comparator.choices, default="lt")
    threshold = serializers.FloatField()
    min_requests = serializers.IntegerField(min_value=0, default=100)
    rollback_after_seconds = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    last_stage_only = serializers.BooleanField(default=False)
    unknown_rolls_back = serializers.BooleanField(default=True)


class TransitionSerializer(serializers.ModelSerializer):
    class Meta:
        model = RolloutTransition
        fields = ["action", "from_state", "to_state", "from_stage", "to_stage", "canary_weight",
                  "stable_weight", "actor_name", "reason", "at"]  # fmt: skip


class RolloutSerializer(serializers.ModelSerializer):
    state = _state(RolloutState)
    route: "serializers.SlugRelatedField[Route]" = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    version: "serializers.SlugRelatedField[ClassifierVersion]" = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    created_by: "serializers.StringRelatedField[User]" = serializers.StringRelatedField()

    class Meta:
        model = Rollout
        fields = ["id", "route", "version", "state", "stage", "steps", "window_seconds",
                  "stable_backend", "canary_backend", "stable_weight", "canary_weight",
                  "stage_started_at", "held_since", "status_note", "misroute_threshold",
                  "misroute_min_labels", "created_by", "created_at", "finished_at",
                  "drift_live", "drift_since", "last_evaluated_at"]  # fmt: skip


class DailyCheckSerializer(serializers.ModelSerializer):
    result = _state(GateResult)

    class Meta:
        model = DailyMisrouteCheck
        fields = ["day", "result", "misroute", "low", "high", "n", "labeled", "threshold",
                  "min_labels", "action", "detail", "at"]  # fmt: skip


class IntentSerializer(serializers.ModelSerializer):
    class Meta:
        model = WeightIntent
        fields = ["id", "action", "target", "previous", "state", "detail", "created_at",
                  "settled_at", "actor_name"]  # fmt: skip


class RolloutDetailSerializer(RolloutSerializer):
    stable_version: "serializers.SlugRelatedField[ClassifierVersion]" = (
        serializers.SlugRelatedField(slug_field="name", read_only=True)
    )
    gates = GateSerializer(many=True, read_only=True)
    transitions = TransitionSerializer(many=True, read_only=True)
    daily_checks = DailyCheckSerializer(many=True, read_only=True)
    pending_change = serializers.SerializerMethodField(
        help_text="A weight change whose outcome is not known yet (null: none)."
    )

    class Meta(RolloutSerializer.Meta):
        fields = [*RolloutSerializer.Meta.fields, "stable_version", "publication", "gates",
                  "transitions", "daily_checks", "pending_change"]  # fmt: skip

    @extend_schema_field(IntentSerializer(allow_null=True))
    def get_pending_change(self, rollout):
        intent = rollout.intents.filter(state=IntentState.PENDING).first()
        return IntentSerializer(intent).data if intent else None


class GateChangeSerializer(serializers.Serializer):
    """A gate to change (by name; only the fields given) or to add (query and threshold)."""

    name = serializers.SlugField(max_length=50)
    query = serializers.CharField(required=False)
    requests_query = serializers.CharField(required=False)
    window = serializers.CharField(required=False, max_length=10)
    comparator = serializers.ChoiceField(choices=Comparator.choices, required=False)
    threshold = serializers.FloatField(required=False)
    min_requests = serializers.IntegerField(min_value=0, required=False)
    rollback_after_seconds = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    last_stage_only = serializers.BooleanField(required=False)
    unknown_rolls_back = serializers.BooleanField(
        required=False, help_text="Failing, then unknown for the rollback delay, rolls back."
    )


class GatesChangeSerializer(serializers.Serializer):
    gates = GateChangeSerializer(many=True, allow_empty=False)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500)


class MisrouteCheckSettingsSerializer(serializers.Serializer):
    misroute_threshold = serializers.FloatField(
        required=False, min_value=0, max_value=1,
        help_text="Roll back when the daily misroute estimate exceeds this (0.08 is 8%).",
    )  # fmt: skip
    misroute_min_labels = serializers.IntegerField(
        required=False, min_value=1, help_text="Fewer labels (effective n) is unknown."
    )


class DailyCheckRunSerializer(serializers.Serializer):
    day = serializers.DateField(
        required=False, help_text="The UTC day to judge; default yesterday (UTC)."
    )


class RolloutCreateSerializer(serializers.Serializer):
    route = serializers.SlugRelatedField(slug_field="name", queryset=Route.objects.all())
    version = serializers.SlugRelatedField(
        slug_field="name", queryset=ClassifierVersion.objects.all()
    )
    steps = serializers.ListField(child=serializers.IntegerField(), required=False)
    window_seconds = serializers.IntegerField(min_value=1, required=False)
    gates = GateSpecSerializer(many=True, required=False)
    misroute_threshold = serializers.FloatField(required=False, min_value=0, max_value=1)
    misroute_min_labels = serializers.IntegerField(required=False, min_value=1)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500)


class ActionSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


class AdvanceSerializer(ActionSerializer):
    expected_stage = serializers.IntegerField(
        required=False, min_value=0, help_text="The stage you saw; refused (409) if it moved."
    )


class RollbackSerializer(ActionSerializer):
    republish = serializers.BooleanField(
        default=False, help_text="Also publish the stable version's config to the canary slot."
    )
