"""Metric reports: confusion matrix and rates from headline labels, traffic figures."""

from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.models import Batch, BatchItem, Label, LabelValue, Trace
from tuning import selectors, services, tasks
from tuning.metrics import compute
from tuning.models import JobStatus, MetricReport

from .conftest import PERIOD, label_items, truth_counts, weighted_misroute

pytestmark = pytest.mark.django_db


def test_the_confusion_matrix_matches_a_plain_count_of_the_labels(headline, traffic):
    inputs, result = compute("v7", *PERIOD)
    expected = truth_counts(headline, traffic.truth)
    assert result["labels"]["matrix"] == expected
    labeled = sum(expected.values())
    misroute = result["labels"]["misroute"]
    # Items weigh by stratum and by how many requests sent their input: a per-request rate.
    shares = result["labels"]["shares"]
    assert misroute["value"] == pytest.approx(shares["fn"] + shares["fp"])
    assert misroute["value"] == pytest.approx(weighted_misroute(headline, traffic.truth))
    # n is the effective sample size of the weighted items (Kish), at most the item count.
    weights = [
        i.weight
        for i in headline.items.select_related("trace")
        if i.trace.langfuse_id in traffic.truth and i.trace.tier
    ]
    assert len(weights) == labeled
    assert misroute["n"] == pytest.approx(sum(weights) ** 2 / sum(w * w for w in weights))
    assert misroute["low"] < misroute["value"] < misroute["high"]
    assert inputs["batches"] == [headline.pk]


def test_discovery_batches_never_feed_the_rates(headline, discovery, traffic):
    # Discovery labels on traces the headline batch lacks: counting them would change the matrix.
    in_headline = set(headline.items.values_list("trace_id", flat=True))
    extra = Label.objects.filter(item__batch=discovery, item__trace__tier__in=["weak", "strong"])
    assert extra.exclude(item__trace_id__in=in_headline).exists()
    _, with_discovery = compute("v7", *PERIOD)
    assert with_discovery["labels"]["matrix"] == truth_counts(headline, traffic.truth)


def test_skipped_labels_do_not_count(synced, traffic, operator, reviewer):
    from labeling import services as labeling_services

    batch = labeling_services.batch_create(
        actor=operator,
        kind="headline",
        period_start=PERIOD[0],
        period_end=PERIOD[1],
        size=50,
        seed=1,
    )
    label_items(batch, traffic.truth, reviewer, skip_every=5)
    _, result = compute("v7", *PERIOD)
    judged = Label.objects.exclude(value=LabelValue.SKIPPED).count()
    assert result["labels"]["labeled"] == judged == 40


def test_traffic_figures_come_from_every_synced_trace(synced):
    _, result = compute("v7", *PERIOD)
    traffic = result["traffic"]
    traces = Trace.objects.filter(classifier_version="v7")
    assert traffic["requests"] == traces.count()
    weak = traces.filter(tier="weak").count()
    routed = traces.filter(tier__in=["weak", "strong"]).count()
    assert 0 < weak < routed
    assert traffic["slm_usage"]["value"] == pytest.approx(weak / routed)
    costs = [c for c in traces.values_list("cost_usd", flat=True) if c is not None]
    assert traffic["cost_per_1k"] == pytest.approx(1000 * sum(costs) / len(costs))
    weak_ttft = sorted(
        traces.filter(tier="weak").exclude(ttft_s=None).values_list("ttft_s", flat=True)
    )
    assert traffic["ttft"]["weak"]["n"] == len(weak_ttft)
    assert weak_ttft[0] <= traffic["ttft"]["weak"]["p50"] <= traffic["ttft"]["weak"]["p95"]
    down = traces.filter(thumbs_down=True).count()
    assert traffic["thumbs_down"]["successes"] == down


def test_slices_split_labels_and_traffic(headline):
    _, result = compute("v7", *PERIOD)
    languages = {s["name"]: s for s in result["slices"]["language"]}
    assert {"ko", "en", "mixed"} <= set(languages)
    assert (
        sum(s["traffic"]["requests"] for s in languages.values()) == result["traffic"]["requests"]
    )
    assert sum(s["labels"]["labeled"] for s in languages.values()) == result["labels"]["labeled"]
    lengths = [s["name"] for s in result["slices"]["length"]]
    assert (
        lengths.index("0-100 chars")
        < lengths.index("301-500 chars")
        < lengths.index("501-1000 chars")
    )
    keywords = {s["name"] for s in result["slices"]["keyword"]}
    assert "(no keyword)" in keywords and "debug" in keywords


def test_requesting_a_report_twice_keeps_one_row(synced, operator):
    first = services.report_request(
        actor=operator, version="v7", period_start=PERIOD[0], period_end=PERIOD[1]
    )
    second = services.report_request(
        actor=operator, version="v7", period_start=PERIOD[0], period_end=PERIOD[1]
    )
    assert first.pk == second.pk and MetricReport.objects.count() == 1


def test_a_report_claimed_by_one_worker_is_left_alone_by_another(synced, operator):
    report = services.report_request(
        actor=operator, version="v7", period_start=PERIOD[0], period_end=PERIOD[1]
    )
    assert services._claim(MetricReport, report.pk) is True
    assert services.report_compute(report.pk) is None  # the second worker leaves it
    MetricReport.objects.filter(pk=report.pk).update(status=JobStatus.QUEUED)
    done = services.report_compute(report.pk)
    assert done.status == JobStatus.SUCCEEDED and done.progress == 100
    assert done.inputs["traces"] == Trace.objects.filter(classifier_version="v7").count()


def _labeled_report(reviewer, tag, *, period_end, computed_at, label_at, adjudicated_at=None):
    """A succeeded v7 report over the day before ``period_end``, one headline label in it."""
    start = period_end - timedelta(days=1)
    trace = Trace.objects.create(
        langfuse_id=f"r-{tag}", started_at=start + timedelta(hours=1), messages=[],
        input_text="x", input_hash=f"h-{tag}", char_count=1, turn_count=1, tier="weak",
        classifier_version="v7",
    )  # fmt: skip
    batch = Batch.objects.create(
        name=tag, kind="headline", strategy={}, seed=1, period_start=start,
        period_end=period_end, population=1,
    )  # fmt: skip
    item = BatchItem.objects.create(
        batch=batch, trace=trace, position=1, adjudicated_at=adjudicated_at
    )
    label = Label.objects.create(item=item, reviewer=reviewer, value="weak_sufficient")
    Label.objects.filter(pk=label.pk).update(updated_at=label_at)  # update() skips auto_now
    return MetricReport.objects.create(
        version="v7", period_start=start, period_end=period_end,
        status=JobStatus.SUCCEEDED, computed_at=computed_at,
    )  # fmt: skip


def test_the_refresh_checks_only_reports_that_recent_labeling_touched(reviewer, monkeypatch):
    now = timezone.now()
    hour, day = timedelta(hours=1), timedelta(days=1)
    relabeled = _labeled_report(
        reviewer, "new-label", period_end=now - day, computed_at=now - 2 * hour, label_at=now - hour
    )
    adjudicated = _labeled_report(
        reviewer, "adjudicated", period_end=now - 2 * day, computed_at=now - 2 * hour,
        label_at=now - 3 * day, adjudicated_at=now - hour,
    )  # fmt: skip
    # Stale too (a label after it was computed), but long settled: never looked at again.
    old = _labeled_report(
        reviewer, "old", period_end=now - 60 * day, computed_at=now - 61 * day,
        label_at=now - 59 * day,
    )  # fmt: skip
    assert selectors.labels_changed_since(old)
    checked = []
    real_check = selectors.labels_changed_since

    def spy(report):
        checked.append(report.pk)
        return real_check(report)

    monkeypatch.setattr(selectors, "labels_changed_since", spy)
    result = tasks.refresh_stale_reports()
    assert sorted(checked) == sorted(result["queued"]) == sorted([relabeled.pk, adjudicated.pk])
    assert MetricReport.objects.get(pk=old.pk).status == JobStatus.SUCCEEDED
    assert MetricReport.objects.get(pk=relabeled.pk).status == JobStatus.QUEUED


def test_a_label_taken_back_makes_its_report_stale(reviewer):
    from labeling import services as labeling_services

    now = timezone.now()
    report = _labeled_report(
        reviewer, "undone", period_end=now - timedelta(days=1),
        computed_at=now - timedelta(minutes=5), label_at=now - timedelta(hours=1),
    )  # fmt: skip
    assert not selectors.labels_changed_since(report)
    batch = Batch.objects.get(name="undone")

    labeling_services.label_undo(reviewer=reviewer, batch=batch)  # no label left behind

    assert not Label.objects.filter(item__batch=batch).exists()
    assert selectors.labels_changed_since(report)
    assert report in selectors.refreshable_reports(timezone.now())
