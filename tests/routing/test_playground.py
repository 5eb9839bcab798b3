import pytest

from routing.engine import MessagesError, Span
from routing.playground import highlight, parse_conversation


def test_plain_text_is_one_user_message():
    assert parse_conversation("  how do I sort a list?\n") == [
        {"role": "user", "content": "how do I sort a list?"}
    ]


def test_role_prefixes_open_turns_and_continuation_lines_join_them():
    messages = parse_conversation("system: be brief\nuser: fix this\n  x = 1\nassistant: done")
    assert messages == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "fix this\n  x = 1"},
        {"role": "assistant", "content": "done"},
    ]


def test_json_list_and_object_forms():
    as_list = parse_conversation('[{"role": "user", "content": "hi"}]')
    as_object = parse_conversation('{"messages": [{"role": "user", "content": "hi"}]}')
    assert as_list == as_object == [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("raw", ["", "   ", "[1,", '{"model": "x"}', '"text"'])
def test_unusable_input_raises(raw):
    if raw == '"text"':  # a bare JSON string is plain text, not an error
        assert parse_conversation(raw)[0]["content"] == '"text"'
        return
    with pytest.raises(MessagesError):
        parse_conversation(raw)


def test_highlight_merges_overlaps_and_keeps_all_text():
    text = "a refactoring job"
    spans = (Span(2, 10, "refactor"), Span(4, 10, "factor"))
    pieces = highlight(text, spans)
    assert pieces == [("a ", None), ("refactor", "refactor"), ("ing job", None)]
    assert "".join(p for p, _ in pieces) == text
