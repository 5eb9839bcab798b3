"""Shapes of the versions API. Validation of content lives in the services and the engine."""

from django.contrib.auth.models import User
from rest_framework import serializers

from ..models import ClassifierVersion, Keyword, KeywordSet, Language

MAX_CLASSIFY_VERSIONS = 20


class KeywordSerializer(serializers.ModelSerializer):
    class Meta:
        model = Keyword
        fields = ["id", "text", "language", "rationale"]
        read_only_fields = ["id"]


class KeywordInputSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=200, trim_whitespace=False)
    language = serializers.ChoiceField(choices=Language.choices, required=False, allow_blank=True)
    rationale = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class KeywordSetSerializer(serializers.ModelSerializer):
    version: serializers.SlugRelatedField[ClassifierVersion] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    keywords = KeywordSerializer(many=True, read_only=True)

    class Meta:
        model = KeywordSet
        fields = ["id", "name", "frozen", "version", "created_at", "keywords"]


class ReportedSerializer(serializers.Serializer):
    misroute_rate = serializers.DecimalField(
        source="reported_misroute_rate", max_digits=5, decimal_places=2, allow_null=True
    )
    slm_usage = serializers.DecimalField(
        source="reported_slm_usage", max_digits=5, decimal_places=2, allow_null=True
    )
    cost_per_1k = serializers.DecimalField(
        source="reported_cost_per_1k", max_digits=8, decimal_places=2, allow_null=True
    )
    # "source" names the field; DRF's metaclass takes declared fields off the class.
    source = serializers.CharField(source="reported_source", allow_blank=True)  # type: ignore[assignment]


class ScorerSerializer(serializers.Serializer):
    """A learned scorer, as the engine reads it (``routing.engine.scorer``)."""

    bias = serializers.FloatField()
    threshold = serializers.FloatField(help_text="Strong when the score reaches this.")
    features = serializers.ListField(
        child=serializers.ListField(min_length=2, max_length=2),
        help_text="[substring, weight] pairs; substrings are matched like keywords.",
    )


class VersionSerializer(serializers.ModelSerializer):
    # "parent" names the field; DRF's metaclass takes declared fields off the class.
    parent: serializers.SlugRelatedField[ClassifierVersion] = serializers.SlugRelatedField(  # type: ignore[assignment]
        slug_field="name", read_only=True, allow_null=True
    )
    keywords = KeywordSerializer(source="keyword_set.keywords", many=True, read_only=True)
    reported = ReportedSerializer(source="*", read_only=True)
    created_by: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    frozen_by: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    scorer = ScorerSerializer(read_only=True, allow_null=True)

    class Meta:
        model = ClassifierVersion
        fields = [
            "name",
            "status",
            "parent",
            "keyword_set",
            "keywords",
            "token_threshold",
            "turn_threshold",
            "byte_threshold",
            "scorer",
            "notes",
            "reported",
            "config_sha256",
            "created_at",
            "created_by",
            "updated_at",
            "frozen_at",
            "frozen_by",
            "retired_at",
        ]
        read_only_fields = fields


class _ReportedInputMixin(serializers.Serializer):
    reported_misroute_rate = serializers.DecimalField(
        max_digits=5, decimal_places=2, min_value=0, max_value=100, required=False, allow_null=True
    )
    reported_slm_usage = serializers.DecimalField(
        max_digits=5, decimal_places=2, min_value=0, max_value=100, required=False, allow_null=True
    )
    reported_cost_per_1k = serializers.DecimalField(
        max_digits=8, decimal_places=2, min_value=0, required=False, allow_null=True
    )
    reported_source = serializers.CharField(max_length=200, required=False, allow_blank=True)


# Checked by the engine, which names each bad field (scorer.features, ...).
SCORER_HELP = '{"bias": b, "threshold": t, "features": [[substring, weight], ...]}; null for none.'


class VersionCreateSerializer(_ReportedInputMixin):
    name = serializers.CharField(max_length=64)
    parent = serializers.SlugRelatedField(  # type: ignore[assignment]  # as above
        slug_field="name", queryset=ClassifierVersion.objects.all(), required=False, allow_null=True
    )
    keywords = KeywordInputSerializer(many=True)
    # Range checks are the engine's, so the API and the pod refuse the same configs.
    token_threshold = serializers.IntegerField()
    turn_threshold = serializers.IntegerField()
    byte_threshold = serializers.IntegerField(required=False, allow_null=True)
    scorer = serializers.JSONField(required=False, allow_null=True, help_text=SCORER_HELP)
    notes = serializers.CharField(required=False, allow_blank=True, max_length=10_000)


class VersionUpdateSerializer(_ReportedInputMixin):
    keywords = KeywordInputSerializer(many=True, required=False)
    token_threshold = serializers.IntegerField(required=False)
    turn_threshold = serializers.IntegerField(required=False)
    byte_threshold = serializers.IntegerField(required=False, allow_null=True)
    scorer = serializers.JSONField(required=False, allow_null=True, help_text=SCORER_HELP)
    notes = serializers.CharField(required=False, allow_blank=True, max_length=10_000)


class VersionCopySerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    notes = serializers.CharField(required=False, allow_blank=True, max_length=10_000)


class RetireSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class ClassifyRequestSerializer(serializers.Serializer):
    messages = serializers.JSONField(help_text="OpenAI-style chat messages.")
    versions = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        max_length=MAX_CLASSIFY_VERSIONS,
        help_text="Version names; all versions that are not retired when omitted.",
    )


class DecisionSerializer(serializers.Serializer):
    version = serializers.CharField()
    config_sha256 = serializers.CharField()
    tier = serializers.ChoiceField(choices=["weak", "strong"])
    reasons = serializers.ListField(child=serializers.CharField())
    matched_keywords = serializers.ListField(child=serializers.CharField())
    char_count = serializers.IntegerField()
    byte_count = serializers.IntegerField()
    turn_count = serializers.IntegerField()
    spans = serializers.ListField(child=serializers.DictField())
    score = serializers.FloatField(required=False, help_text="Scorer versions only.")
    top_features = serializers.ListField(
        child=serializers.ListField(min_length=2, max_length=2),
        required=False,
        help_text="Scorer versions only: the five present [substring, weight] pairs that "
        "pushed the score most.",
    )


class ClassifyResponseSerializer(serializers.Serializer):
    text = serializers.CharField(help_text="The conversation as the classifier reads it.")
    results = DecisionSerializer(many=True, help_text="One decision per version asked.")
