"""Reads of the labeling workflow: progress, agreement, who may see what."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Case, Count, F, Q, When
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Left, Length, Substr

from accounts.roles import OPERATOR, has_role

from .models import Batch, BatchItem, Label, LabelValue

JUDGEMENTS = (LabelValue.WEAK_SUFFICIENT, LabelValue.STRONG_NEEDED)


@dataclass
class Progress:
    items: int
    done: int  # items with every review they need
    labels: int
    skipped: int

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.items) if self.items else 0


def batches_progress(batch_ids: list[int]) -> dict[int, Progress]:
    """Progress of several batches in two queries (a list page must not ask per batch)."""
    progress = {batch_id: Progress(0, 0, 0, 0) for batch_id in batch_ids}
    rows = (
        BatchItem.objects.filter(batch_id__in=batch_ids)
        .annotate(judged=Count("labels", filter=Q(labels__value__in=JUDGEMENTS)))
        .values_list("batch_id", "judged", "reviews_required")
    )
    for batch_id, judged, needed in rows:
        progress[batch_id].items += 1
        progress[batch_id].done += judged >= needed
    counts = (
        Label.objects.filter(item__batch_id__in=batch_ids)
        .values("item__batch_id")
        .annotate(
            labels=Count("id", filter=Q(value__in=JUDGEMENTS)),
            skipped=Count("id", filter=Q(value=LabelValue.SKIPPED)),
        )
    )
    for row in counts:
        progress[row["item__batch_id"]].labels = row["labels"]
        progress[row["item__batch_id"]].skipped = row["skipped"]
    return progress


def batch_progress(batch: Batch) -> Progress:
    return batches_progress([batch.pk])[batch.pk]


@dataclass
class Agreement:
    pairs: int
    agreed: int
    kappa: float | None

    @property
    def percent(self) -> float | None:
        return 100 * self.agreed / self.pairs if self.pairs else None


def cohens_kappa(pairs: list[tuple[str, str]]) -> float | None:
    """Cohen's kappa for two ratings per item (first label vs second label).

    None when undefined: no pairs, or both ratings constant and equal (chance agreement 1).
    """
    n = len(pairs)
    if not n:
        return None
    observed = sum(a == b for a, b in pairs) / n
    expected = sum(
        (sum(a == c for a, _ in pairs) / n) * (sum(b == c for _, b in pairs) / n)
        for c in JUDGEMENTS
    )
    if expected >= 1:
        return None
    return (observed - expected) / (1 - expected)


def batch_agreement(batch: Batch) -> Agreement:
    by_item: dict[int, list[str]] = {}
    rows = (
        Label.objects.filter(item__batch=batch, item__reviews_required=2, value__in=JUDGEMENTS)
        .order_by("item_id", "created_at", "id")
        .values_list("item_id", "value")
    )
    for item_id, value in rows:
        by_item.setdefault(item_id, []).append(value)
    pairs = [(v[0], v[1]) for v in by_item.values() if len(v) >= 2]
    return Agreement(len(pairs), sum(a == b for a, b in pairs), cohens_kappa(pairs))


def disagreements(batch: Batch | None = None):
    """Double-reviewed items whose two labels differ and that no operator settled yet."""
    items = BatchItem.objects.filter(reviews_required=2, final_value="")
    if batch is not None:
        items = items.filter(batch=batch)
    return (
        items.annotate(
            weak=Count("labels", filter=Q(labels__value=LabelValue.WEAK_SUFFICIENT)),
            strong=Count("labels", filter=Q(labels__value=LabelValue.STRONG_NEEDED)),
        )
        .filter(weak__gte=1, strong__gte=1)
        .select_related("trace", "batch")
        .prefetch_related("labels__reviewer")
        .order_by("batch_id", "position")
    )


def final_label(item: BatchItem, labels: list[Label]) -> str | None:
    """The label an item counts as: adjudicated, agreed, or its single judgement."""
    if item.final_value:
        return item.final_value
    values = {label.value for label in labels if label.value in JUDGEMENTS}
    judged = [label for label in labels if label.value in JUDGEMENTS]
    if len(judged) >= item.reviews_required and len(values) == 1:
        return values.pop()
    return None


@dataclass(frozen=True)
class Visibility:
    """What one viewer may see of a batch: the one rule for pages, API and serializers.

    Operators see everything. A reviewer sees only their own labels, so a double review
    stays independent. In a blind batch a reviewer also does not see an item's routing (its
    tier and what gives it away: cost, latency, model, stratum, weight, final value) until
    they have judged that item themselves; a skip is no judgement.
    """

    viewer: Any
    operator: bool
    blind: bool

    def labels(self):
        """The labels the viewer may see (for prefetching)."""
        labels = Label.objects.select_related("reviewer")
        return labels if self.operator else labels.filter(reviewer=self.viewer)

    def shows_label(self, label: Label) -> bool:
        return self.operator or label.reviewer_id == self.viewer.pk

    def reveals_routing(self, own: Label | None) -> bool:
        """Given the viewer's own label of an item (or None)."""
        return self.operator or not self.blind or (own is not None and own.value in JUDGEMENTS)

    def own_label(self, item: BatchItem, labels: list[Label] | None = None) -> Label | None:
        """The viewer's label of ``item`` (from already fetched ``labels`` when given)."""
        if labels is None:
            return Label.objects.filter(item=item, reviewer=self.viewer).first()
        return next((label for label in labels if label.reviewer_id == self.viewer.pk), None)


def visibility(viewer, batch: Batch) -> Visibility:
    return Visibility(viewer=viewer, operator=has_role(viewer, OPERATOR), blind=batch.blind)


@dataclass(frozen=True)
class Backlog:
    """Judgements not yet written back to Langfuse (without a permanent error)."""

    labels: int
    oldest_seconds: float | None


def writeback_backlog(now) -> Backlog:
    waiting = Label.objects.filter(
        langfuse_sent_at__isnull=True, langfuse_error="", value__in=JUDGEMENTS
    )
    oldest = waiting.order_by("updated_at").values_list("updated_at", flat=True).first()
    return Backlog(waiting.count(), (now - oldest).total_seconds() if oldest else None)


@dataclass(frozen=True)
class ItemFilters:
    """The batch page's item filters. ``tier`` only where the viewer may see tiers (a
    filter by tier would give a blind batch's tiers away)."""

    state: str = ""  # open, labeled, settled
    label: str = ""  # weak_sufficient, strong_needed (any reviewer's)
    agreement: str = ""  # agree, disagree (items with two judgements)
    tier: str = ""  # weak, strong

    STATES = ("open", "labeled", "settled")
    LABELS = ("weak_sufficient", "strong_needed")
    AGREEMENTS = ("agree", "disagree")
    TIERS = ("weak", "strong")

    @classmethod
    def from_query(cls, query, *, tier_allowed: bool) -> ItemFilters:
        def pick(name, allowed):
            value = query.get(name, "")
            return value if value in allowed else ""

        return cls(
            state=pick("state", cls.STATES),
            label=pick("label", cls.LABELS),
            agreement=pick("agreement", cls.AGREEMENTS),
            tier=pick("tier", cls.TIERS) if tier_allowed else "",
        )

    def query_string(self) -> str:
        from urllib.parse import urlencode

        return urlencode({k: v for k, v in vars(self).items() if v})


def batch_items(batch: Batch, filters: ItemFilters):
    """A batch's items, filtered, each with ``judged``: its labels that are not skips."""
    judged = Count("labels", filter=Q(labels__value__in=JUDGEMENTS), distinct=True)
    items = BatchItem.objects.filter(batch=batch).annotate(judged=judged)
    if filters.state == "open":
        items = items.filter(judged__lt=F("reviews_required"), final_value="")
    elif filters.state == "labeled":
        items = items.filter(judged__gte=F("reviews_required"))
    elif filters.state == "settled":
        items = items.exclude(final_value="")
    if filters.label:
        items = items.filter(labels__value=filters.label).distinct()
    if filters.agreement:
        kinds = Count("labels__value", filter=Q(labels__value__in=JUDGEMENTS), distinct=True)
        items = items.annotate(kinds=kinds).filter(judged__gte=2)
        items = items.filter(kinds=1 if filters.agreement == "agree" else 2)
    if filters.tier:
        items = items.filter(trace__tier=filters.tier)
    return items


def input_preview(length: int):
    """The start of an item's input, past a leading system prompt (the first thing in
    every conversation of a coding tool, and the same in all of them)."""
    first = KeyTransform("0", F("trace__messages"))
    system_len = Length(KeyTextTransform("content", first))
    return Case(
        When(
            Q(trace__messages__0__role="system"),
            then=Substr("trace__input_text", system_len + 2, length + 1),
        ),
        default=Left("trace__input_text", length + 1),
    )
