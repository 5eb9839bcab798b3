from typing import TYPE_CHECKING

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import (
    Batch,
    BatchItem,
    BatchKind,
    Label,
    LabelImport,
    LabelValue,
    SyncRun,
    Trace,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class TraceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Trace
        fields = [
            "id",
            "langfuse_id",
            "started_at",
            "user_id",
            "session_id",
            "messages",
            "output",
            "tags",
            "tier",
            "classifier_version",
            "matched_keywords",
            "char_count",
            "turn_count",
            "cost_usd",
            "latency_s",
            "ttft_s",
            "feedback_score",
            "thumbs_down",
            "feedback_comment",
        ]


# Everything that reveals the routing decision: the tier itself, and what follows from it
# (the strong tier costs more, and its latency profile differs).
ROUTING_FIELDS = (
    "tags",
    "tier",
    "classifier_version",
    "matched_keywords",
    "cost_usd",
    "latency_s",
    "ttft_s",
)


class BlindTraceSerializer(TraceSerializer):
    """What a reviewer sees of a trace in a blind batch: nothing of the routing decision."""

    class Meta(TraceSerializer.Meta):
        fields = [f for f in TraceSerializer.Meta.fields if f not in ROUTING_FIELDS]


class SyncRunSerializer(serializers.ModelSerializer):
    empty_note = serializers.CharField(
        read_only=True, help_text="When a run found nothing: the window it read, what to try."
    )

    class Meta:
        model = SyncRun
        exclude = ["created_by"]
        read_only_fields = [f.name for f in SyncRun._meta.fields]


class SyncRunCreateSerializer(serializers.Serializer):
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    all = serializers.BooleanField(
        required=False, default=False, help_text="Read everything (may be a great many traces)."
    )

    def validate(self, data):
        if data.get("all") and data.get("since"):
            raise serializers.ValidationError({"all": "Give since or all, not both."})
        for field in ("since", "until"):
            moment = data.get(field)
            if moment is not None and moment.year < 2000:
                # Langfuse holds nothing that old, and the adapter's time arithmetic would
                # step outside the calendar.
                raise serializers.ValidationError({field: "Must be on or after 2000-01-01."})
        return data


class SyncEndSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


class BatchProgressSerializer(serializers.Serializer):
    items = serializers.IntegerField(help_text="Distinct inputs to label.")
    done = serializers.IntegerField(help_text="Items with every review they need.")
    remaining = serializers.IntegerField()
    labels = serializers.IntegerField(help_text="Judgements (skips excluded).")
    skipped = serializers.IntegerField()
    percent = serializers.IntegerField()


class AgreementSerializer(serializers.Serializer):
    pairs = serializers.IntegerField(help_text="Double-reviewed items with both labels.")
    agreed = serializers.IntegerField()
    kappa = serializers.FloatField(allow_null=True, help_text="Cohen's kappa.")


class BatchSerializer(serializers.ModelSerializer):
    created_by: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    items = serializers.IntegerField(source="items.count", read_only=True)
    progress = serializers.SerializerMethodField()

    @extend_schema_field(BatchProgressSerializer)
    def get_progress(self, batch):
        from ..selectors import batch_progress

        p = (self.context.get("progress") or {}).get(batch.pk) or batch_progress(batch)
        return {
            "items": p.items, "done": p.done, "remaining": p.items - p.done,
            "labels": p.labels, "skipped": p.skipped, "percent": p.percent,
        }  # fmt: skip

    class Meta:
        model = Batch
        fields = [
            "id",
            "name",
            "kind",
            "strategy",
            "seed",
            "period_start",
            "period_end",
            "population",
            "blind",
            "double_review_share",
            "items",
            "progress",
            "created_by",
            "created_at",
        ]


class BatchDetailSerializer(BatchSerializer):
    agreement = serializers.SerializerMethodField()

    class Meta(BatchSerializer.Meta):
        fields = [*BatchSerializer.Meta.fields, "agreement"]

    @extend_schema_field(AgreementSerializer)
    def get_agreement(self, batch):
        from ..selectors import batch_agreement

        a = batch_agreement(batch)
        return {"pairs": a.pairs, "agreed": a.agreed, "kappa": a.kappa}


class BatchOptionsSerializer(serializers.Serializer):
    """What a strategy may be tuned by; the sampler trusts these types, so they are checked
    here (an unknown key is refused rather than recorded in a strategy that ignores it)."""

    stratify_by_tier = serializers.BooleanField(required=False)
    min_cost_usd = serializers.FloatField(required=False, min_value=0)
    max_chars = serializers.IntegerField(required=False, min_value=1)
    char_margin = serializers.IntegerField(required=False, min_value=1)
    token_threshold = serializers.IntegerField(required=False, min_value=1)
    turn_threshold = serializers.IntegerField(required=False, min_value=1)

    def to_internal_value(self, data):
        if isinstance(data, dict) and (unknown := sorted(set(data) - set(self.fields))):
            raise serializers.ValidationError(
                {key: ["Not an option of any strategy."] for key in unknown}
            )
        return super().to_internal_value(data)


class BatchCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=BatchKind.choices)
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    size = serializers.IntegerField(
        help_text="Headline: requests drawn (those sharing an input become one item, weighted), "
        "so a batch may hold fewer items. Discovery: distinct inputs."
    )
    name = serializers.CharField(required=False, allow_blank=True, max_length=120)
    seed = serializers.IntegerField(required=False, allow_null=True)
    classifier_version = serializers.CharField(required=False, allow_blank=True, max_length=64)
    blind = serializers.BooleanField(required=False, allow_null=True, default=None)
    double_review_share = serializers.FloatField(required=False, default=0.0)
    options = BatchOptionsSerializer(required=False)


class LabelSerializer(serializers.ModelSerializer):
    reviewer: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )

    class Meta:
        model = Label
        fields = [
            "id",
            "item",
            "reviewer",
            "value",
            "comment",
            "reasons",
            "created_at",
            "updated_at",
            "langfuse_sent_at",
            "langfuse_error",
        ]
        read_only_fields = fields


class LabelCreateSerializer(serializers.Serializer):
    item = serializers.PrimaryKeyRelatedField(queryset=BatchItem.objects.all())
    value = serializers.ChoiceField(choices=LabelValue.choices)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    reasons = serializers.ListField(
        child=serializers.CharField(max_length=40), required=False, max_length=10
    )


class LabelUndoSerializer(serializers.Serializer):
    # The metaclass takes declared fields off the class; the stubs see Field.label.
    label = serializers.IntegerField(  # type: ignore[assignment]
        required=False,
        help_text="The label meant; a repeated request then finds it gone (409) instead of "
        "taking back the label before it.",
    )


class BatchItemSerializer(serializers.ModelSerializer):
    trace = serializers.SerializerMethodField()
    labels = LabelSerializer(many=True, read_only=True)

    class Meta:
        model = BatchItem
        fields = [
            "id",
            "position",
            "stratum",
            "weight",
            "reviews_required",
            "final_value",
            "trace",
            "labels",
        ]

    @extend_schema_field(TraceSerializer)
    def get_trace(self, item):
        reveal = self._reveals(item)
        return (TraceSerializer if reveal else BlindTraceSerializer)(item.trace).data

    def _reveals(self, item) -> bool:
        seen = self.context.get("visibility")
        return seen is None or seen.reveals_routing(seen.own_label(item, list(item.labels.all())))

    def to_representation(self, item):
        """What ``selectors.Visibility`` lets the viewer see: their own labels only (unless
        an operator), and in a blind batch no routing before their own judgement (nor the
        stratum, weight and final value, which would tell the tier)."""
        data = super().to_representation(item)
        seen = self.context.get("visibility")
        if seen is not None:
            data["labels"] = [
                shown
                for shown, label in zip(data["labels"], item.labels.all(), strict=True)
                if seen.shows_label(label)
            ]
            if not self._reveals(item):
                for key in ("stratum", "weight", "final_value"):
                    data.pop(key)
        return data


class AdjudicateSerializer(serializers.Serializer):
    value = serializers.ChoiceField(choices=[LabelValue.WEAK_SUFFICIENT, LabelValue.STRONG_NEEDED])
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class LabelImportSerializer(serializers.ModelSerializer):
    created_by: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    undone_by: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )

    class Meta:
        model = LabelImport
        fields = [
            "id", "name", "filename", "format", "sha256", "records", "imported", "replaced",
            "skipped", "created_by", "created_at", "undone_at", "undone_by",
        ]  # fmt: skip
        read_only_fields = fields


class LabelImportRequestSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="JSONL (messages, label) or CSV (as pandas writes).")
    name = serializers.CharField(max_length=120, required=False, allow_blank=True, default="")
    dry_run = serializers.BooleanField(required=False, default=False)
    skip_bad = serializers.BooleanField(required=False, default=False)


class BadRowSerializer(serializers.Serializer):
    line = serializers.IntegerField()
    reason = serializers.CharField()


class LabelImportResultSerializer(serializers.Serializer):
    """What an import did or, for a dry run, would do."""

    format = serializers.CharField()
    sha256 = serializers.CharField()
    records = serializers.IntegerField()
    valid = serializers.IntegerField()
    imported = serializers.IntegerField()
    strong_needed = serializers.IntegerField()
    weak_sufficient = serializers.IntegerField()
    replaces = serializers.IntegerField()
    bad_rows = BadRowSerializer(many=True)
    preview = serializers.ListField(child=serializers.DictField())
    dry_run = serializers.BooleanField()
    label_import = LabelImportSerializer(allow_null=True)
