"""Reading a pasted conversation, and marking keyword matches for display."""

from __future__ import annotations

import json
import re

from .engine import Classifier, Decision, MessagesError, Span

ROLE_LINE = re.compile(r"^(system|user|assistant|tool)\s*:\s?(.*)$", re.IGNORECASE)


def parse_conversation(raw: str) -> list[dict]:
    """Messages from pasted text.

    Accepts a JSON list of messages, a JSON object with ``messages``, or plain text where
    lines starting with ``user:``, ``assistant:``, ``system:`` or ``tool:`` open a new turn.
    Plain text without any role prefix is one user message.
    """
    stripped = raw.strip()
    if not stripped:
        raise MessagesError("Paste a conversation first.")
    if stripped[0] in "[{":
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as e:
            raise MessagesError(
                f"Not valid JSON (line {e.lineno}, column {e.colno}): {e.msg}."
            ) from None
        if isinstance(data, dict):
            if "messages" not in data:
                raise MessagesError('A JSON object needs a "messages" list.')
            data = data["messages"]
        if not isinstance(data, list):
            raise MessagesError("messages must be a list.")
        return data
    messages: list[dict] = []
    for line in raw.splitlines():
        match = ROLE_LINE.match(line)
        if match:
            messages.append({"role": match.group(1).lower(), "content": match.group(2)})
        elif messages:
            messages[-1]["content"] += "\n" + line
        else:
            messages.append({"role": "user", "content": line})
    for message in messages:
        message["content"] = message["content"].strip()
    return messages


def highlight(text: str, spans: tuple[Span, ...]) -> list[tuple[str, str | None]]:
    """Split ``text`` into (piece, keyword-or-None) runs; overlapping matches are merged.

    Offsets come from the lower-cased text; where lower-casing changed the length (rare
    characters such as 'İ'), the lower-cased text is shown so the marks stay right.
    """
    lowered = text.lower()
    if len(lowered) != len(text):
        text = lowered
    merged: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        if merged and span.start < merged[-1].end:
            merged[-1] = merged[-1]._replace(end=max(merged[-1].end, span.end))
            continue
        merged.append(span)
    pieces: list[tuple[str, str | None]] = []
    cursor = 0
    for start, end, keyword in merged:
        if start > cursor:
            pieces.append((text[cursor:start], None))
        pieces.append((text[start:end], keyword))
        cursor = end
    if cursor < len(text):
        pieces.append((text[cursor:], None))
    return pieces


def marked(
    text: str, decision: Decision, classifier: Classifier
) -> list[tuple[str, str | None, str]]:
    """``text`` as (piece, label, kind) runs: keyword matches (kind "keyword") and, for a
    scorer, where the top features occur ("strong" or "weak": which way each pushed)."""
    weights = dict(decision.top_features)
    spans = list(decision.spans)
    kinds = {s.keyword: "keyword" for s in spans}
    for span in classifier.feature_spans(text, weights):
        weight = weights[span.keyword]
        label = f"{span.keyword} {weight:+.3g}"
        kinds.setdefault(label, "strong" if weight > 0 else "weak")
        spans.append(Span(span.start, span.end, label))
    return [
        (piece, label, kinds.get(label, "") if label else "")
        for piece, label in highlight(text, tuple(spans))
    ]


def explain(classifier: Classifier, text: str, turns: int) -> dict | None:
    """A scorer version's reading of a request: its score against the threshold and the
    text with the substrings that pushed it most marked. None for keyword versions."""
    if classifier.scorer is None:
        return None
    decision = classifier.classify_text(text, turns)
    return {
        "score": decision.score,
        "threshold": classifier.scorer.threshold,
        "top": decision.top_features,
        "pieces": marked(text, decision, classifier),
    }
