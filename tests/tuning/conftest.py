from datetime import timedelta

import pytest

from labeling.models import Batch, BatchItem, BatchKind, Label, LabelValue
from tests.labeling.conftest import (  # noqa: F401 - fixtures, by name
    TRAFFIC_END,
    _synced_rows,
    langfuse,
    synced,
    traffic,
)

PERIOD = (TRAFFIC_END - timedelta(days=3), TRAFFIC_END)


def label_items(batch, truth, reviewer, *, skip_every: int = 0):
    """Label every item of ``batch`` with the generator's ground truth (a perfect reviewer).

    With ``skip_every`` = k, every k-th item is skipped instead (skips never count).
    """
    labels = []
    for index, item in enumerate(
        BatchItem.objects.filter(batch=batch).select_related("trace").order_by("position"), 1
    ):
        value = truth.get(item.trace.langfuse_id)
        if value is None:
            continue
        if skip_every and index % skip_every == 0:
            value = LabelValue.SKIPPED
        labels.append(Label(item=item, reviewer=reviewer, value=value))
    Label.objects.bulk_create(labels)
    return labels


@pytest.fixture
def headline(synced, traffic, operator, reviewer):  # noqa: F811 - fixtures by name
    from labeling import services

    batch = services.batch_create(
        actor=operator,
        kind=BatchKind.HEADLINE,
        period_start=PERIOD[0],
        period_end=PERIOD[1],
        size=300,
        seed=7,
        classifier_version="v7",
    )
    label_items(batch, traffic.truth, reviewer)
    return batch


@pytest.fixture
def discovery(synced, traffic, operator, reviewer):  # noqa: F811
    from labeling import services

    batch = services.batch_create(
        actor=operator,
        kind=BatchKind.FN_CANDIDATES,
        period_start=PERIOD[0],
        period_end=PERIOD[1],
        size=100,
        seed=3,
    )
    label_items(batch, traffic.truth, reviewer)
    return batch


def weighted_misroute(batch: Batch, truth: dict) -> float:
    """The misroute share per request, the plain way: item weights over labeled items."""
    misrouted = total = 0.0
    for item in BatchItem.objects.filter(batch=batch).select_related("trace"):
        label = truth.get(item.trace.langfuse_id)
        if label is None or not item.trace.tier:
            continue
        needed = label == LabelValue.STRONG_NEEDED
        total += item.weight
        misrouted += item.weight * ((item.trace.tier == "strong") != needed)
    return misrouted / total


def truth_counts(batch: Batch, truth: dict) -> dict:
    """The confusion matrix counted the plain way, from traces and ground truth."""
    counts = {"tp": 0, "fn": 0, "fp": 0, "tn": 0}
    for item in BatchItem.objects.filter(batch=batch).select_related("trace"):
        label = truth.get(item.trace.langfuse_id)
        if label is None or not item.trace.tier:
            continue
        strong = item.trace.tier == "strong"
        needed = label == LabelValue.STRONG_NEEDED
        counts[("tp" if needed else "fp") if strong else ("fn" if needed else "tn")] += 1
    return counts
