"""Rendering untrusted conversation text: every piece is escaped before any markup is added."""

import re

from django import template
from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import mark_safe

register = template.Library()

FENCE = re.compile(r"```([\w+-]*)\n?(.*?)(?:```|\Z)", re.DOTALL)
COLLAPSE_OVER = 1500  # characters; longer messages start folded


def _text_parts(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content if p)
    return "" if content is None else str(content)


INLINE_CODE = re.compile(r"`([^`\n]+)`")


def _prose(text: str) -> list[str]:
    """A paragraph; `inline code` becomes <code>. Each piece is escaped on its own."""
    text = text.strip("\n")
    if not text.strip():
        return []
    parts, cursor = [], 0
    for match in INLINE_CODE.finditer(text):
        parts.append(escape(text[cursor : match.start()]))
        parts.append(format_html("<code>{}</code>", match.group(1)))
        cursor = match.end()
    parts.append(escape(text[cursor:]))
    return [format_html('<p class="prose">{}</p>', mark_safe("".join(parts)))]  # noqa: S308


@register.filter
def message_html(content) -> str:
    """Prose as paragraphs, fenced code as <pre>, everything escaped."""
    text = _text_parts(content)
    pieces, cursor = [], 0
    for match in FENCE.finditer(text):
        pieces += _prose(text[cursor : match.start()])
        pieces.append(
            format_html(
                '<pre class="code" data-lang="{}"><code>{}</code></pre>',
                match.group(1),
                match.group(2).rstrip("\n"),
            )
        )
        cursor = match.end()
    pieces += _prose(text[cursor:])
    body = mark_safe("".join(pieces))  # noqa: S308 - every piece went through format_html
    if len(text) > COLLAPSE_OVER:
        return format_html(
            '<details class="long"><summary>{} characters — show all</summary>{}</details>',
            f"{len(text):,}",
            body,
        )
    return body


@register.filter
def text_of(content) -> str:
    return _text_parts(content)


@register.simple_tag
def highlighted(text: str, keywords) -> str:
    """``text`` with each occurrence of ``keywords`` (lower-cased substring) marked."""
    from routing.engine import build_classifier
    from routing.playground import highlight

    words = [k for k in dict.fromkeys(keywords or []) if isinstance(k, str) and k.strip()]
    if not words:
        return escape(text)
    try:
        classifier = build_classifier(
            {"strong_keywords": words, "token_threshold": 1, "turn_threshold": 1}
        )
    except ValueError:
        return escape(text)
    pieces = highlight(text, tuple(classifier.scan(text)))
    return format_html_join(
        "",
        "{}",
        ((format_html("<mark>{}</mark>", p) if k else escape(p),) for p, k in pieces),
    )


@register.filter
def get_item(mapping, key):
    """``mapping[key]`` in a template (None when absent)."""
    return mapping.get(key) if isinstance(mapping, dict) else None
