"""Turning OpenAI-style chat messages into the text the classifier reads."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any


class MessagesError(ValueError):
    """The messages are not a list of chat messages; the text says where."""


def require_unicode(text: str, where: str = "message text") -> None:
    """Raise MessagesError if ``text`` holds a lone surrogate.

    JSON's ``"\\ud800"`` escapes decode to one; it has no UTF-8 form, so the matcher (and
    any UTF-8 output) would fail on it with a bare UnicodeEncodeError.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        char = ord(text[exc.start])
        raise MessagesError(
            f"{where} contains a lone surrogate (U+{char:04X}): invalid Unicode text"
        ) from None


def message_text(message: Any, index: int = 0) -> str:
    """The text of one message: a string content, or the text parts of a part list.

    ``None`` or missing content (an assistant turn that only calls tools) gives "".
    """
    if not isinstance(message, dict):
        raise MessagesError(f"messages[{index}] must be an object, got {type(message).__name__}")
    content = message.get("content")
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        texts = []
        for part_index, part in enumerate(content):
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                if part.get("type", "text") == "text":
                    text = part.get("text")
                    if not isinstance(text, str):
                        raise MessagesError(
                            f"messages[{index}].content[{part_index}].text must be a string"
                        )
                    texts.append(text)
                # image_url, input_audio, ... carry no text to route on.
            else:
                raise MessagesError(
                    f"messages[{index}].content[{part_index}] must be an object or a string"
                )
        return " ".join(t for t in texts if t)
    raise MessagesError(
        f"messages[{index}].content must be a string, a list of parts or null, "
        f"got {type(content).__name__}"
    )


def conversation_text(messages: Sequence[Any], *, check_unicode: bool = True) -> str:
    """Space-joined non-empty message texts, in Unicode NFC (v7's ``content``).

    ``check_unicode=False`` leaves lone surrogates to the caller: the classifier's matcher
    finds them anyway, and the check costs a tenth of a classification.
    """
    if not isinstance(messages, list | tuple):
        raise MessagesError(f"messages must be a list, got {type(messages).__name__}")
    parts = []
    for index, message in enumerate(messages):
        # Fast path for the common case: a dict with string content.
        content = message.get("content") if type(message) is dict else None
        if type(content) is not str:
            content = message_text(message, index)
        if content:
            if check_unicode and not content.isascii():
                require_unicode(content, f"messages[{index}]")
            parts.append(content)
    text = " ".join(parts)
    if not text.isascii() and not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return text
