"""Labels as CSV or JSON Lines, streamed: a batch export never sits whole in memory."""

import csv
import json
from collections.abc import Iterator

from .models import Label

FIELDS = [
    "batch",
    "batch_kind",
    "position",
    "langfuse_id",
    "started_at",
    "tier",
    "classifier_version",
    "reviewer",
    "value",
    "comment",
    "reasons",
    "final_value",
    "input_text",
]


def label_rows(labels) -> Iterator[dict]:
    for label in labels.select_related("item__batch", "item__trace", "reviewer").iterator(
        chunk_size=1000
    ):
        item, trace = label.item, label.item.trace
        yield {
            "batch": item.batch_id,
            "batch_kind": item.batch.kind,
            "position": item.position,
            "langfuse_id": trace.langfuse_id,
            "started_at": trace.started_at.isoformat(),
            "tier": trace.tier,
            "classifier_version": trace.classifier_version,
            "reviewer": label.reviewer.get_username(),
            "value": label.value,
            "comment": label.comment,
            "reasons": ",".join(label.reasons),
            "final_value": item.final_value,
            "input_text": trace.input_text,
        }


class _Echo:
    def write(self, value):
        return value


def as_csv(rows: Iterator[dict]) -> Iterator[str]:
    writer = csv.DictWriter(_Echo(), fieldnames=FIELDS)
    yield writer.writeheader()
    for row in rows:
        yield writer.writerow({key: _inert(value) for key, value in row.items()})


def _inert(value):
    """Spreadsheets run cells starting with = + - @ (or a tab/CR before them) as formulas;
    prompts and comments are untrusted, so such cells get a leading quote."""
    if isinstance(value, str) and value and value[0] in "=+-@\t\r":
        return "'" + value
    return value


def as_jsonl(rows: Iterator[dict]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row, ensure_ascii=False) + "\n"


def labels_for_batch(batch_id: int):
    return Label.objects.filter(item__batch_id=batch_id).order_by("item__position", "created_at")
