"""Metric reports: confusion matrix and rates from headline labels, traffic figures."""

import pytest

from labeling.models import Label, LabelValue, Trace
from tuning import services
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
    assert traffic["slm_usage"]["value"] == pytest.approx(
        weak / (traffic["weak"] + traffic["strong"])
    )
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
