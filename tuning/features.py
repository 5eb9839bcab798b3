"""What a request is, for slicing metrics: language, length bucket, turn bucket. Pure Python."""

from __future__ import annotations

import re

_CODE = re.compile(r"```.*?(```|$)|`[^`\n]*`", re.DOTALL)
_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
_LATIN = re.compile(r"[A-Za-z]")

LANGUAGES = ("ko", "en", "mixed", "other")
# Edges around v7's 500-character threshold, so near-threshold traffic gets its own slice.
LENGTH_EDGES = (100, 300, 500, 1000)
TURN_EDGES = (1, 3, 5)


def language(text: str) -> str:
    """ "ko", "en", "mixed" or "other", from the prose (code blocks and inline code removed).

    Korean prose with a few English technical words ("git에서 ...") is still Korean; it is
    mixed when Latin letters are a third or more of the letters.
    """
    prose = _CODE.sub(" ", text)
    hangul = len(_HANGUL.findall(prose))
    latin = len(_LATIN.findall(prose))
    if not hangul:
        return "en" if latin else "other"
    if not latin:
        return "ko"
    return "mixed" if latin / (hangul + latin) >= 0.45 else "ko"


def user_text(messages) -> str:
    """The user's own words: the text of user messages (system prompts would skew language)."""
    parts = []
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [
                p.get("text", "")
                for p in content
                if isinstance(p, dict) and p.get("type") == "text"
            ]
    return " ".join(p for p in parts if isinstance(p, str))


def _bucket(value: int, edges: tuple[int, ...], unit: str) -> str:
    low = 0
    for edge in edges:
        if value <= edge:
            return f"{low}-{edge} {unit}" if low != edge else f"{edge} {unit}"
        low = edge + 1
    return f">{edges[-1]} {unit}"


def length_bucket(char_count: int) -> str:
    return _bucket(char_count, LENGTH_EDGES, "chars")


def turn_bucket(turn_count: int) -> str:
    return _bucket(turn_count, TURN_EDGES, "msgs")


def bucket_order(kind: str) -> list[str]:
    """Slice names in display order."""
    if kind == "language":
        return list(LANGUAGES)
    edges, unit = (LENGTH_EDGES, "chars") if kind == "length" else (TURN_EDGES, "msgs")
    return [_bucket(e, edges, unit) for e in edges] + [f">{edges[-1]} {unit}"]
