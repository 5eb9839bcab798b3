"""Writes of the labeling workflow: batches, claims, labels, adjudication.

Each runs in one transaction and leaves an audit record; label write-back to Langfuse is
queued on commit, so a rolled-back label never reaches Langfuse.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePath

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from audit.services import audit_record
from cascade_admin.actors import user_of
from cascade_admin.errors import Conflict

from .label_files import LabelFileError, ParsedFile, parse_label_file
from .models import (
    Batch,
    BatchItem,
    BatchKind,
    ImportedLabel,
    Label,
    LabelImport,
    LabelValue,
    ScoreRetraction,
)
from .sampling import double_review_ids, draw, period_traces
from .selectors import JUDGEMENTS, disagreements
from .sync import input_fingerprint

MAX_BATCH_SIZE = 5_000
CLAIM_FOR = timedelta(minutes=10)
STALE_UNDO = "That label was undone already or is no longer your last one; nothing changed."


@transaction.atomic
def batch_create(
    *,
    actor,
    kind: str,
    period_start: datetime,
    period_end: datetime,
    size: int,
    name: str = "",
    seed: int | None = None,
    classifier_version: str = "",
    blind: bool | None = None,
    double_review_share: float = 0.0,
    options: dict | None = None,
) -> Batch:
    """Draw a sample and store it as a batch; the strategy and seed are recorded with it."""
    errors = {}
    if kind not in BatchKind.values:
        errors["kind"] = [f"Must be one of {', '.join(BatchKind.values)}."]
    if not 1 <= size <= MAX_BATCH_SIZE:
        errors["size"] = [f"Must be between 1 and {MAX_BATCH_SIZE:,}."]
    if period_start >= period_end:
        errors["period_end"] = ["Must be after the period start."]
    if not 0 <= double_review_share <= 1:
        errors["double_review_share"] = ["Must be between 0 and 1."]
    if errors:
        raise ValidationError(errors)
    seed = secrets.randbits(31) if seed is None else seed
    options = dict(options or {})
    if kind == BatchKind.NEAR_THRESHOLD:
        options = {**_thresholds_of(classifier_version), **options}
    traces = period_traces(period_start, period_end, classifier_version=classifier_version)
    sample = draw(kind, traces, size, seed, options)
    if not sample.trace_ids:
        raise ValidationError({"period_start": ["No traces in this period match the strategy."]})
    batch = Batch.objects.create(
        name=name
        or f"{BatchKind(kind).label.split(':')[0]} {period_start:%Y-%m-%d}–{period_end:%m-%d}",
        kind=kind,
        strategy={
            "kind": kind,
            "size": size,
            "classifier_version": classifier_version,
            "options": options,
            "deduplicated": True,
            "distinct": sample.distinct,
        },
        seed=seed,
        period_start=period_start,
        period_end=period_end,
        population=sample.population,
        blind=(kind == BatchKind.HEADLINE) if blind is None else blind,
        double_review_share=double_review_share,
        created_by=user_of(actor),
    )
    doubled = double_review_ids(sample.trace_ids, double_review_share, seed)
    BatchItem.objects.bulk_create(
        BatchItem(
            batch=batch,
            trace_id=trace_id,
            position=position,
            stratum=sample.strata.get(trace_id, ""),
            weight=sample.weights.get(trace_id, 1.0),
            requests=sample.requests.get(trace_id, 1),
            reviews_required=2 if trace_id in doubled else 1,
        )
        for position, trace_id in enumerate(sample.trace_ids, start=1)
    )
    audit_record(
        actor=actor,
        action="batch.create",
        obj=batch,
        after={**batch.strategy, "seed": seed, "items": len(sample.trace_ids)},
    )
    return batch


def _thresholds_of(version_name: str) -> dict:
    """The thresholds "near" means: the named version's, else the newest frozen one's."""
    from routing.models import ClassifierVersion, VersionStatus

    versions = ClassifierVersion.objects.filter(status=VersionStatus.FROZEN)
    if version_name:
        versions = ClassifierVersion.objects.filter(name=version_name)
    version = versions.order_by("-frozen_at", "-id").first()
    if version is None:
        return {}
    return {"token_threshold": version.token_threshold, "turn_threshold": version.turn_threshold}


def _open_items(batch: Batch, reviewer):
    """Items this reviewer may still label: not seen by them, judgements still missing.

    A skip is one reviewer passing, not a review: the item stays open for the others.
    """
    return (
        BatchItem.objects.filter(batch=batch)
        .exclude(labels__reviewer=reviewer)
        .annotate(done=Count("labels", filter=~Q(labels__value=LabelValue.SKIPPED)))
        .filter(done__lt=F("reviews_required"))
    )


@transaction.atomic
def item_claim_next(*, batch: Batch, reviewer) -> BatchItem | None:
    """The next item for ``reviewer``, held for them for a while.

    An item claimed by another reviewer is skipped until the claim lapses, and
    ``skip_locked`` keeps two simultaneous requests from taking the same row. The claim test
    sits on the locked row itself, not in the subquery: PostgreSQL re-checks it against a
    claim committed while this request waited, which a subquery's snapshot would miss.
    """
    now = timezone.now()
    mine = _open_items(batch, reviewer).filter(claimed_by=reviewer, claimed_until__gt=now)
    item = mine.order_by("position").first()
    if item:
        return item
    free = Q(claimed_by__isnull=True) | Q(claimed_until__lte=now) | Q(claimed_by=reviewer)
    open_ids = _open_items(batch, reviewer).values("id")
    item = (
        BatchItem.objects.select_for_update(skip_locked=True)
        .filter(free, id__in=open_ids)
        .order_by("position")
        .first()
    )
    if item is None:
        return None
    item.claimed_by, item.claimed_until = reviewer, now + CLAIM_FOR
    item.save(update_fields=["claimed_by", "claimed_until"])
    return item


@transaction.atomic
def label_submit(
    *, reviewer, item: BatchItem, value: str, comment: str = "", reasons: list[str] | None = None
) -> Label:
    """Record (or change) this reviewer's label of ``item`` and queue its Langfuse score."""
    if value not in LabelValue.values:
        raise ValidationError({"value": [f"Must be one of {', '.join(LabelValue.values)}."]})
    reasons = [str(r)[:40] for r in (reasons or [])][:10]
    item = BatchItem.objects.select_for_update().get(pk=item.pk)
    if item.final_value:
        # An operator settled it: the adjudicated value is the item's label for good.
        raise Conflict(
            f"An operator settled this item as {item.final_value}: labels can no longer change."
        )
    held = item.claimed_until is not None and item.claimed_until > timezone.now()
    if held and item.claimed_by_id not in (None, reviewer.pk):
        raise Conflict(
            "Another reviewer has this item open; it is yours to label once their claim "
            f"expires ({item.claimed_until:%H:%M} UTC)."
        )
    existing = Label.objects.filter(item=item, reviewer=reviewer).first()
    judged_before = existing is not None and existing.value != LabelValue.SKIPPED
    if value == LabelValue.SKIPPED and judged_before:
        # The judgement may be in Langfuse already; a skip would leave it there unexplained.
        raise Conflict("You labeled this item already: change the label instead of skipping.")
    if value != LabelValue.SKIPPED and not judged_before:
        others = item.labels.exclude(value=LabelValue.SKIPPED).exclude(reviewer=reviewer).count()
        if others >= item.reviews_required:
            raise Conflict("This item already has all the labels it needs.")
    before = {"value": existing.value, "comment": existing.comment} if existing else None
    label, _ = Label.objects.update_or_create(
        item=item,
        reviewer=reviewer,
        defaults={
            "value": value,
            "comment": comment[:5000],
            "reasons": reasons,
            "langfuse_sent_at": None,
            "langfuse_error": "",
        },
    )
    if item.claimed_by_id == reviewer.pk:
        item.claimed_by, item.claimed_until = None, None
        item.save(update_fields=["claimed_by", "claimed_until"])
    audit_record(
        actor=reviewer,
        action="label.change" if existing else "label.create",
        obj=label,
        before=before,
        after={"value": value, "comment": label.comment, "trace": item.trace.langfuse_id},
    )
    if value != LabelValue.SKIPPED:
        from .tasks import queue_label_push

        transaction.on_commit(lambda: queue_label_push(label.pk))
    return label


@transaction.atomic
def label_undo(*, reviewer, batch: Batch, label_id: int | None = None) -> BatchItem:
    """Take back ``reviewer``'s most recent judgement or skip in ``batch``.

    The label goes and the item is held for them again, so it is the next item they get and
    can be labeled afresh; a judgement's Langfuse score is deleted after commit. Only their
    own label, never on an item an operator settled. ``label_id``, when given, is the label
    the caller means: a repeated request (a double key press) then finds it gone and stops
    instead of taking back the label before it. Refused, changing nothing, when another
    reviewer holds the item now or it got every label it needs without this one.
    """
    label = (
        Label.objects.filter(item__batch=batch, reviewer=reviewer)
        .order_by("-updated_at", "-id")
        .first()
    )
    if label_id is not None and (label is None or label.pk != label_id):
        raise Conflict(STALE_UNDO)
    if label is None:
        raise Conflict("You have no label in this batch to undo.")
    item = BatchItem.objects.select_for_update().select_related("trace").get(pk=label.item_id)
    # Re-read under the item's lock: a concurrent undo or relabel may have changed it.
    label = Label.objects.filter(pk=label.pk).first()
    if label is None:
        raise Conflict(STALE_UNDO)
    if item.final_value:
        raise Conflict("An operator settled this item; its labels can no longer be undone.")
    now = timezone.now()
    held = item.claimed_until is not None and item.claimed_until > now
    if held and item.claimed_by_id not in (None, reviewer.pk):
        raise Conflict("Another reviewer has this item open; undo it when they are done.")
    others = item.labels.exclude(value=LabelValue.SKIPPED).exclude(reviewer=reviewer).count()
    if others >= item.reviews_required:
        raise Conflict("Other reviewers labeled this item meanwhile; it needs no label from you.")
    judged = label.value != LabelValue.SKIPPED
    audit_record(
        actor=reviewer,
        action="label.undo",
        obj=label,
        before={
            "value": label.value,
            "comment": label.comment,
            "reasons": label.reasons,
            "trace": item.trace.langfuse_id,
            "langfuse_sent": label.langfuse_sent_at is not None,
        },
        after={"value": None, "trace": item.trace.langfuse_id, "claimed_by": reviewer.pk},
    )
    if judged:
        from .tasks import retract_label_later
        from .writeback import score_id

        sent_as = score_id(label)
        ScoreRetraction.objects.update_or_create(
            score_id=sent_as, defaults={"item": item, "confirmed_at": None, "sent_at": None}
        )
        transaction.on_commit(lambda: retract_label_later(sent_as))
    label.delete()
    item.claimed_by, item.claimed_until = reviewer, now + CLAIM_FOR
    item.label_removed_at = now
    item.save(update_fields=["claimed_by", "claimed_until", "label_removed_at"])
    return item


@transaction.atomic
def item_adjudicate(*, actor, item: BatchItem, value: str, note: str = "") -> BatchItem:
    """An operator settles a disagreement between two reviewers; the final value is queued
    for Langfuse as the trace's label score. Only open disagreements can be settled."""
    if value not in (LabelValue.WEAK_SUFFICIENT, LabelValue.STRONG_NEEDED):
        raise ValidationError({"value": ["Choose weak_sufficient or strong_needed."]})
    item = BatchItem.objects.select_for_update().select_related("trace").get(pk=item.pk)
    is_user = user_of(actor) is not None
    own = is_user and item.labels.filter(reviewer=actor, value__in=JUDGEMENTS).exists()
    if own and not note.strip():
        raise ValidationError(
            {"note": ["You labeled this item yourself: say why you settle it (a reason)."]}
        )
    if not disagreements().filter(pk=item.pk).exists():
        raise Conflict(
            "This item is settled already." if item.final_value else "This item is not disputed."
        )
    item.final_value, item.adjudicated_by, item.adjudicated_at = value, actor, timezone.now()
    item.final_sent_at, item.final_error = None, ""
    item.save(
        update_fields=[
            "final_value",
            "adjudicated_by",
            "adjudicated_at",
            "final_sent_at",
            "final_error",
        ]
    )
    audit_record(
        actor=actor,
        action="item.adjudicate",
        obj=item,
        before={"final_value": ""},
        after={"final_value": value, "trace": item.trace.langfuse_id, "own_label": own},
        message=note,
    )
    from .tasks import push_final

    transaction.on_commit(lambda: push_final.delay(item.pk))
    return item


PREVIEW_ROWS = 10
AUDITED_REPLACEMENTS = 1_000  # replaced labels listed in the audit record (all are counted)


@dataclass
class ImportOutcome:
    """What an import did, or (dry run) would do."""

    parsed: ParsedFile
    label_import: LabelImport | None
    replaced: int
    dry_run: bool

    def summary(self) -> dict:
        rows = self.parsed.rows
        return {
            "format": self.parsed.format,
            "sha256": self.parsed.sha256,
            "records": self.parsed.total,
            "imported": 0 if self.dry_run else len(rows),
            "valid": len(rows),
            "strong_needed": sum(r.label == LabelValue.STRONG_NEEDED for r in rows),
            "weak_sufficient": sum(r.label == LabelValue.WEAK_SUFFICIENT for r in rows),
            "replaces": self.replaced,
            "bad_rows": [{"line": b.line, "reason": b.reason} for b in self.parsed.bad],
            "preview": [
                {
                    "line": r.line,
                    "id": r.external_id,
                    "label": r.label,
                    "turns": r.turn_count,
                    "text": r.text[:200],
                }
                for r in rows[:PREVIEW_ROWS]
            ],
            "dry_run": self.dry_run,
            "import": self.label_import.pk if self.label_import else None,
        }


class _DryRun(Exception):
    """Rolls a dry run's transaction back after it has counted what it would replace."""


def label_import_create(
    *,
    actor,
    data: bytes,
    filename: str = "",
    name: str = "",
    dry_run: bool = False,
    skip_bad: bool = False,
) -> ImportOutcome:
    """Import a file of labels (JSONL or CSV) as training labels.

    A file with a bad row imports nothing and lists every bad row, unless ``skip_bad``. The
    same file twice is refused while its first import stands; a row whose id was imported
    before replaces that label. A dry run reports the same and writes nothing.
    """
    try:
        parsed = parse_label_file(data, filename)
    except LabelFileError as e:
        raise ValidationError({"file": [str(e)]}) from None
    if parsed.bad and not skip_bad:
        raise ValidationError(
            {"file": [f"{len(parsed.bad)} bad row(s); nothing imported."]}
            | {"rows": [f"line {b.line}: {b.reason}" for b in parsed.bad]}
        )
    if not parsed.rows:
        raise ValidationError({"file": ["No usable rows; nothing imported."]})
    name = (name or PurePath(filename).name or f"import {parsed.sha256[:12]}")[:120]
    try:
        with transaction.atomic():
            outcome = _import(actor, parsed, filename, name, dry_run)
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    return outcome


def _import(actor, parsed: ParsedFile, filename: str, name: str, dry_run: bool) -> ImportOutcome:
    earlier = LabelImport.objects.filter(sha256=parsed.sha256, undone_at__isnull=True).first()
    if earlier is not None:
        raise Conflict(
            f"This file was imported already as {earlier.name!r} (import {earlier.pk}, "
            f"{earlier.created_at:%Y-%m-%d %H:%M} UTC); undo that import to bring it in again."
        )
    ids = [r.external_id for r in parsed.rows if r.external_id]
    replaced = list(
        ImportedLabel.objects.select_for_update()
        .filter(external_id__in=ids, replaced_by__isnull=True, label_import__undone_at__isnull=True)
        .values("id", "external_id", "label", "label_import_id")
    )
    if dry_run:
        return ImportOutcome(parsed, None, len(replaced), True)
    try:
        with transaction.atomic():
            label_import = LabelImport.objects.create(
                name=name,
                filename=filename[:255],
                format=parsed.format,
                sha256=parsed.sha256,
                records=parsed.total,
                imported=len(parsed.rows),
                replaced=len(replaced),
                skipped=[[b.line, b.reason] for b in parsed.bad],
                created_by=user_of(actor),
            )
    except IntegrityError:
        raise Conflict("The same file is being imported right now.") from None
    ImportedLabel.objects.filter(id__in=[r["id"] for r in replaced]).update(
        replaced_by=label_import
    )
    ImportedLabel.objects.bulk_create(
        (
            ImportedLabel(
                label_import=label_import,
                line=r.line,
                external_id=r.external_id,
                messages=r.messages,
                input_text=r.text,
                input_hash=input_fingerprint(r.text),
                char_count=len(r.text),
                turn_count=r.turn_count,
                label=r.label,
                tier=r.tier,
                user_id=r.user_id,
                labeled_at=r.timestamp,
                comment=r.comment,
            )
            for r in parsed.rows
        ),
        batch_size=1_000,
    )
    new_labels = {r.external_id: r.label for r in parsed.rows if r.external_id}
    audit_record(
        actor=actor,
        action="label_import.create",
        obj=label_import,
        after={
            "filename": filename,
            "format": parsed.format,
            "sha256": parsed.sha256,
            "imported": len(parsed.rows),
            "skipped": len(parsed.bad),
            "replaced": len(replaced),
            "replacements": [
                {
                    "id": r["external_id"],
                    "import": r["label_import_id"],
                    "before": r["label"],
                    "after": new_labels[r["external_id"]],
                }
                for r in replaced[:AUDITED_REPLACEMENTS]
            ],
        },
    )
    return ImportOutcome(parsed, label_import, len(replaced), False)


@transaction.atomic
def label_import_undo(*, actor, label_import: LabelImport) -> LabelImport:
    """Take a whole import back: its labels go, the labels it had replaced come back."""
    label_import = LabelImport.objects.select_for_update().get(pk=label_import.pk)
    if label_import.undone_at is not None:
        raise Conflict(f"Import {label_import.pk} was undone already.")
    removed = label_import.labels.count()
    label_import.labels.all().delete()
    restored = 0
    for row in ImportedLabel.objects.select_for_update().filter(replaced_by=label_import):
        holder = (
            ImportedLabel.objects.filter(external_id=row.external_id, replaced_by__isnull=True)
            .exclude(label_import=label_import)
            .first()
        )
        # A later import may hold the id by now: the old label stays replaced, by that one.
        row.replaced_by = holder.label_import if holder else None
        row.save(update_fields=["replaced_by"])
        restored += holder is None
    label_import.undone_at = timezone.now()
    label_import.undone_by = user_of(actor)
    label_import.save(update_fields=["undone_at", "undone_by"])
    audit_record(
        actor=actor,
        action="label_import.undo",
        obj=label_import,
        before={"labels": removed},
        after={"removed": removed, "restored": restored},
    )
    return label_import
