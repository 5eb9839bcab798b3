"""Validation and canonical form of a classifier config.

A config is a plain dict shared by the console, the CLI and the classifier pod:

    {"strong_keywords": [...], "token_threshold": 500, "turn_threshold": 5,
     "byte_threshold": None}

A version may also carry a ``scorer`` (see ``scorer.py``): weighted substrings, a bias
and a threshold. The thresholds and keywords then stay hard triggers, and the score
decides the rest.

The canonical config adds the version name, a schema marker and the SHA-256 of
everything else, so a pod can say exactly which config it serves. A config without a
scorer keeps schema 1 and the very bytes it always had; one with a scorer is schema 2,
which a pod from before scorers refuses (its ``GET /config`` lists what it reads).
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .scorer import ValidScorer, check_scorer, substring_problem

SCHEMA = "cascade-classifier/1"
SCHEMA_SCORER = "cascade-classifier/2"
SCHEMAS = (SCHEMA, SCHEMA_SCORER)  # what this engine reads
# A ConfigMap holds at most 1 MiB; leave room for the rest of the object.
MAX_CANONICAL_BYTES = 900 * 1024

MAX_KEYWORDS = 5_000
MAX_KEYWORD_LENGTH = 100
# Far beyond any sane setting; a larger value is a typo, not a choice.
MAX_TOKEN_THRESHOLD = 1_000_000
MAX_TURN_THRESHOLD = 10_000
MAX_BYTE_THRESHOLD = 4_000_000

DECISION_KEYS = (
    "strong_keywords",
    "token_threshold",
    "turn_threshold",
    "byte_threshold",
    "scorer",
)
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
    scorer: ValidScorer | None = None


def _check_threshold(
    errors: dict[str, list[str]], config: Mapping[str, Any], key: str, limit: int, required: bool
) -> int | None:
    value: object = config.get(key)
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


def _check_keywords(errors: dict[str, list[str]], raw: Any) -> tuple[str, ...]:
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
    keywords: list[str] = []
    for index, keyword in enumerate(raw):
        problem = substring_problem(index, keyword, MAX_KEYWORD_LENGTH)
        if problem:
            problems.append(problem)
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
    scorer = None
    if config.get("scorer") is not None:
        scorer = check_scorer(errors, config["scorer"], normalize_keyword)
    if errors:
        raise ConfigError(errors)
    assert token is not None and turn is not None  # required: a missing one is in errors
    return ValidConfig(keywords, token, turn, byte, scorer)


def _compact(document: Mapping[str, Any]) -> bytes:
    body = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return body.encode("utf-8")


def canonical_config(version: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The exported form: validated, keywords normalized and sorted, hashed.

    Keyword order does not change a decision, so it does not change the hash either.
    """
    valid = validate_config(config)
    document: dict[str, Any] = {
        "schema": SCHEMA if valid.scorer is None else SCHEMA_SCORER,
        "version": version,
        "strong_keywords": sorted(valid.keywords),
        "token_threshold": valid.token_threshold,
        "turn_threshold": valid.turn_threshold,
        "byte_threshold": valid.byte_threshold,
    }
    if valid.scorer is not None:
        document["scorer"] = valid.scorer.canonical()
    body = _compact(document)
    size = len(body)
    if size > MAX_CANONICAL_BYTES:
        raise ConfigError(
            {
                "config": [
                    f"The canonical config is {size:,} bytes; at most {MAX_CANONICAL_BYTES:,} "
                    "fit in a ConfigMap. Use fewer scorer features."
                ]
            }
        )
    document["sha256"] = hashlib.sha256(body).hexdigest()
    return document


def verify_canonical(document: Mapping[str, Any]) -> None:
    """Raise ConfigError unless ``document`` is a canonical config whose hash matches."""
    errors: dict[str, list[str]] = {}
    expected_schema = SCHEMA if document.get("scorer") is None else SCHEMA_SCORER
    if document.get("schema") not in SCHEMAS:
        errors["schema"] = [
            f"This engine reads {', '.join(map(repr, SCHEMAS))}; got {document.get('schema')!r}."
        ]
    elif document.get("schema") != expected_schema:
        errors["schema"] = [f"Must be {expected_schema!r} for this content."]
    if not isinstance(document.get("version"), str) or not document.get("version"):
        errors["version"] = ["Must be a non-empty string."]
    if errors:
        raise ConfigError(errors)
    expected = canonical_config(document["version"], document)
    if document.get("sha256") != expected["sha256"]:
        raise ConfigError({"sha256": ["Does not match the config's content."]})
