"""Read operators' existing labeled conversations: JSON Lines, or CSV as pandas writes it.

Pure: bytes in, a ParsedFile out; no models, no database. A record that cannot be used
becomes a BadRow whose reason names the field, so one bad line never sinks an import; only
a file that cannot be read at all raises LabelFileError.
"""

from __future__ import annotations

import ast
import codecs
import csv
import hashlib
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

from routing.engine.text import MessagesError, conversation_text, require_unicode

MAX_BYTES = 50 * 1024 * 1024
MAX_ROWS = 200_000
MAX_LENGTHS = {"id": 200, "user_id": 200, "comment": 10_000}

LABELS = {
    "strong": "strong_needed",
    "strong_needed": "strong_needed",
    "weak": "weak_sufficient",
    "weak_sufficient": "weak_sufficient",
}
TIERS = {"", "weak", "strong"}
# pandas writes None/NaN as an empty cell; ``astype(str)`` would have written these instead.
MISSING = {"", "nan", "none", "null"}

JSONL_EXTENSIONS = {".jsonl", ".ndjson", ".json-lines"}
LABEL_COLUMNS = ("label", "ground_truth")
CONVERSATION_COLUMNS = ("messages", "input", "prompt")
ID_COLUMNS = ("id", "trace_id")
OPTIONAL_COLUMNS = ("user_id", "timestamp", "tier", "comment")
KNOWN_COLUMNS = {*LABEL_COLUMNS, *CONVERSATION_COLUMNS, *ID_COLUMNS, *OPTIONAL_COLUMNS}

# A record's fields before validation; ``id`` and ``labels`` carry the name they came from.
Fields = dict[str, Any]


@dataclass(frozen=True)
class LabelRow:
    """One usable record; strings are trimmed and free of NULs."""

    line: int  # the record's first physical line, 1-based (a CSV header is line 1)
    external_id: str  # "" when the file has no id
    messages: list[dict]  # OpenAI chat format
    text: str  # conversation_text(messages)
    turn_count: int
    label: str  # "strong_needed" | "weak_sufficient"
    user_id: str
    timestamp: datetime | None  # aware, UTC
    tier: str  # "", "weak" or "strong": where the router sent it
    comment: str


@dataclass(frozen=True)
class BadRow:
    """One unusable record; the reason is a sentence that starts with the field's name."""

    line: int
    reason: str


@dataclass
class ParsedFile:
    format: str  # "jsonl" | "csv"
    rows: list[LabelRow]
    bad: list[BadRow]
    sha256: str  # of the raw bytes
    total: int  # records seen: len(rows) + len(bad)


class LabelFileError(ValueError):
    """The whole file is unusable; the message says why."""


class _Bad(Exception):
    """One record is unusable; the message is the BadRow's reason."""


def parse_label_file(data: bytes, filename: str = "") -> ParsedFile:
    """Parse a label file; the extension picks the format, else its first character does."""
    if len(data) > MAX_BYTES:
        raise LabelFileError(f"the file is {len(data):,} bytes; the limit is {MAX_BYTES:,}")
    text = _decode(data)
    if not text.strip():
        raise LabelFileError("the file is empty")
    fmt = _format(text, filename)
    parsed = ParsedFile(fmt, [], [], hashlib.sha256(data).hexdigest(), 0)
    first_lines: dict[str, int] = {}
    for line, fields in _jsonl_records(text) if fmt == "jsonl" else _csv_records(text):
        parsed.total += 1
        if parsed.total > MAX_ROWS:
            raise LabelFileError(f"the file has more than {MAX_ROWS:,} records")
        try:
            if isinstance(fields, _Bad):  # the record did not even parse
                raise fields
            parsed.rows.append(_row(line, fields, first_lines))
        except _Bad as bad:
            parsed.bad.append(BadRow(line, str(bad)))
    if not parsed.total:
        raise LabelFileError("the file has no records")
    return parsed


def _decode(data: bytes) -> str:
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = start + exc.start
        raise LabelFileError(
            f"the file is not UTF-8 text: byte 0x{data[offset]:02x} at offset {offset} "
            "does not decode (save it as UTF-8)"
        ) from None


def _format(text: str, filename: str) -> str:
    suffix = PurePath(filename).suffix.lower()
    if suffix in JSONL_EXTENSIONS:
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    first = text.lstrip()[0]
    if first == "[":
        # Sniffing would call this CSV and then complain about its columns.
        raise LabelFileError("unknown format: a JSON array; upload JSON Lines, one object a line")
    return "jsonl" if first == "{" else "csv"


def _jsonl_records(text: str) -> Iterator[tuple[int, Fields | _Bad]]:
    # Split on "\n" only: JSON strings may hold a raw U+2028, which splitlines() splits on.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            # NaN is accepted (json.dumps writes it for pandas' missing values) and then
            # treated as missing; _json_clean keeps it out of messages.
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, _Bad(f"line is not valid JSON: {exc.msg} at column {exc.colno}")
            continue
        except RecursionError:
            yield number, _Bad("line is not valid JSON: nested too deeply")
            continue
        if not isinstance(record, dict):
            yield number, _Bad(f"line is a JSON {_json_type(record)}, not an object")
            continue
        fields = {
            "id": ("id", record.get("id")),
            "labels": [("label", record.get("label"))],
            "messages": record.get("messages"),
            **{name: record.get(name) for name in OPTIONAL_COLUMNS},
        }
        yield number, fields


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", int: "number", float: "number"}
    names |= {bool: "boolean", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _csv_records(text: str) -> Iterator[tuple[int, Fields | _Bad]]:
    # A conversation cell easily outgrows the csv module's 128 KiB default; the file limit
    # still bounds it. The setting is process-wide, so it is only ever raised.
    csv.field_size_limit(max(csv.field_size_limit(), MAX_BYTES))
    # newline="" keeps a quoted cell's line breaks; strict refuses an unclosed quote
    # instead of swallowing the rest of the file into one cell.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    columns: dict[str, int] | None = None
    width = 0
    while True:
        start = reader.line_num + 1  # a record's first physical line
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise LabelFileError(
                f"CSV record starting on line {start} does not parse: {exc}"
            ) from None
        if not any(cell.strip() for cell in cells):
            continue
        if columns is None:
            columns = _csv_columns(cells)
            width = len(cells)
            continue
        if len(cells) != width:
            yield start, _Bad(f"row has {len(cells)} fields but the header has {width}")
            continue
        fields = {
            "id": _first_filled(cells, columns, ID_COLUMNS) or ("id", ""),
            "labels": [(name, cells[columns[name]]) for name in LABEL_COLUMNS if name in columns],
            "conversation": _first_filled(cells, columns, CONVERSATION_COLUMNS),
            **{name: cells[columns[name]] if name in columns else "" for name in OPTIONAL_COLUMNS},
        }
        yield start, fields


def _first_filled(
    cells: list[str], columns: dict[str, int], names: tuple[str, ...]
) -> tuple[str, str] | None:
    """(column, cell) of the first of ``names`` that this row fills in."""
    for name in names:
        if name in columns and cells[columns[name]].strip():
            return name, cells[columns[name]]
    return None


def _csv_columns(header: list[str]) -> dict[str, int]:
    """Column name -> index; the unnamed pandas index column and unknown ones are ignored."""
    columns: dict[str, int] = {}
    for index, name in enumerate(header):
        name = name.strip().lower()
        if name in columns and name in KNOWN_COLUMNS:
            raise LabelFileError(f"the CSV header has the column {name!r} twice")
        columns.setdefault(name, index)
    found = ", ".join(repr(name) for name in header) or "none"
    for kind, names in (("label", LABEL_COLUMNS), ("conversation", CONVERSATION_COLUMNS)):
        if not any(name in columns for name in names):
            looked_for = " or ".join(repr(name) for name in names)
            raise LabelFileError(f"no {kind} column: looked for {looked_for}; found {found}")
    return columns


def _row(line: int, fields: Fields, first_lines: dict[str, int]) -> LabelRow:
    id_field, id_value = fields["id"]
    external_id = _string(id_value, id_field, MAX_LENGTHS["id"], numbers=True)
    if external_id:
        # The first record with an id claims it even if it is bad for another reason:
        # the file does hold the id twice.
        first = first_lines.setdefault(external_id, line)
        if first != line:
            raise _Bad(f"{id_field}: {_show(external_id)} appears again (first on line {first})")
    label = _label(fields["labels"])
    if "messages" in fields:
        raw = fields["messages"]
    else:
        raw = _cell_messages(*fields["conversation"]) if fields["conversation"] else None
    messages, text = _messages(raw)
    return LabelRow(
        line=line,
        external_id=external_id,
        messages=messages,
        text=text,
        turn_count=len(messages),
        label=label,
        user_id=_string(fields["user_id"], "user_id", MAX_LENGTHS["user_id"]),
        timestamp=_timestamp(fields["timestamp"]),
        tier=_tier(fields["tier"]),
        comment=_string(fields["comment"], "comment", MAX_LENGTHS["comment"]),
    )


def _missing(value: Any) -> bool:
    if isinstance(value, str):
        return value.replace("\0", "").strip().lower() in MISSING
    return value is None or (isinstance(value, float) and math.isnan(value))


def _show(value: Any) -> str:
    """A value for a reason: repr'd, and cut short so one sentence stays one sentence."""
    if isinstance(value, str) and len(value) > 60:
        value = value[:57] + "..."
    return repr(value)


def _string(value: Any, field: str, max_length: int | None = None, numbers: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if numbers and isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise _Bad(f"{field}: {value} is not a usable id")
        # pandas turns an int column with gaps into floats: 7.0 means "7".
        value = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    if not isinstance(value, str):
        raise _Bad(f"{field}: must be a string, got {_json_type(value)}")
    value = value.replace("\0", "").strip()
    try:
        if not value.isascii():
            require_unicode(value, "the text")
    except MessagesError as exc:
        raise _Bad(f"{field}: {exc}") from None
    if max_length is not None and len(value) > max_length:
        raise _Bad(f"{field}: {len(value):,} characters; at most {max_length:,} allowed")
    return value


def _label(candidates: list[tuple[str, Any]]) -> str:
    """The label from ``label`` and/or ``ground_truth``; given both, they must agree."""
    found: dict[str, tuple[str, str]] = {}
    for field, value in candidates:
        if _missing(value):
            continue
        text = _string(value, field) if isinstance(value, str) else value
        label = LABELS.get(text.lower()) if isinstance(text, str) else None
        if label is None:
            raise _Bad(f"{field}: {_show(text)} is not strong/weak/strong_needed/weak_sufficient")
        found[field] = (text, label)
    if not found:
        raise _Bad("label: missing")
    if len({label for _, label in found.values()}) > 1:
        (field_a, (a, _)), (field_b, (b, _)) = found.items()
        raise _Bad(f"{field_a}: {_show(a)} disagrees with {field_b}: {_show(b)}")
    return next(iter(found.values()))[1]


def _cell_messages(column: str, cell: str) -> Any:
    """A CSV conversation cell: a message list (JSON, or the Python repr pandas writes for a
    list of dicts), else plain user text. Python literals go through ast.literal_eval, which
    builds constants and never runs code."""
    stripped = cell.strip()
    if stripped.startswith("["):
        for parse in (json.loads, ast.literal_eval):
            try:
                value = parse(stripped)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                continue
            if isinstance(value, list) and (
                column == "messages" or all(isinstance(item, dict) for item in value)
            ):
                return value
        if "'role'" in stripped or '"role"' in stripped:
            raise _Bad(f"{column}: looks like a message list but does not parse")
    if column == "messages":
        raise _Bad("messages: is not a JSON list of chat messages")
    return [{"role": "user", "content": cell}]


def _messages(value: Any) -> tuple[list[dict], str]:
    if value is None:
        raise _Bad("messages: missing")
    if not isinstance(value, list) or not value:
        got = "an empty list" if isinstance(value, list) else _json_type(value)
        raise _Bad(f"messages: must be a non-empty list of chat messages, got {got}")
    try:
        messages = _json_clean(value, "messages")
        text = conversation_text(messages)
    except MessagesError as exc:
        raise _Bad(f"messages: {exc}") from None
    except RecursionError:
        raise _Bad("messages: nested too deeply") from None
    for index, message in enumerate(messages):
        if not isinstance(message.get("role"), str):
            raise _Bad(f"messages: messages[{index}].role must be a string")
    if not text.strip():
        raise _Bad("messages: no text")
    return messages, text


def _json_clean(value: Any, where: str) -> Any:
    """A copy with NULs stripped (PostgreSQL refuses them); MessagesError for anything
    JSON cannot store: a lone surrogate, NaN, or the bytes and sets literal_eval builds."""
    if isinstance(value, str):
        value = value.replace("\0", "")
        if not value.isascii():
            require_unicode(value, where)
        return value
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, list | tuple):
        return [_json_clean(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, dict):
        cleaned = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise MessagesError(f"{where} has a key {key!r} that is not a string")
            cleaned[_json_clean(key, where)] = _json_clean(item, f"{where}.{key}")
        return cleaned
    raise MessagesError(f"{where} holds {value!r}, which JSON cannot store")


def _timestamp(value: Any) -> datetime | None:
    text = _string(value, "timestamp")
    if not text:
        return None
    iso = text[:-1] + "+00:00" if text[-1] in "Zz" else text
    try:
        parsed = datetime.fromisoformat(iso)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _Bad(f"timestamp: {_show(text)} is not an ISO 8601 date and time") from None


def _tier(value: Any) -> str:
    text = _string(value, "tier")
    if text.lower() not in TIERS:
        raise _Bad(f"tier: {_show(text)} is not weak or strong")
    return text.lower()
