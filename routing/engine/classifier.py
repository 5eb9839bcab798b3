"""The cascade classifier: v7's rule, compiled once, applied per request.

Semantics (identical to the spec's ``classify_v7`` on NFC text):
1. any strong keyword is a substring of the lower-cased conversation text -> strong;
2. the text is longer than ``token_threshold`` characters -> strong;
   (optional) its UTF-8 encoding is longer than ``byte_threshold`` bytes -> strong;
3. there are more than ``turn_threshold`` messages (system ones included) -> strong;
4. with a scorer (``scorer.py``): its score reaches its threshold -> strong;
otherwise weak. Every rule that fires is reported, so the reasons say all of why. The
keywords and thresholds stay hard triggers beside a scorer: a huge request never goes
weak whatever its words.

Keywords are matched with one Aho-Corasick automaton (Rust, ahocorasick-rs): one pass
over the text, whatever the number of keywords.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import ahocorasick_rs

from .config import ValidConfig, validate_config
from .scorer import UNITS, Scorer
from .text import MessagesError, conversation_text, require_unicode

WEAK = "weak"
STRONG = "strong"


class Span(NamedTuple):
    """A keyword occurrence in the conversation text: ``text[start:end]``."""

    start: int
    end: int
    keyword: str


class Decision(NamedTuple):
    """What the classifier chose and why. A tuple: cheap to build on the request path."""

    tier: str
    reasons: tuple[str, ...]
    matched_keywords: tuple[str, ...]
    char_count: int
    turn_count: int
    spans: tuple[Span, ...]
    text: str  # the NFC conversation text the decision was made on
    score: float | None = None  # with a scorer only
    top_features: tuple[tuple[str, float], ...] = ()  # present ones that pushed it most

    @property
    def byte_count(self) -> int:
        return len(self.text.encode("utf-8"))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tier": self.tier,
            "reasons": list(self.reasons),
            "matched_keywords": list(self.matched_keywords),
        }
        if self.score is not None:
            out["score"] = self.score
            out["top_features"] = [[feature, weight] for feature, weight in self.top_features]
        return out


class Classifier:
    """A compiled config. Immutable and thread-safe; build once, call often."""

    def __init__(self, config: ValidConfig):
        self.config = config
        self._keywords = config.keywords
        # Standard match kind with overlapping=True reports every occurrence of every
        # keyword, as a substring test per keyword would find them.
        self._automaton = ahocorasick_rs.AhoCorasick(list(config.keywords))
        self.scorer: Scorer | None = None
        if config.scorer is not None:
            self.scorer = Scorer(config.scorer, config.keywords)
            # With a scorer, one scan finds which keywords and features occur: as strings,
            # the automaton's own pattern objects (several times faster than indexes with
            # offsets); keyword positions are looked up only when a keyword occurs.
            patterns = sorted({*config.keywords, *config.scorer.features})
            self._substrings = ahocorasick_rs.AhoCorasick(patterns)
            self._keyword_set = frozenset(config.keywords)

    def scan(self, text: str) -> list[Span]:
        """Every keyword occurrence in ``text`` (matched lower-cased), in text order."""
        try:
            return self._scan(text.lower())
        except UnicodeEncodeError:
            require_unicode(text)  # raises MessagesError saying what is wrong
            raise

    def _scan(self, lowered: str) -> list[Span]:
        return self._keyword_spans(
            self._automaton.find_matches_as_indexes(lowered, overlapping=True)
        )

    def _keyword_spans(self, matches: Iterable[tuple[int, int, int]]) -> list[Span]:
        keywords = self._keywords
        k = len(keywords)
        spans = [Span(start, end, keywords[i]) for i, start, end in matches if i < k]
        spans.sort()
        return spans

    def feature_spans(self, text: str, features: Iterable[str]) -> list[Span]:
        """Where the scorer's ``features`` occur in ``text``, in text order (for
        highlighting the ones that pushed a decision)."""
        if self.scorer is None:
            return []
        return [Span(*span) for span in self.scorer.spans(text.lower(), set(features))]

    def classify(self, messages: Sequence[Any], *, explain: bool = True) -> Decision:
        """Route one conversation. Raises MessagesError on malformed messages.

        ``explain=False`` leaves a scorer's top features out (the pod's hot path when it
        does not trace); the tier, reasons and score are the same."""
        text = conversation_text(messages, check_unicode=False)
        try:
            return self.classify_text(text, len(messages), explain=explain)
        except MessagesError:
            conversation_text(messages)  # raises again, naming the message at fault
            raise

    def classify_text(self, text: str, turn_count: int, *, explain: bool = True) -> Decision:
        """Route already-joined text. Raises MessagesError on a lone surrogate."""
        config = self.config
        lowered = text.lower()
        scorer = self.scorer
        try:
            if scorer is None:
                spans = self._scan(lowered)
            else:  # ``present`` is set exactly when there is a scorer
                present = set(self._substrings.find_matches_as_strings(lowered, overlapping=True))
                keyword_hit = not present.isdisjoint(self._keyword_set)
                spans = self._scan(lowered) if keyword_hit else []
        except UnicodeEncodeError:
            require_unicode(text)  # raises MessagesError saying what is wrong
            raise
        char_count = len(text)
        reasons: list[str] = []
        if spans:
            matched = tuple(dict.fromkeys(s.keyword for s in spans))
            reasons.append("keyword:" + ",".join(matched))
        else:
            matched = ()
        if char_count > config.token_threshold:
            reasons.append(f"length:{char_count}>{config.token_threshold}")
        if config.byte_threshold is not None:
            byte_count = len(text.encode("utf-8"))
            if byte_count > config.byte_threshold:
                reasons.append(f"bytes:{byte_count}>{config.byte_threshold}")
        if turn_count > config.turn_threshold:
            reasons.append(f"turns:{turn_count}>{config.turn_threshold}")
        score: float | None = None
        top: tuple[tuple[str, float], ...] = ()
        if scorer is not None:
            units = scorer.score_units(present)
            score = units / UNITS
            top = scorer.top(present) if explain else ()
            if scorer.reaches(units):
                reasons.append(f"score:{score:.6g}>={scorer.threshold_text}")
        if reasons:
            return Decision(
                STRONG,
                tuple(reasons),
                matched,
                char_count,
                turn_count,
                tuple(spans),
                text,
                score,
                top,
            )
        why = ("default",) if scorer is None else (f"score:{score:.6g}<{scorer.threshold_text}",)
        return Decision(WEAK, why, matched, char_count, turn_count, (), text, score, top)


def build_classifier(config: Mapping[str, Any]) -> Classifier:
    """Validate ``config`` (raising ConfigError naming each bad field) and compile it."""
    return Classifier(validate_config(config))
