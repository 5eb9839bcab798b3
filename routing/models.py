from django.conf import settings
from django.db import models
from django.db.models import Q


class Language(models.TextChoices):
    KOREAN = "ko", "Korean"
    ENGLISH = "en", "English"
    OTHER = "other", "Other"


class KeywordSet(models.Model):
    """The strong keywords of one classifier version.

    Each version owns its set; copying a version copies the set. Once the version is
    frozen the set is frozen with it, and the database refuses any change to its keywords.
    """

    name = models.CharField(max_length=100)
    frozen = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.name


class Keyword(models.Model):
    """One strong keyword. Matched as a lower-cased NFC substring of the conversation."""

    keyword_set = models.ForeignKey(KeywordSet, on_delete=models.CASCADE, related_name="keywords")
    text = models.CharField(max_length=100)
    # NFC + lower-case: what the engine matches, and what must be unique in a set.
    normalized = models.CharField(max_length=100, editable=False)
    language = models.CharField(max_length=8, choices=Language.choices)
    rationale = models.TextField(blank=True)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["keyword_set", "normalized"], name="keyword_unique_in_set"
            ),
            models.CheckConstraint(condition=~Q(normalized=""), name="keyword_not_empty"),
        ]

    def __str__(self):
        return self.text


class VersionStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    FROZEN = "frozen", "Frozen"
    RETIRED = "retired", "Retired"


class ClassifierVersion(models.Model):
    """A named classifier configuration: keywords plus length, byte and turn thresholds,
    and optionally a learned scorer (weighted keywords).

    Lifecycle: draft -> frozen -> retired, only through ``routing.services``. A frozen
    (or retired) version never changes again; its canonical config and SHA-256 are what
    classifier pods load and report.
    """

    name = models.CharField(max_length=64, unique=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    keyword_set = models.OneToOneField(KeywordSet, on_delete=models.PROTECT, related_name="version")
    token_threshold = models.PositiveIntegerField(help_text="Characters; longer is strong.")
    turn_threshold = models.PositiveIntegerField(help_text="Messages; more is strong.")
    byte_threshold = models.PositiveIntegerField(
        null=True, blank=True, help_text="Optional: UTF-8 bytes; longer is strong."
    )
    # Optional weighted keywords (routing.engine.scorer), in canonical form. The keywords
    # above stay hard triggers beside it.
    scorer = models.JSONField(
        null=True, blank=True, help_text="Weighted substrings, bias and threshold."
    )
    notes = models.TextField(blank=True)

    # Figures someone reported (e.g. the spec's v7 baseline); never computed here.
    reported_misroute_rate = models.DecimalField(
        max_digits=5, decimal_places=2, null=True, blank=True, help_text="Percent."
    )
    reported_slm_usage = models.DecimalField(
        max_digits=5, decimal_places=2, null=True, blank=True, help_text="Percent."
    )
    reported_cost_per_1k = models.DecimalField(
        max_digits=8, decimal_places=2, null=True, blank=True, help_text="USD."
    )
    reported_source = models.CharField(max_length=200, blank=True)

    status = models.CharField(
        max_length=8, choices=VersionStatus.choices, default=VersionStatus.DRAFT
    )
    config = models.JSONField(help_text="Canonical config, as exported to pods.")
    config_sha256 = models.CharField(max_length=64)

    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)
    frozen_at = models.DateTimeField(null=True, blank=True)
    frozen_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(token_threshold__gte=1), name="version_token_positive"
            ),
            models.CheckConstraint(
                condition=Q(turn_threshold__gte=1), name="version_turn_positive"
            ),
            models.CheckConstraint(
                condition=Q(byte_threshold__isnull=True) | Q(byte_threshold__gte=1),
                name="version_byte_positive",
            ),
            models.CheckConstraint(
                condition=Q(status__in=VersionStatus.values), name="version_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(status=VersionStatus.DRAFT) | Q(frozen_at__isnull=False),
                name="version_frozen_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(parent=models.F("id")), name="version_not_own_parent"
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def is_draft(self) -> bool:
        return self.status == VersionStatus.DRAFT

    @property
    def has_scorer(self) -> bool:
        return self.scorer is not None
