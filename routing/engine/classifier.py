"""The cascade classifier: v7's rule, compiled once, applied per request.

Semantics (identical to the spec's ``classify_v7`` on NFC text):
1. any strong keyword is a substring of the lower-cased conversation text -> strong;
2. the text is longer than ``token_threshold`` characters -> strong;
   (optional) its UTF-8 encoding is longer than ``byte_threshold`` bytes -> strong;
3. there are more than ``turn_threshold`` messages (system ones included) -> strong;
otherwise weak. Every rule that fires is reported, so the reasons say all of why.

Keywords are matched with one Aho-Corasick automaton: one pass over the text,
whatever the number of keywords.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ahocorasick

from .config import ValidConfig, validate_config
from .text import conversation_text

WEAK = "weak"
STRONG = "strong"


@dataclass(frozen=True)
class Span:
    """A keyword occurrence in the conversation text: ``text[start:end]``."""

    start: int
    end: int
    keyword: str


@dataclass(frozen=True)
class Decision:
    tier: str
    reasons: tuple[str, ...]
    matched_keywords: tuple[str, ...]
    char_count: int
    byte_count: int
    turn_count: int
    spans: tuple[Span, ...] = field(default=(), repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "reasons": list(self.reasons),
            "matched_keywords": list(self.matched_keywords),
        }


class Classifier:
    """A compiled config. Immutable and thread-safe; build once, call often."""

    def __init__(self, config: ValidConfig):
        self.config = config
        self._automaton = None
        if config.keywords:
            automaton = ahocorasick.Automaton()
            for keyword in config.keywords:
                automaton.add_word(keyword, keyword)
            automaton.make_automaton()
            self._automaton = automaton

    def scan(self, text: str) -> list[Span]:
        """Every keyword occurrence in ``text`` (matched lower-cased), in text order."""
        if self._automaton is None:
            return []
        spans = [
            Span(end + 1 - len(keyword), end + 1, keyword)
            for end, keyword in self._automaton.iter(text.lower())
        ]
        spans.sort(key=lambda s: (s.start, -s.end))
        return spans

    def classify(self, messages: Sequence[Any]) -> Decision:
        """Route one conversation. Raises MessagesError on malformed messages."""
        text = conversation_text(messages)
        return self.classify_text(text, len(messages))

    def classify_text(self, text: str, turn_count: int) -> Decision:
        config = self.config
        spans = self.scan(text)
        matched = tuple(dict.fromkeys(s.keyword for s in spans))
        char_count = len(text)
        byte_count = len(text.encode("utf-8")) if not text.isascii() else char_count
        reasons = []
        if matched:
            reasons.append("keyword:" + ",".join(matched))
        if char_count > config.token_threshold:
            reasons.append(f"length:{char_count}>{config.token_threshold}")
        if config.byte_threshold is not None and byte_count > config.byte_threshold:
            reasons.append(f"bytes:{byte_count}>{config.byte_threshold}")
        if turn_count > config.turn_threshold:
            reasons.append(f"turns:{turn_count}>{config.turn_threshold}")
        return Decision(
            tier=STRONG if reasons else WEAK,
            reasons=tuple(reasons) or ("default",),
            matched_keywords=matched,
            char_count=char_count,
            byte_count=byte_count,
            turn_count=turn_count,
            spans=tuple(spans),
        )


def build_classifier(config: Mapping[str, Any]) -> Classifier:
    """Validate ``config`` (raising ConfigError naming each bad field) and compile it."""
    return Classifier(validate_config(config))
