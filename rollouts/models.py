"""Deployment slots, routes, publications of a config to a slot, canary rollouts and gates.

State changes go through ``rollouts.services`` (publications through ``rollouts.publish``);
nothing here is ``.save()``d from a view.
"""

from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import Q

if TYPE_CHECKING:
    from .trend import Trend


def percent(value: float | None) -> str:
    """0.0812 -> "8.1", 0.08 -> "8"; "" for no value."""
    if value is None:
        return ""
    return f"{100 * value:.1f}".removesuffix(".0")


WEIGHT_RANGE = Q(canary_weight__gte=0, canary_weight__lte=100) & Q(
    stable_weight__gte=0, stable_weight__lte=100
)


class Slot(models.Model):
    """One classifier deployment: a Service in front of a Deployment whose pods load a ConfigMap.

    Pods are found through the Service's EndpointSlices; ``admin_port_name`` picks the port
    that serves ``PUT /admin/config`` (blank: every port of the slice), ``admin_port``
    overrides the port number.
    """

    name = models.SlugField(max_length=63, unique=True, help_text="e.g. llm-classifier-v8")
    namespace = models.CharField(max_length=63)
    service = models.CharField(max_length=63)
    deployment = models.CharField(max_length=63, blank=True)
    configmap = models.CharField(max_length=253)
    configmap_key = models.CharField(max_length=253, default="config.json")
    pod_selector = models.CharField(max_length=253, blank=True, help_text="e.g. app=classifier")
    admin_port_name = models.CharField(max_length=15, blank=True)
    admin_port = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(admin_port__isnull=True) | Q(admin_port__gte=1, admin_port__lte=65535),
                name="slot_admin_port_valid",
            )
        ]

    def __str__(self):
        return self.name


class Route(models.Model):
    """One rule of an HTTPRoute that splits traffic between a stable and a canary backend.

    ``stable_weight`` / ``canary_weight`` are the weights the console last set (on the
    embedded local target they are the only record). A promotion swaps the roles, so the
    promoted backend becomes the stable one of the next rollout.
    """

    name = models.SlugField(max_length=63, unique=True)
    namespace = models.CharField(max_length=63)
    httproute = models.CharField(max_length=253)
    rule_index = models.PositiveIntegerField(default=0)
    stable_backend = models.CharField(max_length=63)
    canary_backend = models.CharField(max_length=63)
    stable_slot = models.ForeignKey(
        Slot, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    canary_slot = models.ForeignKey(
        Slot, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    stable_weight = models.PositiveSmallIntegerField(default=100)
    canary_weight = models.PositiveSmallIntegerField(default=0)
    weights_updated_at = models.DateTimeField(null=True, blank=True)

    # Not stored: set by selectors.routes_with_serving (the version each slot's pods serve).
    stable_serves: str | None
    canary_serves: str | None

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=WEIGHT_RANGE, name="route_weights_0_100"),
            models.CheckConstraint(
                condition=~Q(stable_backend=models.F("canary_backend")),
                name="route_backends_differ",
            ),
        ]

    def __str__(self):
        return self.name


class PublicationState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    PARTIAL = "partial", "Partial"
    FAILED = "failed", "Failed"


class Publication(models.Model):
    """A frozen version's config written to a slot's ConfigMap and pushed to its pods.

    ``succeeded`` only when every ready pod reported the version's SHA-256; ``partial``
    when some did; both ``partial`` and ``failed`` can be retried.
    """

    version = models.ForeignKey(
        "routing.ClassifierVersion", on_delete=models.PROTECT, related_name="publications"
    )
    slot = models.ForeignKey(Slot, on_delete=models.PROTECT, related_name="publications")
    sha256 = models.CharField(max_length=64)
    state = models.CharField(
        max_length=10, choices=PublicationState.choices, default=PublicationState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    configmap_outcome = models.CharField(max_length=10, blank=True)
    configmap_resource_version = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # Touched at every step of a run: a running publication whose heartbeat is older than a
    # minute lost its worker and may be taken over at once.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=PublicationState.values), name="publication_state_valid"
            ),
            # Two publications racing on one slot would leave it serving whichever won.
            models.UniqueConstraint(
                fields=["slot"],
                condition=Q(state__in=["pending", "running"]),
                name="one_publication_under_way_per_slot",
            ),
        ]

    def __str__(self):
        return f"{self.version} -> {self.slot} #{self.pk}"

    @property
    def retryable(self) -> bool:
        return self.state in (PublicationState.PARTIAL, PublicationState.FAILED)


class PodState(models.TextChoices):
    PENDING = "pending", "Pending"
    PUSHED = "pushed", "Pushed"
    CONFIRMED = "confirmed", "Confirmed"
    FAILED = "failed", "Failed"


class PodStatus(models.Model):
    """What one pod did with a publication: pushed, confirmed by hash, or failed (and why)."""

    publication = models.ForeignKey(Publication, on_delete=models.CASCADE, related_name="pods")
    address = models.CharField(max_length=80, help_text="ip:port")
    pod_name = models.CharField(max_length=253, blank=True)
    state = models.CharField(max_length=10, choices=PodState.choices, default=PodState.PENDING)
    reported_version = models.CharField(max_length=64, blank=True)
    reported_sha256 = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pod_name", "address"]
        constraints = [
            models.UniqueConstraint(fields=["publication", "address"], name="pod_status_unique")
        ]

    def __str__(self):
        return f"{self.pod_name or self.address}: {self.state}"


class RolloutState(models.TextChoices):
    PENDING = "pending", "Pending"
    STAGE = "stage", "In stage"
    PAUSED = "paused", "Paused"
    PROMOTED = "promoted", "Promoted"
    ROLLED_BACK = "rolled_back", "Rolled back"
    FAILED = "failed", "Failed"


ACTIVE_STATES = (RolloutState.PENDING, RolloutState.STAGE, RolloutState.PAUSED)

#: A rollout holds its route while active, and also once failed with canary traffic still on:
#: nothing else may start on that route until an operator rolls the failed one back.
HOLDS_ROUTE = Q(state__in=[s.value for s in ACTIVE_STATES]) | Q(
    state=RolloutState.FAILED, canary_weight__gt=0
)

DEFAULT_MISROUTE_THRESHOLD = 0.08
DEFAULT_MISROUTE_MIN_LABELS = 30

DEFAULT_STEPS = [10, 50, 100]
DEFAULT_WINDOW_SECONDS = 48 * 3600


def default_steps() -> list[int]:
    return list(DEFAULT_STEPS)


class Rollout(models.Model):
    """A canary of ``version`` on a route: canary weight moves through ``steps``.

    pending -> stage 1..n -> promoted | rolled_back | failed; a stage can be paused and
    resumed. ``stage`` is 0 before the first stage. Each stage lasts ``window_seconds``
    and is left only when its gates pass. At most one active rollout per route.
    """

    route = models.ForeignKey(Route, on_delete=models.PROTECT, related_name="rollouts")
    version = models.ForeignKey(
        "routing.ClassifierVersion", on_delete=models.PROTECT, related_name="rollouts"
    )
    stable_version = models.ForeignKey(
        "routing.ClassifierVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="What the stable backend served at the start; republished on rollback.",
    )
    publication = models.ForeignKey(
        Publication, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    stable_backend = models.CharField(max_length=63)
    canary_backend = models.CharField(max_length=63)
    state = models.CharField(
        max_length=12, choices=RolloutState.choices, default=RolloutState.PENDING
    )
    steps = models.JSONField(default=default_steps)
    window_seconds = models.PositiveIntegerField(default=DEFAULT_WINDOW_SECONDS)
    stage = models.PositiveSmallIntegerField(default=0)
    canary_weight = models.PositiveSmallIntegerField(default=0)
    stable_weight = models.PositiveSmallIntegerField(default=100)
    stage_started_at = models.DateTimeField(null=True, blank=True)
    held_since = models.DateTimeField(null=True, blank=True)
    status_note = models.TextField(blank=True, help_text="Why it holds, failed or ended.")
    # The route's live weights when they differ from the record (changed elsewhere): the
    # rollout holds until an operator adopts them or restores the recorded ones.
    drift_live = models.JSONField(null=True, blank=True)
    drift_since = models.DateTimeField(null=True, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    misroute_threshold = models.FloatField(
        default=DEFAULT_MISROUTE_THRESHOLD,
        help_text="Daily check: roll back when the canary's misroute rate exceeds this (0-1).",
    )
    misroute_min_labels = models.PositiveIntegerField(
        default=DEFAULT_MISROUTE_MIN_LABELS,
        help_text="Daily check: fewer labeled headline items (effective n) is unknown.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["route"], condition=HOLDS_ROUTE, name="one_active_rollout_per_route"
            ),
            models.CheckConstraint(condition=WEIGHT_RANGE, name="rollout_weights_0_100"),
            models.CheckConstraint(
                condition=Q(state__in=RolloutState.values), name="rollout_state_valid"
            ),
            models.CheckConstraint(condition=Q(window_seconds__gte=1), name="rollout_window_pos"),
            models.CheckConstraint(
                condition=Q(misroute_threshold__gt=0, misroute_threshold__lt=1),
                name="rollout_misroute_threshold_0_1",
            ),
        ]

    def __str__(self):
        return f"{self.version} on {self.route} #{self.pk}"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def stage_count(self) -> int:
        return len(self.steps)

    @property
    def is_last_stage(self) -> bool:
        return self.stage >= len(self.steps)

    @property
    def misroute_threshold_pct(self) -> str:
        return percent(self.misroute_threshold)

    @property
    def next_step(self) -> int | None:
        """The canary weight of the next stage, None from the last one."""
        return self.steps[self.stage] if self.stage < len(self.steps) else None


class RolloutTransition(models.Model):
    """One recorded change of a rollout's state, stage or weights: who, when and why."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="transitions")
    action = models.CharField(max_length=20)
    from_state = models.CharField(max_length=12)
    to_state = models.CharField(max_length=12)
    from_stage = models.PositiveSmallIntegerField()
    to_stage = models.PositiveSmallIntegerField()
    canary_weight = models.PositiveSmallIntegerField()
    stable_weight = models.PositiveSmallIntegerField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150)
    reason = models.TextField(blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]
        constraints = [models.CheckConstraint(condition=WEIGHT_RANGE, name="transition_0_100")]

    def __str__(self):
        return f"{self.action}: {self.from_state} -> {self.to_state}"


class Comparator(models.TextChoices):
    LT = "lt", "<"
    LE = "le", "<="
    GT = "gt", ">"
    GE = "ge", ">="


class GateResult(models.TextChoices):
    PASS = "pass", "Pass"
    FAIL = "fail", "Fail"
    UNKNOWN = "unknown", "Unknown"


class Gate(models.Model):
    """A condition on Prometheus data a rollout must meet, evaluated on the canary.

    ``query`` and ``requests_query`` are PromQL templates: ``{version}`` (the canary
    version), ``{backend}`` (its backendRef) and ``{window}`` (``window``) are filled in.
    The gate passes when ``value <comparator> threshold`` with at least ``min_requests``
    requests in the window; no data or fewer requests is unknown, which holds the stage.
    With ``rollback_after_seconds`` set, a failure that lasts that long rolls back.
    ``last_stage_only`` gates are required only to leave the last stage.
    """

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="gates")
    name = models.SlugField(max_length=50)
    query = models.TextField()
    requests_query = models.TextField()
    window = models.CharField(max_length=10, default="5m")
    comparator = models.CharField(max_length=2, choices=Comparator.choices, default="lt")
    threshold = models.FloatField()
    min_requests = models.PositiveIntegerField(default=100)
    rollback_after_seconds = models.PositiveIntegerField(null=True, blank=True)
    last_stage_only = models.BooleanField(default=False)
    last_result = models.CharField(max_length=7, choices=GateResult.choices, blank=True)
    last_value = models.FloatField(null=True, blank=True)
    last_requests = models.FloatField(null=True, blank=True)
    last_detail = models.TextField(blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    # Since when the gate has failed; an unknown result neither clears nor advances it.
    failing_since = models.DateTimeField(null=True, blank=True)
    # Since when it has passed without a break: a stage advances only on a full window of it.
    passing_since = models.DateTimeField(null=True, blank=True)
    unknown_rolls_back = models.BooleanField(
        default=True,
        help_text="A failing gate that turns unknown and stays so for the rollback delay "
        "rolls back too (a Prometheus outage during a breach must not shield the canary).",
    )

    # Not stored: set by the rollout page's views (its value line; None: too few values).
    trend: "Trend | None"

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "name"], name="gate_name_unique"),
        ]

    def __str__(self):
        return f"{self.name} {self.get_comparator_display()} {self.threshold:g}"


class GateEvaluation(models.Model):
    """One evaluation of a gate: the value over time on the rollout page."""

    gate = models.ForeignKey(Gate, on_delete=models.CASCADE, related_name="evaluations")
    result = models.CharField(max_length=7, choices=GateResult.choices)
    value = models.FloatField(null=True, blank=True)
    requests = models.FloatField(null=True, blank=True)
    detail = models.TextField(blank=True)
    stage = models.PositiveSmallIntegerField()
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["gate", "-at"])]

    def __str__(self):
        return f"{self.gate.name}: {self.result}"


class DailyMisrouteCheck(models.Model):
    """The daily misroute check of a rollout's canary version for one UTC day.

    The estimate comes from headline-batch labels of traces the canary version routed that
    day (``tuning``'s label metrics): ``misroute`` with its 95% Wilson interval and ``n`` (the
    effective sample size; the item count for a simple random sample). ``fail`` (estimate
    above the threshold with enough labels) rolls the rollout back; ``unknown`` (too few
    labels) only records it and never passes or rolls back. One row per rollout and day: a
    re-run of the same day replaces the figures.
    """

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="daily_checks")
    day = models.DateField(help_text="The UTC day whose traces were judged.")
    result = models.CharField(max_length=7, choices=GateResult.choices)
    misroute = models.FloatField(null=True, blank=True)
    low = models.FloatField(null=True, blank=True)
    high = models.FloatField(null=True, blank=True)
    n = models.FloatField(default=0, help_text="Effective sample size of the estimate.")
    labeled = models.PositiveIntegerField(default=0, help_text="Labeled headline items.")
    threshold = models.FloatField()
    min_labels = models.PositiveIntegerField()
    action = models.CharField(max_length=12, blank=True, help_text="rollback | failed | blank")
    detail = models.TextField(blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["-day", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "day"], name="daily_check_once_a_day"),
            models.CheckConstraint(
                condition=Q(result__in=GateResult.values), name="daily_check_result_valid"
            ),
        ]

    def __str__(self):
        return f"{self.rollout_id} {self.day}: {self.result}"

    @property
    def misroute_pct(self) -> str:
        return percent(self.misroute)

    @property
    def low_pct(self) -> str:
        return percent(self.low)

    @property
    def high_pct(self) -> str:
        return percent(self.high)

    @property
    def threshold_pct(self) -> str:
        return percent(self.threshold)


class IntentState(models.TextChoices):
    PENDING = "pending", "Outcome unknown"
    APPLIED = "applied", "Applied"
    NOT_APPLIED = "not_applied", "Not applied"
    DRIFT = "drift", "Route changed elsewhere"


class WeightIntent(models.Model):
    """A weight change the console is about to send, recorded (and committed) first.

    The change's own transaction marks it applied. One whose answer was lost (a timeout, a
    dropped connection, a worker that died mid-call) stays pending, and is settled by reading
    the route back: the target weights live -> the move is recorded as done; the previous
    ones -> not applied; anything else -> drift, shown on the rollout. "Timed out" never
    means "did not happen".
    """

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="intents")
    action = models.CharField(max_length=20)
    from_state = models.CharField(max_length=12)
    from_stage = models.PositiveSmallIntegerField()
    to_state = models.CharField(max_length=12)
    to_stage = models.PositiveSmallIntegerField()
    target = models.JSONField(help_text="backend -> weight after the change")
    previous = models.JSONField(help_text="backend -> weight before it")
    reason = models.TextField(blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150)
    state = models.CharField(
        max_length=12, choices=IntentState.choices, default=IntentState.PENDING
    )
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField()
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One change in flight per rollout: a second waits until the first is settled.
            models.UniqueConstraint(
                fields=["rollout"], condition=Q(state="pending"), name="one_pending_intent"
            ),
        ]

    def __str__(self):
        return f"{self.action} of #{self.rollout_id} to {self.target} ({self.state})"


class Heartbeat(models.Model):
    """When a periodic duty last ran (``beat``: the evaluation tick), and whether a stall of
    it was already notified. One row per name."""

    name = models.SlugField(max_length=40, unique=True)
    at = models.DateTimeField()
    stall_notified_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.name} at {self.at:%Y-%m-%d %H:%M:%S}"
