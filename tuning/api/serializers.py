from typing import TYPE_CHECKING

from rest_framework import serializers

from ..models import CostSettings, Job, MetricReport, SloTarget
from ..proposals import KINDS

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class MetricReportSerializer(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True, help_text="queued, running, succeeded or failed")
    requested_by: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )

    class Meta:
        model = MetricReport
        fields = [
            "id", "version", "period_start", "period_end", "status", "progress", "inputs",
            "result", "error", "requested_by", "created_at", "queued_at", "computed_at",
        ]  # fmt: skip
        read_only_fields = fields


class MetricReportListSerializer(MetricReportSerializer):
    class Meta(MetricReportSerializer.Meta):
        fields = [f for f in MetricReportSerializer.Meta.fields if f != "result"]
        read_only_fields = fields


class PeriodSerializer(serializers.Serializer):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()

    def validate(self, data):
        if data["since"] >= data["until"]:
            raise serializers.ValidationError({"until": ["Must be after since."]})
        return data


class ReportRequestSerializer(PeriodSerializer):
    version = serializers.CharField(max_length=64)


class VerdictSerializer(serializers.Serializer):
    metric = serializers.CharField()
    target = serializers.CharField()
    status = serializers.CharField(help_text="pass, fail or not enough data")
    value = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)
    n = serializers.FloatField()
    why = serializers.CharField()


class SloBoardSerializer(serializers.Serializer):
    report = serializers.IntegerField()
    verdicts = VerdictSerializer(many=True)
    warnings = serializers.ListField(child=serializers.CharField())


class SloTargetSerializer(serializers.ModelSerializer):
    description = serializers.CharField(source="describe", read_only=True)

    class Meta:
        model = SloTarget
        fields = [
            "id", "metric", "low", "low_inclusive", "high", "high_inclusive", "min_samples",
            "note", "description", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["id", "metric", "note", "description", "updated_at"]


class JobSerializer(serializers.ModelSerializer):
    kind = serializers.CharField(read_only=True, help_text="replay, candidates, sweep or proposal")
    status = serializers.CharField(read_only=True, help_text="queued, running, succeeded or failed")
    created_by: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )

    class Meta:
        model = Job
        fields = [
            "id", "kind", "params", "status", "progress", "result", "error", "created_by",
            "created_at", "started_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields


class JobListSerializer(JobSerializer):
    class Meta(JobSerializer.Meta):
        fields = [f for f in JobSerializer.Meta.fields if f != "result"]
        read_only_fields = fields


class ReplayRequestSerializer(PeriodSerializer):
    version = serializers.CharField(max_length=64)
    baseline = serializers.CharField(max_length=64, required=False, allow_blank=True)
    labels = serializers.ListField(
        child=serializers.ChoiceField(choices=["headline", "discovery", "imported"]),
        required=False,
        allow_empty=False,
        help_text="Label sources (default: headline, whose rates estimate the traffic's).",
    )


class CandidatesRequestSerializer(PeriodSerializer):
    version = serializers.CharField(max_length=64)
    limit = serializers.IntegerField(min_value=1, max_value=100, default=20)


class SweepRequestSerializer(PeriodSerializer):
    version = serializers.CharField(max_length=64)
    target_low = serializers.FloatField(min_value=0, max_value=1, default=0.6)
    target_high = serializers.FloatField(min_value=0, max_value=1, default=0.7)
    labels = serializers.ListField(
        child=serializers.ChoiceField(choices=["headline", "discovery", "imported"]),
        required=False,
        allow_empty=False,
        help_text="Label sources (default: all).",
    )


class AdoptSerializer(serializers.Serializer):
    term = serializers.CharField(max_length=100)
    draft = serializers.CharField(max_length=64)


class CostSettingsSerializer(serializers.ModelSerializer):
    class Meta:
        model = CostSettings
        exclude = ["id"]
        read_only_fields = ["updated_at"]


class ProposalRequestSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=KINDS,
        default="keywords",
        help_text="keywords: change the keyword list and thresholds; scorer: train weighted "
        "substrings (the pinned keywords stay hard triggers).",
    )
    base = serializers.CharField(max_length=64, help_text="The version to improve on.")
    name = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    slm_low = serializers.FloatField(min_value=0, max_value=1, required=False)
    slm_high = serializers.FloatField(min_value=0, max_value=1, required=False)
    labels = serializers.ListField(
        child=serializers.ChoiceField(choices=["headline", "discovery", "imported"]),
        required=False,
        allow_empty=False,
        help_text="Label sources (default: all).",
    )
    fn_weight = serializers.FloatField(min_value=0.1, max_value=20, default=1.0)
    pinned = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, default=list
    )
    max_changes = serializers.IntegerField(min_value=0, max_value=200, default=20)
    folds = serializers.IntegerField(min_value=2, max_value=20, default=10)
    seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0)
    holdout = serializers.FloatField(
        min_value=0, max_value=0.5, default=0, help_text="Share of inputs set aside, unseen."
    )
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)

    def validate(self, data):
        if ("slm_low" in data) != ("slm_high" in data):
            raise serializers.ValidationError({"slm_high": "Give both ends of the band."})
        if "slm_low" in data and data["slm_low"] > data["slm_high"]:
            raise serializers.ValidationError({"slm_high": "Must not be below slm_low."})
        return data


class DraftRequestSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    force = serializers.BooleanField(
        default=False, help_text="Make the draft even though it does not beat the base."
    )


class DraftResponseSerializer(serializers.Serializer):
    version = serializers.CharField()
    proposal = serializers.IntegerField(allow_null=True)


class SweepApplySerializer(serializers.Serializer):
    draft = serializers.CharField(max_length=64)
    token_threshold = serializers.IntegerField(min_value=1, required=False)
    turn_threshold = serializers.IntegerField(min_value=1, required=False)
    cut = serializers.FloatField(required=False, help_text="A scorer version's sweep: the cut.")

    def validate(self, data):
        if "cut" not in data and not {"token_threshold", "turn_threshold"} <= set(data):
            raise serializers.ValidationError(
                {"token_threshold": "Give token_threshold and turn_threshold, or a cut."}
            )
        return data
