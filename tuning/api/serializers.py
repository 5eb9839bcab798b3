from rest_framework import serializers

from ..models import CostSettings, Job, MetricReport, SloTarget


class MetricReportSerializer(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True, help_text="queued, running, succeeded or failed")
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

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
    kind = serializers.CharField(read_only=True, help_text="replay, candidates or sweep")
    status = serializers.CharField(read_only=True, help_text="queued, running, succeeded or failed")
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

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


class CandidatesRequestSerializer(PeriodSerializer):
    version = serializers.CharField(max_length=64)
    limit = serializers.IntegerField(min_value=1, max_value=100, default=20)


class SweepRequestSerializer(PeriodSerializer):
    version = serializers.CharField(max_length=64)
    target_low = serializers.FloatField(min_value=0, max_value=1, default=0.6)
    target_high = serializers.FloatField(min_value=0, max_value=1, default=0.7)


class AdoptSerializer(serializers.Serializer):
    term = serializers.CharField(max_length=100)
    draft = serializers.CharField(max_length=64)


class CostSettingsSerializer(serializers.ModelSerializer):
    class Meta:
        model = CostSettings
        exclude = ["id"]
        read_only_fields = ["updated_at"]
