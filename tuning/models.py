from django.conf import settings
from django.db import models
from django.db.models import F, Q


class Metric(models.TextChoices):
    TTFT_P95_WEAK = "ttft_p95_weak", "TTFT P95, weak tier (s)"
    TTFT_P95_STRONG = "ttft_p95_strong", "TTFT P95, strong tier (s)"
    COST_PER_1K = "cost_per_1k", "Cost per 1k requests (USD)"
    MISROUTE = "misroute", "Misroute rate"
    SLM_USAGE = "slm_usage", "SLM (weak tier) usage"
    SATISFACTION = "satisfaction", "Mean feedback score (1-5)"
    THUMBS_DOWN = "thumbs_down", "Thumbs-down rate"


class SloTarget(models.Model):
    """One service-level objective: the range a metric must stay in.

    ``low`` / ``high`` bound the range (either may be open); ``*_inclusive`` says whether
    the bound itself passes. A metric with an interval passes only when the whole interval
    is inside the range; ``min_samples`` is the least data a point figure needs.
    """

    metric = models.CharField(max_length=20, choices=Metric.choices, unique=True)
    low = models.FloatField(null=True, blank=True)
    low_inclusive = models.BooleanField(default=True)
    high = models.FloatField(null=True, blank=True)
    high_inclusive = models.BooleanField(default=True)
    min_samples = models.PositiveIntegerField(default=30)
    position = models.PositiveSmallIntegerField(default=0)
    note = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["position", "metric"]
        constraints = [
            models.CheckConstraint(
                condition=Q(low__isnull=False) | Q(high__isnull=False), name="slo_has_a_bound"
            ),
            models.CheckConstraint(
                condition=Q(low__isnull=True) | Q(high__isnull=True) | Q(low__lte=F("high")),
                name="slo_low_below_high",
            ),
            models.CheckConstraint(condition=Q(metric__in=Metric.values), name="slo_metric_known"),
        ]

    def __str__(self):
        return f"{self.get_metric_display()}: {self.describe()}"

    def describe(self) -> str:
        percent = self.metric in (Metric.MISROUTE, Metric.SLM_USAGE, Metric.THUMBS_DOWN)

        def show(value):
            if percent:
                return f"{value * 100:g}%"
            if self.metric == Metric.COST_PER_1K:
                return f"${value:.2f}"
            if self.metric.startswith("ttft"):
                return f"{value:g} s"
            return f"{value:g}"

        if self.low is not None and self.high is not None:
            return f"{show(self.low)} – {show(self.high)}"
        if self.high is not None:
            return f"{'≤' if self.high_inclusive else '<'} {show(self.high)}"
        return f"{'≥' if self.low_inclusive else '>'} {show(self.low)}"


class CostSettings(models.Model):
    """Cost figures and budgets: one row (id 1), seeded with the spec's numbers, editable."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    strong_usd_per_hour = models.FloatField(default=12.0, help_text="Strong tier, per replica.")
    weak_usd_per_hour = models.FloatField(default=0.3, help_text="Weak tier, per replica.")
    daily_budget_usd = models.FloatField(default=100.0)
    monthly_budget_usd = models.FloatField(default=3000.0)
    daily_alert_share = models.FloatField(default=0.8)
    monthly_alert_share = models.FloatField(default=0.9)
    drift_alert_share = models.FloatField(default=0.2, help_text="Week over week, 0.2 = +20%.")
    strong_job = models.CharField(max_length=100, default="glm5-serving")
    weak_job = models.CharField(max_length=100, default="qwen3-serving")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "cost settings"
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="cost_settings_single_row"),
            models.CheckConstraint(
                condition=Q(strong_usd_per_hour__gte=0)
                & Q(weak_usd_per_hour__gte=0)
                & Q(daily_budget_usd__gt=0)
                & Q(monthly_budget_usd__gt=0),
                name="cost_settings_positive",
            ),
            models.CheckConstraint(
                condition=Q(daily_alert_share__gt=0)
                & Q(daily_alert_share__lte=1)
                & Q(monthly_alert_share__gt=0)
                & Q(monthly_alert_share__lte=1)
                & Q(drift_alert_share__gt=0),
                name="cost_settings_shares",
            ),
        ]

    def __str__(self):
        return "Cost settings"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class MetricReport(models.Model):
    """The metrics of one classifier version over one period, with the inputs they used.

    One row per (version, period): recomputing overwrites it, so queuing the same report
    twice is harmless. ``result`` holds the figures; ``inputs`` what they were computed from
    (batches, label and trace counts), so a figure can always be traced back.
    """

    version = models.CharField(max_length=64, help_text="Classifier version of the traffic.")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    inputs = models.JSONField(default=dict)
    result = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    computed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-period_end", "version"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "period_start", "period_end"], name="one_report_per_period"
            ),
            models.CheckConstraint(
                condition=Q(period_start__lt=F("period_end")), name="report_period"
            ),
            models.CheckConstraint(condition=Q(progress__lte=100), name="report_progress"),
        ]

    def __str__(self):
        return f"{self.version} {self.period_start:%Y-%m-%d}–{self.period_end:%Y-%m-%d}"


class JobKind(models.TextChoices):
    REPLAY = "replay", "What-if replay"
    CANDIDATES = "candidates", "Keyword candidates"
    SWEEP = "sweep", "Threshold sweep"
    PROPOSAL = "proposal", "Next-version proposal"


class Job(models.Model):
    """A long tuning computation (replay, keyword mining, sweep, proposal) run on a worker.

    Clients poll ``status`` and ``progress``; ``result`` holds the answer once it succeeded.
    """

    kind = models.CharField(max_length=12, choices=JobKind.choices)
    params = models.JSONField()
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    result = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # A proposal's draft, once made: the version page shows where its changes came from.
    draft = models.OneToOneField(
        "routing.ClassifierVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="proposal",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=JobKind.values), name="job_kind_known"),
            models.CheckConstraint(condition=Q(progress__lte=100), name="job_progress"),
        ]

    def __str__(self):
        return f"{self.kind} job {self.pk} ({self.status})"
