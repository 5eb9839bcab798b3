"""Reads for the tuning tools: labeled items, traffic streams, reports, settings."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Exists, Max, OuterRef, Prefetch, Q

from labeling.models import BatchItem, BatchKind, ImportedLabel, Label, Trace
from labeling.selectors import final_label

from .models import CostSettings, JobStatus, MetricReport, SloTarget

STREAM_CHUNK = 2_000
# Label activity the stale-report refresh looks back over: many missed ten-minute ticks.
REFRESH_WINDOW = timedelta(days=1)


@dataclass(frozen=True)
class LabeledRow:
    """One labeled trace with what the live classifier did and what a reviewer decided."""

    item_id: int | None  # None for imported labels
    batch_id: int | None
    trace_id: int | None
    langfuse_id: str
    started_at: datetime | None  # None for an imported label without a date
    weight: float
    label: str  # weak_sufficient / strong_needed
    tier: str  # live tier ("" when unknown)
    version: str  # live classifier version
    text: str
    turn_count: int
    char_count: int
    messages: list
    matched_keywords: tuple[str, ...]
    source: str = "headline"  # headline / discovery / imported
    requests: int = 1  # requests the label stands for (a collapsed item stands for several)
    input_hash: str = ""
    key: str = ""  # "item:<id>" or "import:<id>": which label this is, across sources


SOURCES = ("headline", "discovery", "imported")


def labeled_rows(
    start: datetime | None,
    end: datetime | None,
    *,
    version: str = "",
    headline_only: bool = True,
) -> tuple[list[LabeledRow], dict]:
    """Labeled traces started in [start, end) (None: unbounded), each once, with a final label.

    Headline batches only by default: they are the ones fit for rates. A trace in two
    batches counts once (its earliest batch). Skipped and unresolved items do not count;
    the second value says how many there were and which batches fed the rows.
    """
    items = BatchItem.objects.all()
    if start is not None:
        items = items.filter(trace__started_at__gte=start)
    if end is not None:
        items = items.filter(trace__started_at__lt=end)
    if headline_only:
        items = items.filter(batch__kind=BatchKind.HEADLINE)
    if version:
        items = items.filter(trace__classifier_version=version)
    items = (
        items.select_related("trace", "batch")
        .prefetch_related(Prefetch("labels", queryset=Label.objects.order_by("created_at", "id")))
        .order_by("batch_id", "position")
    )
    rows, seen, batches = [], set(), set()
    unresolved = 0
    for item in items:
        if item.trace_id in seen:
            continue
        label = final_label(item, list(item.labels.all()))
        if label is None:
            unresolved += 1
            continue
        seen.add(item.trace_id)
        batches.add(item.batch_id)
        t = item.trace
        rows.append(
            LabeledRow(
                item_id=item.pk,
                batch_id=item.batch_id,
                trace_id=t.pk,
                langfuse_id=t.langfuse_id,
                started_at=t.started_at,
                weight=item.weight,
                label=label,
                tier=t.tier,
                version=t.classifier_version,
                text=t.input_text,
                turn_count=t.turn_count,
                char_count=t.char_count,
                messages=t.messages,
                matched_keywords=tuple(t.matched_keywords or ()),
                source="headline" if item.batch.kind == BatchKind.HEADLINE else "discovery",
                requests=item.requests,
                input_hash=t.input_hash,
                key=f"item:{item.pk}",
            )
        )
    return rows, {"batches": sorted(batches), "unresolved": unresolved, "labeled": len(rows)}


def imported_rows() -> list[LabeledRow]:
    """The labels of every import that was not undone (and not replaced by a later one)."""
    labels = ImportedLabel.objects.filter(
        label_import__undone_at__isnull=True, replaced_by__isnull=True
    ).order_by("id")
    return [
        LabeledRow(
            item_id=None,
            batch_id=None,
            trace_id=None,
            langfuse_id=label.external_id or f"import-{label.label_import_id}:{label.line}",
            started_at=label.labeled_at,
            weight=1.0,
            label=label.label,
            tier=label.tier,
            version="",
            text=label.input_text,
            turn_count=label.turn_count,
            char_count=label.char_count,
            messages=label.messages,
            matched_keywords=(),
            source="imported",
            requests=1,
            input_hash=label.input_hash,
            key=f"import:{label.pk}",
        )
        for label in labels.iterator(chunk_size=STREAM_CHUNK)
    ]


def training_rows(
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    sources: tuple[str, ...] = SOURCES,
) -> tuple[list[LabeledRow], dict]:
    """Every labeled request the tuning tools learn from, from the chosen sources.

    Traced labels (headline and discovery batches) come from traces started in the period;
    imported labels have no traffic period and all count. The summary gives inputs and
    requests per source: a collapsed item counts once per request it stands for.
    """
    unknown = set(sources) - set(SOURCES)
    if unknown:
        raise ValueError(f"unknown label sources: {', '.join(sorted(unknown))}")
    rows: list[LabeledRow] = []
    inputs: dict = {"batches": [], "unresolved": 0}
    if {"headline", "discovery"} & set(sources):
        traced, inputs = labeled_rows(start, end, headline_only="discovery" not in sources)
        rows += [r for r in traced if r.source in sources]
    if "imported" in sources:
        rows += imported_rows()
    return rows, {
        "sources": list(sources),
        "counts": source_counts(rows),
        "batches": inputs["batches"],
        "unresolved": inputs["unresolved"],
    }


def source_counts(rows: list[LabeledRow]) -> dict[str, dict[str, int]]:
    """Inputs (labeled items) and requests per label source, every source listed."""
    counts = {s: {"inputs": 0, "requests": 0} for s in SOURCES}
    for row in rows:
        counts[row.source]["inputs"] += 1
        counts[row.source]["requests"] += row.requests
    return counts


def period_traffic(start: datetime, end: datetime, *, version: str = ""):
    traces = Trace.objects.filter(started_at__gte=start, started_at__lt=end)
    if version:
        traces = traces.filter(classifier_version=version)
    return traces


def stream(queryset, *fields: str, chunk_size: int = STREAM_CHUNK) -> Iterator[tuple]:
    """Rows as tuples, fetched in chunks (a server-side cursor on PostgreSQL): memory stays
    flat however many rows the period holds."""
    return queryset.order_by().values_list(*fields).iterator(chunk_size=chunk_size)


def labels_changed_since(report: MetricReport) -> bool:
    """Did a label or adjudication in the report's scope change (or a label go) after it
    was computed?"""
    if report.computed_at is None:
        return True
    scope = Q(
        item__trace__started_at__gte=report.period_start,
        item__trace__started_at__lt=report.period_end,
        item__trace__classifier_version=report.version,
        item__batch__kind=BatchKind.HEADLINE,
    )
    latest = Label.objects.filter(scope).aggregate(at=Max("updated_at"))["at"]
    items = BatchItem.objects.filter(
        trace__started_at__gte=report.period_start,
        trace__started_at__lt=report.period_end,
        trace__classifier_version=report.version,
        batch__kind=BatchKind.HEADLINE,
    ).aggregate(adjudicated=Max("adjudicated_at"), removed=Max("label_removed_at"))
    changes = (latest, items["adjudicated"], items["removed"])
    return any(at and at > report.computed_at for at in changes)


def refreshable_reports(now: datetime):
    """Succeeded reports whose scope holds a headline label or adjudication from the last
    REFRESH_WINDOW: the only ones whose inputs may have changed since the last refresh.

    Labels are a report's only inputs that change after the fact, so a report no recent
    label touches cannot have gone stale since the last tick; checking only these keeps the
    refresh bounded by labeling activity, not by every report ever computed. (A change older
    than the window, missed while beat was down, waits for a Recompute or the nightly run.)
    """
    since = now - REFRESH_WINDOW
    touched = BatchItem.objects.filter(
        Q(labels__updated_at__gte=since)
        | Q(adjudicated_at__gte=since)
        | Q(label_removed_at__gte=since),
        batch__kind=BatchKind.HEADLINE,
        trace__classifier_version=OuterRef("version"),
        trace__started_at__gte=OuterRef("period_start"),
        trace__started_at__lt=OuterRef("period_end"),
    )
    return MetricReport.objects.filter(status=JobStatus.SUCCEEDED).filter(Exists(touched))


def cost_settings() -> CostSettings:
    """The one settings row (created with the defaults if a flush removed it)."""
    settings, _ = CostSettings.objects.get_or_create(pk=1)
    return settings


def slo_targets() -> list[SloTarget]:
    """The targets, in board order (the spec's defaults again if a flush removed them)."""
    targets = list(SloTarget.objects.all())
    if not targets:
        from .defaults import seed_slo_targets

        seed_slo_targets(SloTarget)
        targets = list(SloTarget.objects.all())
    return targets


def versions_with_traffic() -> list[str]:
    return list(
        Trace.objects.exclude(classifier_version="")
        .order_by()
        .values_list("classifier_version", flat=True)
        .distinct()
    )


def report_list():
    return MetricReport.objects.select_related("requested_by").order_by(
        "-period_end", "version", "-id"
    )
