"""Label files: JSON Lines and pandas-written CSV in, label rows and reasoned bad rows out."""

import csv
import hashlib
import io
import json
import os
from datetime import UTC, datetime

import pytest

from labeling import label_files
from labeling.label_files import BadRow, LabelFileError, parse_label_file

HELLO = [{"role": "user", "content": "Hello there"}]


def jsonl(*records) -> bytes:
    """JSON Lines; a str record is written as it is (for broken lines), "" as a blank line."""
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]
    return ("\n".join(lines) + "\n").encode()


def pandas_csv(header, rows) -> bytes:
    """A CSV as ``DataFrame.to_csv`` writes it: unnamed index column, minimal quoting, "\\n"."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["", *header])
    for index, row in enumerate(rows):
        writer.writerow([index, *("" if cell is None else cell for cell in row)])
    return out.getvalue().encode()


def test_a_jsonl_record_with_every_optional_field_becomes_a_label_row():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Cafe\u0301 hours?"}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]},
    ]
    record = {
        "id": "trace-1",
        "messages": messages,
        "label": "strong",
        "user_id": "u-42",
        "timestamp": "2026-03-01T09:30:00+09:00",
        "tier": "Weak",
        "comment": "needs the menu",
        "model": "ignored",
        "extra": {"also": "ignored"},
    }
    parsed = parse_label_file(jsonl(record), "labels.jsonl")

    assert parsed.format == "jsonl"
    assert (parsed.total, parsed.bad) == (1, [])
    (row,) = parsed.rows
    assert row.line == 1
    assert row.external_id == "trace-1"
    assert row.messages == messages
    assert row.text == "Be brief. Caf\u00e9 hours?"  # NFC, space-joined
    assert row.turn_count == 3
    assert row.label == "strong_needed"
    assert row.user_id == "u-42"
    assert row.timestamp == datetime(2026, 3, 1, 0, 30, tzinfo=UTC)
    assert row.tier == "weak"
    assert row.comment == "needs the menu"


@pytest.mark.parametrize(
    "line",
    [
        '{"messages": [{"role": "user", "content": "Hello there"}], "label": "weak"}',
        '{"id": null, "messages": [{"role": "user", "content": "Hello there"}], "label": "weak",'
        ' "user_id": NaN, "timestamp": null, "tier": null, "comment": NaN}',
    ],
)
def test_absent_null_or_nan_optional_fields_are_empty(line):
    (row,) = parse_label_file(jsonl(line)).rows
    assert (row.external_id, row.user_id, row.timestamp, row.tier, row.comment) == (
        "",
        "",
        None,
        "",
        "",
    )


@pytest.mark.parametrize(
    ("spelling", "label"),
    [
        ("strong", "strong_needed"),
        ("STRONG", "strong_needed"),
        ("strong_needed", "strong_needed"),
        (" Strong_Needed ", "strong_needed"),
        ("weak", "weak_sufficient"),
        ("Weak", "weak_sufficient"),
        ("weak_sufficient", "weak_sufficient"),
        ("WEAK_SUFFICIENT\t", "weak_sufficient"),
    ],
)
def test_each_label_spelling_maps_to_its_label(spelling, label):
    (row,) = parse_label_file(jsonl({"messages": HELLO, "label": spelling})).rows
    assert row.label == label


def good(n):
    return {"id": f"good-{n}", "messages": HELLO, "label": "weak"}


BAD_JSONL_LINES = [
    pytest.param('{"messages": [', "line is not valid JSON", id="bad-json"),
    pytest.param(
        '{"label": NaN, "messages": [{"role": "user", "content": "hi"}]}',
        "label: missing",
        id="nan-label",
    ),
    pytest.param(
        '{"label": "weak", "messages": [{"role": "user", "content": "hi", "score": NaN}]}',
        "messages: messages[0].score holds nan, which JSON cannot store",
        id="nan-in-messages",
    ),
    pytest.param('["not", "an", "object"]', "line is a JSON array, not an object", id="array"),
    pytest.param('"just a string"', "line is a JSON string, not an object", id="string"),
    pytest.param({"messages": HELLO}, "label: missing", id="no-label"),
    pytest.param({"messages": HELLO, "label": None}, "label: missing", id="null-label"),
    pytest.param({"messages": HELLO, "label": " "}, "label: missing", id="blank-label"),
    pytest.param(
        {"messages": HELLO, "label": "maybe"},
        "label: 'maybe' is not strong/weak/strong_needed/weak_sufficient",
        id="unknown-label",
    ),
    pytest.param({"messages": HELLO, "label": 1}, "label: 1 is not strong", id="numeric-label"),
    pytest.param({"label": "weak"}, "messages: missing", id="no-messages"),
    pytest.param(
        {"messages": "hi", "label": "weak"},
        "messages: must be a non-empty list of chat messages, got string",
        id="messages-not-a-list",
    ),
    pytest.param(
        {"messages": [], "label": "weak"},
        "messages: must be a non-empty list of chat messages, got an empty list",
        id="messages-empty",
    ),
    pytest.param(
        {"messages": ["hi"], "label": "weak"},
        "messages: messages[0] must be an object",
        id="message-not-an-object",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": 7}], "label": "weak"},
        "messages: messages[0].content must be a string, a list of parts or null",
        id="bad-content-type",
    ),
    pytest.param(
        '{"messages": [{"role": "user", "content": "bad \\ud800"}], "label": "weak"}',
        "messages: messages[0].content contains a lone surrogate (U+D800)",
        id="lone-surrogate",
    ),
    pytest.param(
        {"messages": [{"content": "hi"}], "label": "weak"},
        "messages: messages[0].role must be a string",
        id="no-role",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": "  "}], "label": "weak"},
        "messages: no text",
        id="empty-text",
    ),
    pytest.param(
        {**good(0), "id": "x", "timestamp": "yesterday"},
        "timestamp: 'yesterday' is not an ISO 8601 date and time",
        id="bad-timestamp",
    ),
    pytest.param(
        {**good(0), "id": "x", "timestamp": 1700000000},
        "timestamp: must be a string, got number",
        id="epoch-timestamp",
    ),
    pytest.param(
        {**good(0), "id": "x", "tier": "medium"},
        "tier: 'medium' is not weak or strong",
        id="bad-tier",
    ),
    pytest.param(
        {**good(0), "id": "x" * 201},
        "id: 201 characters; at most 200 allowed",
        id="long-id",
    ),
    pytest.param(
        {**good(0), "id": "x", "user_id": "u" * 201},
        "user_id: 201 characters; at most 200 allowed",
        id="long-user-id",
    ),
    pytest.param(
        {**good(0), "id": "x", "comment": "c" * 10_001},
        "comment: 10,001 characters; at most 10,000 allowed",
        id="long-comment",
    ),
    pytest.param(
        {**good(0), "id": "x", "user_id": 42},
        "user_id: must be a string, got number",
        id="numeric-user-id",
    ),
    pytest.param({**good(0), "id": "good-1"}, "id: 'good-1' appears again (first on line 1)"),
]


@pytest.mark.parametrize(("bad_line", "reason"), BAD_JSONL_LINES)
def test_a_bad_jsonl_record_is_a_bad_row_naming_the_field_and_good_rows_still_parse(
    bad_line, reason
):
    # Line 2 is blank, so the bad record is on line 3.
    parsed = parse_label_file(jsonl(good(1), "", bad_line, good(2)), "labels.jsonl")

    assert parsed.total == 3
    assert [row.line for row in parsed.rows] == [1, 4]
    (bad,) = parsed.bad
    assert bad.line == 3
    assert bad.reason.startswith(reason), bad.reason


def test_a_repeated_id_is_a_bad_row_pointing_at_its_first_line():
    parsed = parse_label_file(jsonl(good(1), good(2), good(1), good(1)))
    assert [row.external_id for row in parsed.rows] == ["good-1", "good-2"]
    assert parsed.bad == [
        BadRow(3, "id: 'good-1' appears again (first on line 1)"),
        BadRow(4, "id: 'good-1' appears again (first on line 1)"),
    ]


@pytest.mark.parametrize(("value", "expected"), [(7, "7"), (7.0, "7"), (1.5, "1.5")])
def test_a_numeric_jsonl_id_is_stringified(value, expected):
    (row,) = parse_label_file(jsonl({**good(0), "id": value})).rows
    assert row.external_id == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-01T09:30:00Z", datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
        ("2026-03-01T09:30:00+09:00", datetime(2026, 3, 1, 0, 30, tzinfo=UTC)),
        ("2026-03-01T09:30:00", datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
        ("2026-03-01 09:30:00.250000+00:00", datetime(2026, 3, 1, 9, 30, 0, 250000, tzinfo=UTC)),
        ("", None),
    ],
)
def test_timestamps_become_timezone_aware_utc(value, expected):
    (row,) = parse_label_file(jsonl({**good(0), "timestamp": value})).rows
    assert row.timestamp == expected


def test_nul_characters_are_stripped_from_every_string():
    record = {
        "id": "a\u0000b",
        "messages": [{"role": "us\u0000er", "content": [{"type": "text", "text": "h\u0000i"}]}],
        "label": "we\u0000ak",
        "user_id": "u\u00001",
        "tier": "str\u0000ong",
        "comment": "o\u0000k",
    }
    (row,) = parse_label_file(jsonl(record)).rows
    assert (row.external_id, row.label, row.user_id, row.tier, row.comment) == (
        "ab",
        "weak_sufficient",
        "u1",
        "strong",
        "ok",
    )
    assert row.messages == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert row.text == "hi"


CSV_HEADER = ["trace_id", "input", "ground_truth", "user_id", "timestamp", "tier", "comment"]
KOREAN = [{"role": "user", "content": "환불 규정을 설명해 주세요"}]


def test_a_csv_written_by_pandas_parses_with_each_record_on_its_first_line():
    data = pandas_csv(
        CSV_HEADER,
        [
            # pandas writes a list of dicts with repr(): single quotes, Korean kept as is.
            ["t-1", str(KOREAN), "strong", "u-1", "2026-03-01 09:30:00+00:00", "strong", None],
            ["t-2", "first line\nsecond line", "weak", None, None, None, "two\nline\ncomment"],
            ["t-3", "no label here", None, None, None, None, None],
            ["t-4", "plain question", "Weak_Sufficient", None, None, "weak", "fine"],
        ],
    )
    assert data.startswith(b",trace_id,input,ground_truth,")
    parsed = parse_label_file(data, "export.csv")

    assert parsed.format == "csv"
    assert parsed.total == 4
    assert parsed.bad == [BadRow(7, "label: missing")]  # t-2 spans lines 3 to 6
    korean, multiline, plain = parsed.rows
    assert (korean.line, korean.external_id, korean.label) == (2, "t-1", "strong_needed")
    assert korean.messages == KOREAN
    assert korean.text == "환불 규정을 설명해 주세요"
    assert korean.timestamp == datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    assert (korean.user_id, korean.tier, korean.comment) == ("u-1", "strong", "")
    assert multiline.line == 3
    assert multiline.messages == [{"role": "user", "content": "first line\nsecond line"}]
    assert multiline.comment == "two\nline\ncomment"
    assert (plain.line, plain.label, plain.tier) == (8, "weak_sufficient", "weak")


def test_a_csv_messages_column_holds_a_json_message_list():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": 'Hi, "quoted" and, commas'},
    ]
    data = pandas_csv(["id", "messages", "label"], [["m-1", json.dumps(messages), "strong"]])
    (row,) = parse_label_file(data, "m.csv").rows
    assert (row.external_id, row.messages, row.turn_count) == ("m-1", messages, 2)


def test_a_csv_prompt_column_holds_plain_user_text():
    data = pandas_csv(["prompt", "label"], [["What is 2+2?", "weak"]])
    (row,) = parse_label_file(data, "p.csv").rows
    assert row.messages == [{"role": "user", "content": "What is 2+2?"}]
    assert row.external_id == ""


def test_csv_column_names_match_regardless_of_case_and_surrounding_spaces():
    data = pandas_csv([" Trace_ID ", "INPUT", " Label"], [["t-1", "hi", "strong"]])
    (row,) = parse_label_file(data, "x.csv").rows
    assert (row.external_id, row.label) == ("t-1", "strong_needed")


@pytest.mark.parametrize(
    ("label", "ground_truth", "result"),
    [
        ("strong", "strong_needed", "strong_needed"),
        ("", "weak", "weak_sufficient"),
        ("weak", "", "weak_sufficient"),
        ("strong", "weak", "label: 'strong' disagrees with ground_truth: 'weak'"),
        ("", "", "label: missing"),
        ("sure", "weak", "label: 'sure' is not strong/weak/strong_needed/weak_sufficient"),
    ],
)
def test_csv_label_and_ground_truth_must_agree_when_both_are_given(label, ground_truth, result):
    data = pandas_csv(["input", "label", "ground_truth"], [["hi", label, ground_truth]])
    parsed = parse_label_file(data, "x.csv")
    if parsed.rows:
        assert parsed.rows[0].label == result
    else:
        assert parsed.bad == [BadRow(2, result)]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        pytest.param("[citation needed] is a meme", "[citation needed] is a meme", id="bracket"),
        pytest.param("[1, 2, 3]", "[1, 2, 3]", id="list-of-numbers"),
        pytest.param(
            "[{'role': 'user', 'content': 'unterminated}]",
            "input: looks like a message list but does not parse",
            id="broken-literal",
        ),
        pytest.param("[]", "messages: must be a non-empty list", id="empty-list"),
        pytest.param(
            "[{'role': 'user', 'content': b'bytes'}]",
            "messages: messages[0].content holds b'bytes', which JSON cannot store",
            id="bytes-literal",
        ),
    ],
)
def test_an_input_cell_starting_with_a_bracket_is_a_message_list_plain_text_or_a_bad_row(
    cell, expected
):
    parsed = parse_label_file(pandas_csv(["input", "label"], [[cell, "weak"]]), "x.csv")
    if parsed.rows:
        assert parsed.rows[0].messages == [{"role": "user", "content": expected}]
    else:
        (bad,) = parsed.bad
        assert bad.reason.startswith(expected), bad.reason


def test_a_malicious_python_literal_in_input_is_never_executed(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"

    def refuse(command):
        raise AssertionError(f"os.system ran {command!r}")

    monkeypatch.setattr(os, "system", refuse)
    payloads = [
        "__import__('os').system('true')",
        "[__import__('os').system('true')]",
        f"[__import__('pathlib').Path({str(marker)!r}).write_text('x')]",
        "[{'role': 'user', 'content': __import__('os').system('true')}]",
        "[{'role': (lambda: __import__('os').system('true'))(), 'content': 'hi'}]",
    ]
    data = pandas_csv(["input", "label"], [[payload, "weak"] for payload in payloads])
    parsed = parse_label_file(data, "evil.csv")

    assert not marker.exists()
    assert parsed.total == len(payloads)
    for row in parsed.rows:  # at most inert user text
        assert row.messages == [{"role": "user", "content": row.text}]
        assert row.text in payloads
    assert [bad.reason for bad in parsed.bad] == [
        "input: looks like a message list but does not parse"
    ] * 2


@pytest.mark.parametrize(
    ("data", "filename", "fmt"),
    [
        (jsonl(good(1)), "labels.jsonl", "jsonl"),
        (pandas_csv(["input", "label"], [["hi", "weak"]]), "labels.csv", "csv"),
    ],
)
def test_a_utf8_byte_order_mark_is_ignored(data, filename, fmt):
    parsed = parse_label_file(b"\xef\xbb\xbf" + data, filename)
    assert (parsed.format, len(parsed.rows), parsed.bad) == (fmt, 1, [])
    assert parsed.sha256 == hashlib.sha256(b"\xef\xbb\xbf" + data).hexdigest()


def test_the_checksum_is_the_sha256_of_the_raw_bytes():
    data = jsonl(good(1), good(2))
    assert parse_label_file(data).sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("filename", ["", "labels", "labels.txt", "labels.json"])
@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (b"\n  " + jsonl(good(1)), "jsonl"),
        (pandas_csv(["input", "label"], [["hi", "weak"]]), "csv"),
    ],
)
def test_the_format_is_sniffed_when_the_extension_does_not_say(filename, data, fmt):
    parsed = parse_label_file(data, filename)
    assert (parsed.format, len(parsed.rows)) == (fmt, 1)


@pytest.mark.parametrize(
    ("filename", "fmt"),
    [
        ("a.jsonl", "jsonl"),
        ("a.NDJSON", "jsonl"),
        ("a.json-lines", "jsonl"),
        ("dir/a.CSV", "csv"),
    ],
)
def test_the_extension_decides_the_format(filename, fmt):
    data = jsonl(good(1)) if fmt == "jsonl" else pandas_csv(["prompt", "label"], [["hi", "weak"]])
    assert parse_label_file(data, filename).format == fmt


@pytest.mark.parametrize(
    ("data", "filename", "message"),
    [
        pytest.param(b'{"a": "caf\xe9"}\n', "x.jsonl", "byte 0xe9 at offset 10", id="latin-1"),
        pytest.param(b"\xef\xbb\xbf\xff", "x.csv", "byte 0xff at offset 3", id="bom-then-junk"),
        pytest.param(b"", "x.csv", "the file is empty", id="empty"),
        pytest.param(b"\xef\xbb\xbf \n\n", "x.jsonl", "the file is empty", id="blank"),
        pytest.param(
            pandas_csv(["input", "verdict"], [["hi", "weak"]]),
            "x.csv",
            "no label column: looked for 'label' or 'ground_truth'",
            id="no-label-column",
        ),
        pytest.param(
            pandas_csv(["text", "label"], [["hi", "weak"]]),
            "x.csv",
            "no conversation column: looked for 'messages' or 'input' or 'prompt'",
            id="no-conversation-column",
        ),
        pytest.param(
            pandas_csv(["input", "label"], []), "x.csv", "the file has no records", id="header-only"
        ),
        pytest.param(
            b'input,label\n"hi,weak\n',
            "x.csv",
            "CSV record starting on line 2 does not parse",
            id="open-quote",
        ),
        pytest.param(
            b'[{"messages": [], "label": "weak"}]', "", "unknown format: a JSON array", id="array"
        ),
    ],
)
def test_an_unusable_file_raises_label_file_error(data, filename, message):
    with pytest.raises(LabelFileError, match=message):
        parse_label_file(data, filename)


def test_a_file_over_the_limits_is_refused(monkeypatch):
    data = jsonl(good(1), good(2), good(3))
    monkeypatch.setattr(label_files, "MAX_ROWS", 2)
    with pytest.raises(LabelFileError, match="more than 2 records"):
        parse_label_file(data)
    monkeypatch.setattr(label_files, "MAX_BYTES", len(data) - 1)
    with pytest.raises(LabelFileError, match="the limit is"):
        parse_label_file(data)


def test_a_csv_cell_larger_than_the_csv_module_default_is_read():
    long_text = "word " * 40_000  # 200,000 characters; the csv module's default limit is 131,072
    (row,) = parse_label_file(pandas_csv(["input", "label"], [[long_text, "strong"]])).rows
    assert row.text == long_text
