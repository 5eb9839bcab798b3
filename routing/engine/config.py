"""Validation and canonical form of a classifier config.

A config is a plain dict shared by the console, the CLI and the classifier pod:

    {"strong_keywords": [...], "token_threshold": 500, "turn_threshold": 5,
     "byte_threshold": None}

The canonical config adds the version name, a schema marker and the SHA-256 of
everything else, so a pod can say exactly which config it serves.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SCHEMA = "cascade-classifier/1"

MAX_KEYWORDS = 5_000
MAX_KEYWORD_LENGTH = 100
# Far beyond any sane setting; a larger value is a typo, not a choice.
MAX_TOKEN_THRESHOLD = 1_000_000
MAX_TURN_THRESHOLD = 10_000
MAX_BYTE_THRESHOLD = 4_000_000

DECISION_KEYS = ("strong_keywords", "token_threshold", "turn_threshold", "byte_threshold")
CANONICAL_KEYS = frozenset({"schema", "version", "sha256", *DECISION_KEYS})


class ConfigError(ValueError):
    """An invalid config; ``errors`` maps each bad field to its messages."""

    def __init__(self, errors: Mapping[str, list[str]]):
        self.errors = {field: list(msgs) for field, msgs in errors.items()}
        summary = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in self.errors.items())
        super().__init__(f"invalid classifier config: {summary}")


def normalize_keyword(keyword: str) -> str:
    """The form a keyword is matched in: NFC, lower-cased (the text gets the same)."""
    return unicodedata.normalize("NFC", keyword).lower()


@dataclass(frozen=True)
class ValidConfig:
    keywords: tuple[str, ...]  # normalized, in the order given
    token_threshold: int
    turn_threshold: int
    byte_threshold: int | None


def _check_threshold(errors: dict, config: Mapping, key: str, limit: int, required: bool):
    value = config.get(key)
    if value is None:
        if required:
            errors.setdefault(key, []).append("This field is required.")
        return None
    # bool is an int subclass; True is not a threshold.
    if isinstance(value, bool) or not isinstance(value, int):
        errors.setdefault(key, []).append(f"Must be a positive integer, got {value!r}.")
        return None
    if value < 1:
        errors.setdefault(key, []).append(f"Must be a positive integer, got {value}.")
    elif value > limit:
        errors.setdefault(key, []).append(f"Must be at most {limit:,}, got {value:,}.")
    return value


def _check_keywords(errors: dict, raw: Any) -> tuple[str, ...]:
    if raw is None:
        errors["strong_keywords"] = ["This field is required."]
        return ()
    if isinstance(raw, str) or not isinstance(raw, list | tuple):
        errors["strong_keywords"] = ["Must be a list of strings."]
        return ()
    problems: list[str] = []
    if len(raw) > MAX_KEYWORDS:
        problems.append(f"At most {MAX_KEYWORDS:,} keywords are allowed, got {len(raw):,}.")
    seen: dict[str, int] = {}
    keywords = []
    for index, keyword in enumerate(raw):
        if not isinstance(keyword, str):
            problems.append(f"Item {index} must be a string, got {type(keyword).__name__}.")
            continue
        if not keyword.strip():
            problems.append(f"Item {index} is empty or whitespace only.")
            continue
        if len(keyword) > MAX_KEYWORD_LENGTH:
            problems.append(
                f"Item {index} ({keyword[:20]!r}...) is over {MAX_KEYWORD_LENGTH} characters."
            )
            continue
        normalized = normalize_keyword(keyword)
        if normalized in seen:
            problems.append(
                f"Item {index} ({keyword!r}) duplicates item {seen[normalized]} once normalized."
            )
            continue
        seen[normalized] = index
        keywords.append(normalized)
    if problems:
        errors["strong_keywords"] = problems
    return tuple(keywords)


def validate_config(config: Mapping[str, Any]) -> ValidConfig:
    """Check every field and raise one ConfigError naming all bad ones."""
    if not isinstance(config, Mapping):
        raise ConfigError({"config": [f"Must be a JSON object, got {type(config).__name__}."]})
    errors: dict[str, list[str]] = {}
    for key in sorted(set(config) - CANONICAL_KEYS):
        errors[key] = ["Unknown field."]
    keywords = _check_keywords(errors, config.get("strong_keywords"))
    token = _check_threshold(errors, config, "token_threshold", MAX_TOKEN_THRESHOLD, True)
    turn = _check_threshold(errors, config, "turn_threshold", MAX_TURN_THRESHOLD, True)
    byte = _check_threshold(errors, config, "byte_threshold", MAX_BYTE_THRESHOLD, False)
    if errors:
        raise ConfigError(errors)
    return ValidConfig(keywords, token, turn, byte)


def _digest(document: Mapping[str, Any]) -> str:
    body = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def canonical_config(version: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The exported form: validated, keywords normalized and sorted, hashed.

    Keyword order does not change a decision, so it does not change the hash either.
    """
    valid = validate_config(config)
    document = {
        "schema": SCHEMA,
        "version": version,
        "strong_keywords": sorted(valid.keywords),
        "token_threshold": valid.token_threshold,
        "turn_threshold": valid.turn_threshold,
        "byte_threshold": valid.byte_threshold,
    }
    document["sha256"] = _digest(document)
    return document


def verify_canonical(document: Mapping[str, Any]) -> None:
    """Raise ConfigError unless ``document`` is a canonical config whose hash matches."""
    errors = {}
    if document.get("schema") != SCHEMA:
        errors["schema"] = [f"Must be {SCHEMA!r}."]
    if not isinstance(document.get("version"), str) or not document.get("version"):
        errors["version"] = ["Must be a non-empty string."]
    if errors:
        raise ConfigError(errors)
    expected = canonical_config(document["version"], document)
    if document.get("sha256") != expected["sha256"]:
        raise ConfigError({"sha256": ["Does not match the config's content."]})
