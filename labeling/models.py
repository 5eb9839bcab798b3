from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import Q

if TYPE_CHECKING:
    from .selectors import Progress


class Tier(models.TextChoices):
    WEAK = "weak", "Weak"
    STRONG = "strong", "Strong"


class Trace(models.Model):
    """One routed request, synced from Langfuse (its root observation).

    Upserted by ``langfuse_id``, so syncing the same window twice changes nothing.
    ``input_text`` is the engine's conversation text (NFC, space-joined), the text every
    replay, sample and similarity check works on.
    """

    langfuse_id = models.CharField(max_length=128, unique=True)
    observation_id = models.CharField(max_length=128, blank=True)
    started_at = models.DateTimeField(db_index=True)
    name = models.CharField(max_length=200, blank=True)
    user_id = models.CharField(max_length=200, blank=True)
    session_id = models.CharField(max_length=200, blank=True)
    messages = models.JSONField()
    input_text = models.TextField()
    input_hash = models.CharField(max_length=64, db_index=True, help_text="Collapses duplicates.")
    char_count = models.PositiveIntegerField()
    turn_count = models.PositiveIntegerField()
    output = models.TextField(blank=True)
    tags = models.JSONField(default=list)
    tier = models.CharField(max_length=8, choices=Tier.choices, blank=True)
    classifier_version = models.CharField(max_length=64, blank=True)
    matched_keywords = models.JSONField(default=list)
    cost_usd = models.FloatField(null=True, blank=True)
    latency_s = models.FloatField(null=True, blank=True)
    ttft_s = models.FloatField(null=True, blank=True)
    model = models.CharField(max_length=200, blank=True)
    feedback_score = models.FloatField(null=True, blank=True, help_text="User rating, 1-5.")
    thumbs_down = models.BooleanField(null=True, blank=True)
    feedback_comment = models.TextField(blank=True)
    metadata = models.JSONField(default=dict)
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["tier", "started_at"]),
            models.Index(fields=["user_id", "started_at"]),
        ]

    def __str__(self):
        return self.langfuse_id


class SyncStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class SyncRun(models.Model):
    """One pull of a time window from Langfuse.

    ``cursor`` is the next page still to fetch: a crashed or failed run resumes from it.
    The next run starts where the last successful one ended (its ``until``), less an
    overlap that catches traces ingested late.
    """

    since = models.DateTimeField()
    until = models.DateTimeField()
    status = models.CharField(max_length=10, choices=SyncStatus.choices)
    cursor = models.TextField(blank=True)
    pages = models.PositiveIntegerField(default=0)
    fetched = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    skip_reasons = models.JSONField(default=dict)
    feedback_scores = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    retryable = models.BooleanField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last page stored.")
    finished_at = models.DateTimeField(null=True, blank=True)

    # Not stored: set by sync.sync_start (a stale run taken up again) and sync.sync_execute
    # (the wait Langfuse asked for after a failure).
    resumed: bool
    retry_after: float | None

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(since__lt=models.F("until")), name="sync_window"),
            # Two syncs at once would fight over the watermark; the second waits its turn.
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="running"), name="one_running_sync"
            ),
        ]

    def __str__(self):
        return f"sync {self.since:%Y-%m-%d %H:%M} – {self.until:%Y-%m-%d %H:%M} ({self.status})"

    @property
    def empty_note(self) -> str:
        """For a run that succeeded and found nothing: which window it read, what to try."""
        if self.status != SyncStatus.SUCCEEDED or self.fetched:
            return ""
        return (
            f"Found no traces between {self.since:%Y-%m-%d %H:%M} and "
            f"{self.until:%Y-%m-%d %H:%M} UTC. For older traffic, sync from an earlier "
            f"date (sync_traces --since {self.since:%Y-%m-%d} with an earlier day, or the "
            "API's since), or everything with sync_traces --all."
        )


class BatchKind(models.TextChoices):
    HEADLINE = "headline", "Headline (random sample)"
    FN_CANDIDATES = "fn", "FN candidates: weak + thumbs-down"
    FP_CANDIDATES = "fp", "FP candidates: strong, costly, short"
    RETRY = "retry", "Retry pattern after a weak answer"
    NEAR_THRESHOLD = "near", "Near the thresholds"


class Batch(models.Model):
    """A set of traces to label, drawn by one recorded strategy with one seed.

    Only headline batches (simple random or tier-stratified with weights) may feed rate
    estimates; the discovery kinds are for finding misroutes, not for measuring them.
    """

    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=10, choices=BatchKind.choices)
    strategy = models.JSONField(help_text="Everything needed to draw the same sample again.")
    seed = models.BigIntegerField()
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    population = models.PositiveIntegerField(help_text="Requests in the frame sampled from.")
    blind = models.BooleanField(
        default=True, help_text="Hide the classifier's tier while labeling."
    )
    double_review_share = models.FloatField(default=0.0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # Not stored: set by the list page's view from selectors.batches_progress.
    progress: "Progress"

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(double_review_share__gte=0) & Q(double_review_share__lte=1),
                name="batch_double_share_range",
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def is_headline(self) -> bool:
        return self.kind == BatchKind.HEADLINE


class BatchItem(models.Model):
    """One trace in a batch. ``weight`` is its inverse inclusion probability (stratified)."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="items")
    trace = models.ForeignKey(Trace, on_delete=models.PROTECT, related_name="batch_items")
    position = models.PositiveIntegerField()
    stratum = models.CharField(max_length=32, blank=True)
    weight = models.FloatField(default=1.0)
    # Requests this item's label stands for: the drawn requests that sent its input
    # (headline), or the frame's requests with its input (discovery). Tuning counts each.
    requests = models.PositiveIntegerField(default=1)
    reviews_required = models.PositiveSmallIntegerField(default=1)
    # A reviewer holds an item while looking at it, so two never get the same one.
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    claimed_until = models.DateTimeField(null=True, blank=True)
    # Set when an operator settles a disagreement between two reviewers.
    final_value = models.CharField(max_length=16, blank=True)
    adjudicated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    adjudicated_at = models.DateTimeField(null=True, blank=True)
    # The final value goes to Langfuse as the trace's label score, like a reviewer's label.
    final_sent_at = models.DateTimeField(null=True, blank=True)
    final_error = models.TextField(blank=True)
    # When a label of this item was last taken back: a deletion leaves no updated_at behind,
    # and metric reports must still notice that their inputs changed.
    label_removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["batch", "position"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "trace"], name="item_trace_once_per_batch"),
            models.UniqueConstraint(fields=["batch", "position"], name="item_position_unique"),
            models.CheckConstraint(
                condition=Q(reviews_required__in=[1, 2]), name="item_reviews_1_or_2"
            ),
        ]

    def __str__(self):
        return f"{self.batch} #{self.position}"


class LabelValue(models.TextChoices):
    WEAK_SUFFICIENT = "weak_sufficient", "Weak sufficient"
    STRONG_NEEDED = "strong_needed", "Strong needed"
    SKIPPED = "skipped", "Skipped"


class Label(models.Model):
    """One reviewer's judgement of one item. Skips are kept (so the item is not served again)
    but never count as labels in any metric or go to Langfuse."""

    item = models.ForeignKey(BatchItem, on_delete=models.CASCADE, related_name="labels")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    value = models.CharField(max_length=16, choices=LabelValue.choices)
    comment = models.TextField(blank=True)
    reasons = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    langfuse_sent_at = models.DateTimeField(null=True, blank=True)
    langfuse_error = models.TextField(blank=True)
    # When its write-back was last queued: the periodic re-send leaves queued ones alone.
    langfuse_queued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["item", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["item", "reviewer"], name="one_label_per_reviewer"),
        ]

    def __str__(self):
        return f"{self.item}: {self.value}"


class ScoreRetraction(models.Model):
    """An undone label's score, asked to be deleted from Langfuse.

    Langfuse answers a delete with 202 for any id and deletes later, so a retraction stays
    pending until a later check no longer finds the score (``confirmed_at``); a score still
    there long after the delete is asked for again.
    """

    score_id = models.CharField(max_length=64, unique=True)
    item = models.ForeignKey(
        BatchItem, null=True, blank=True, on_delete=models.SET_NULL, related_name="retractions"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)  # the last delete Langfuse took
    attempts = models.PositiveIntegerField(default=0)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["confirmed_at", "sent_at"], name="retraction_pending")]

    def __str__(self):
        return f"retraction of {self.score_id}"


class LabelImport(models.Model):
    """One file of labels brought in from outside (e.g. the spec's labeling sheets).

    Imported labels are training labels only: they feed tuning (candidates, proposals,
    sweeps, keyword health), never traffic figures, agreement or headline rate estimates,
    and they are not written to Langfuse. Undoing an import removes its labels and brings
    back the ones it had replaced; the record itself stays, for the audit trail.
    """

    name = models.CharField(max_length=120)
    filename = models.CharField(max_length=255, blank=True)
    format = models.CharField(max_length=8)
    sha256 = models.CharField(max_length=64)
    records = models.PositiveIntegerField(help_text="Records in the file.")
    imported = models.PositiveIntegerField(help_text="Labels stored.")
    replaced = models.PositiveIntegerField(default=0, help_text="Earlier labels it replaced.")
    skipped = models.JSONField(default=list, help_text="Bad rows skipped: [line, reason].")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # The same file twice would count its labels twice; after an undo it may return.
            models.UniqueConstraint(
                fields=["sha256"], condition=Q(undone_at__isnull=True), name="import_file_once"
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def is_active(self) -> bool:
        return self.undone_at is None


class ImportedLabel(models.Model):
    """One imported labeled conversation. ``replaced_by`` is set when a later import
    brought a label for the same ``external_id``: only rows without it count."""

    label_import = models.ForeignKey(LabelImport, on_delete=models.CASCADE, related_name="labels")
    line = models.PositiveIntegerField()
    external_id = models.CharField(max_length=200, blank=True)
    messages = models.JSONField()
    input_text = models.TextField()
    input_hash = models.CharField(max_length=64, db_index=True)
    char_count = models.PositiveIntegerField()
    turn_count = models.PositiveIntegerField()
    label = models.CharField(max_length=16, choices=LabelValue.choices)
    tier = models.CharField(max_length=8, choices=Tier.choices, blank=True)
    user_id = models.CharField(max_length=200, blank=True)
    labeled_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True)
    replaced_by = models.ForeignKey(
        LabelImport, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["label_import", "line"]
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"],
                condition=Q(replaced_by__isnull=True) & ~Q(external_id=""),
                name="imported_id_once",
            ),
            models.CheckConstraint(
                condition=Q(label__in=["strong_needed", "weak_sufficient"]),
                name="imported_label_is_judgement",
            ),
        ]

    def __str__(self):
        return f"{self.label_import} line {self.line}"
