"""The one adapter between the console and Langfuse (SDK ``langfuse`` 5, REST API only).

Reads routed traces as root observations (``GET /api/public/v2/observations``), reads user
feedback scores (``GET /api/public/v3/scores``) and writes reviewers' labels back as a
categorical score (``POST /api/public/scores``; ``DELETE`` takes an undone label's back).
Every call goes through the SDK's client (auth, base URL, timeouts); the two bulk reads take
the JSON as sent instead of the SDK's response models, whose conversion alone would cap a
sync at ~800 traces/s. That uses the SDK's private HTTP client; should an SDK release drop
it, the reads fall back to the public ``get_many`` methods (same results, slower) with a
logged warning.

Contracts worth knowing:
- Every failure of a call surfaces as ``LangfuseError``; ``retryable`` says whether trying
  again later can help (timeouts, connection errors, 408, 429, 5xx) or not (400, 401, 403,
  404, an unexpected response shape). The SDK's own retries are switched off
  (``max_retries: 0``) so that ``call_with_retry`` is the only retry loop: its sleeps are
  injectable and bounded, and it honours ``Retry-After``.
- Paging is by opaque cursor. A caller that stores ``ObservationPage.next_cursor`` after
  handling a page can resume after a crash by passing it back as ``cursor`` with the same
  window and tags. Do not assume any order of observations inside a window.
- ``parse_observation`` never guesses: it returns a ``TraceRecord`` or raises
  ``MalformedTrace(reason)``, which callers count and skip. An optional field of the wrong
  type (a numeric userId, a list where an object belongs) is read as missing.

No Django here: the console, its Celery tasks, the CLI and the benchmarks share it.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import os
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pydantic
from langfuse.api import LangfuseAPI
from langfuse.api.core.api_error import ApiError

from routing.engine import MessagesError, conversation_text

T = TypeVar("T")
log = logging.getLogger(__name__)

# Field groups of the v2 observations API: tags live in ``trace_context``,
# completionStartTime in ``time`` (a TTFT fallback), cost in ``usage``.
OBSERVATION_FIELDS = "core,basic,time,io,metadata,model,usage,metrics,trace_context"
# Metadata values over 200 characters come back truncated unless expanded by key.
EXPANDED_METADATA_KEYS = ("strong_keywords_found", "content_length", "classifier_version")
MAX_OBSERVATION_PAGE = 1000  # the API's limit
MAX_SCORE_PAGE = 100  # the API's limit
TRACE_IDS_PER_SCORE_QUERY = 50  # keeps the comma-separated traceId query well under URL limits

WEAK_SUFFICIENT = "weak_sufficient"
STRONG_NEEDED = "strong_needed"
LABEL_VALUES = (WEAK_SUFFICIENT, STRONG_NEEDED)
DEFAULT_LABEL_SCORE_NAME = "routing_label"
# Score ids are derived from this namespace, so re-sending a label updates the same score.
SCORE_ID_NAMESPACE = uuid.UUID("6f1c1d2e-5a7b-4c0e-9a43-2b8f1f6a7c11")

# The SDK must not retry on its own (it would sleep with time.sleep, unbounded by us).
_NO_SDK_RETRIES = {"max_retries": 0}
_RETRYABLE_STATUSES = frozenset({408, 429})


# ---------------------------------------------------------------- errors


class LangfuseError(Exception):
    """A failed Langfuse call.

    ``retryable``: trying again later can help. ``status``: the HTTP status, or None when no
    response arrived (timeout, connection error). ``retry_after``: seconds the server asked
    us to wait, if it said so.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return (
            f"LangfuseError({str(self)!r}, retryable={self.retryable}, "
            f"status={self.status}, retry_after={self.retry_after})"
        )


class LangfuseConfigError(ValueError):
    """The Langfuse settings are missing or invalid; the message names the variable."""


class MalformedTrace(ValueError):
    """A root observation that cannot become a TraceRecord; ``reason`` is short and countable."""

    def __init__(self, reason: str, observation_id: str | None = None):
        super().__init__(reason if observation_id is None else f"{observation_id}: {reason}")
        self.reason = reason
        self.observation_id = observation_id


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    Returns None when absent or unparsable; never negative.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _error_detail(body: Any) -> str:
    if isinstance(body, Mapping):
        for key in ("message", "error", "detail"):
            if isinstance(body.get(key), str):
                return body[key]
    text = str(body) if body is not None else ""
    return text[:200]


def translate_error(exc: BaseException, operation: str) -> LangfuseError:
    """Map an SDK / httpx / parsing exception to a LangfuseError saying if a retry helps."""
    if isinstance(exc, LangfuseError):
        return exc
    if isinstance(exc, ApiError):
        status = exc.status_code
        retry_after = parse_retry_after(_header(exc.headers, "retry-after"))
        retryable = status is None or status >= 500 or status in _RETRYABLE_STATUSES
        return LangfuseError(
            f"{operation}: HTTP {status}: {_error_detail(exc.body)}",
            retryable=retryable,
            status=status,
            retry_after=retry_after,
        )
    if isinstance(exc, httpx.TimeoutException):
        return LangfuseError(f"{operation}: timed out ({type(exc).__name__})", retryable=True)
    if isinstance(exc, httpx.TransportError):
        return LangfuseError(f"{operation}: connection failed: {exc}", retryable=True)
    if isinstance(exc, pydantic.ValidationError | json.JSONDecodeError):
        # A 2xx whose body the SDK cannot read: retrying will not change the server.
        return LangfuseError(f"{operation}: unexpected response shape: {exc}", retryable=False)
    raise TypeError(f"not a Langfuse call failure: {exc!r}") from exc


# ---------------------------------------------------------------- retries


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff.

    ``attempts`` counts every call, the first included. The delay before retry n (1-based)
    is ``base_delay * 2**(n-1)`` capped at ``max_delay``, plus up to ``jitter`` of itself.
    A server's ``Retry-After`` replaces the computed delay; one longer than
    ``max_retry_after`` is not waited out here (the error is raised so a task queue can
    reschedule instead of holding a worker).
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0
    jitter: float = 0.1

    def delay(self, retry_number: int, retry_after: float | None, rand: float = 0.0) -> float:
        if retry_after is not None:
            return retry_after
        backoff = min(self.max_delay, self.base_delay * 2 ** (retry_number - 1))
        return backoff * (1 + self.jitter * rand)


def call_with_retry(
    func: Callable[[], T],
    *,
    policy: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, so a shared default is safe
    sleep: Callable[[float], None] = time.sleep,
    operation: str = "langfuse call",
    rand: Callable[[], float] = random.random,
) -> T:
    """Call ``func`` until it succeeds, a permanent error occurs, or attempts run out.

    ``func`` raises LangfuseError (or anything ``translate_error`` understands). The last
    error is re-raised unchanged, so callers see the real status.
    """
    retry_number = 0
    while True:
        try:
            return func()
        except Exception as exc:  # noqa: BLE001 - narrowed by translate_error, re-raised
            try:
                error = translate_error(exc, operation)
            except TypeError:
                raise exc from None
            retry_number += 1
            if not error.retryable or retry_number >= policy.attempts:
                raise error from exc
            if error.retry_after is not None and error.retry_after > policy.max_retry_after:
                raise error from exc
            sleep(policy.delay(retry_number, error.retry_after, rand()))


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class LangfuseSettings:
    """Where Langfuse is and how to authenticate. ``repr`` never shows the secret."""

    host: str
    public_key: str
    secret_key: str = field(repr=False)
    timeout: float = 10.0

    def __post_init__(self):
        parts = urlsplit(self.host)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise LangfuseConfigError(f"Langfuse host must be an http(s) URL, got {self.host!r}")
        if not self.public_key or not self.secret_key:
            raise LangfuseConfigError("Langfuse public and secret keys are both required")
        if not self.timeout > 0:
            raise LangfuseConfigError(f"Langfuse timeout must be positive, got {self.timeout!r}")


def _env_value(environ: Mapping[str, str], name: str) -> str | None:
    """``NAME``, or the content of the file named by ``NAME_FILE`` (mounted secrets)."""
    value = environ.get(name)
    path = environ.get(f"{name}_FILE")
    if value and path:
        raise LangfuseConfigError(f"Set {name} or {name}_FILE, not both")
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read().strip()
        except OSError as exc:
            raise LangfuseConfigError(f"{name}_FILE: cannot read {path}: {exc}") from exc
    return value.strip() if value else None


def settings_from_env(environ: Mapping[str, str] | None = None) -> LangfuseSettings:
    """Read LANGFUSE_BASE_URL (LANGFUSE_HOST, deprecated, as a fallback),
    LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY (each also as ``*_FILE``) and the optional
    LANGFUSE_TIMEOUT (seconds). Raises LangfuseConfigError naming what is missing or bad.
    """
    env = os.environ if environ is None else environ
    host = _env_value(env, "LANGFUSE_BASE_URL") or _env_value(env, "LANGFUSE_HOST")
    public_key = _env_value(env, "LANGFUSE_PUBLIC_KEY")
    secret_key = _env_value(env, "LANGFUSE_SECRET_KEY")
    missing = [
        name
        for name, value in (
            ("LANGFUSE_BASE_URL", host),
            ("LANGFUSE_PUBLIC_KEY", public_key),
            ("LANGFUSE_SECRET_KEY", secret_key),
        )
        if not value
    ]
    if missing:
        raise LangfuseConfigError(f"Missing environment variables: {', '.join(missing)}")
    raw_timeout = _env_value(env, "LANGFUSE_TIMEOUT")
    try:
        timeout = float(raw_timeout) if raw_timeout else 10.0
    except ValueError as exc:
        raise LangfuseConfigError(f"LANGFUSE_TIMEOUT must be seconds, got {raw_timeout!r}") from exc
    return LangfuseSettings(host.rstrip("/"), public_key, secret_key, timeout)


# Langfuse's rule for score config names.
_SCORE_NAME = re.compile(r"^[A-Za-z0-9_ .()\-]{1,35}$")


def label_score_name_from_env(environ: Mapping[str, str] | None = None) -> str:
    """LANGFUSE_LABEL_SCORE_NAME (also ``*_FILE``), default ``routing_label``: the name the
    labels go to Langfuse under, e.g. to keep two consoles' labels apart in one project."""
    env = os.environ if environ is None else environ
    name = _env_value(env, "LANGFUSE_LABEL_SCORE_NAME") or DEFAULT_LABEL_SCORE_NAME
    if not _SCORE_NAME.match(name):
        raise LangfuseConfigError(
            f"LANGFUSE_LABEL_SCORE_NAME must be 1-35 letters, digits, _ . ( ) - or spaces, "
            f"got {name!r}"
        )
    return name


# ---------------------------------------------------------------- records


@dataclass(frozen=True)
class TraceRecord:
    """One routed request as the console stores it. Times are aware UTC; durations seconds."""

    langfuse_id: str  # the trace id (scores attach to it)
    observation_id: str
    start_time: datetime
    name: str | None
    user_id: str | None
    session_id: str | None
    messages: list[dict[str, Any]]
    output: str
    tags: tuple[str, ...]
    tier: str | None  # "weak" / "strong", None when the pod did not say
    classifier_version: str | None
    keyword_match: bool | None
    matched_keywords: tuple[str, ...] | None
    content_length: int | None
    turn_count: int | None
    cost_usd: float | None
    latency_s: float | None
    ttft_s: float | None
    model: str | None
    environment: str | None
    usage: dict[str, int]
    metadata: dict[str, Any]


@dataclass(frozen=True)
class ObservationPage:
    """One page of root observations, as the API sends them (camelCase JSON objects).

    ``cursor`` fetched this page; ``next_cursor`` fetches the next one, None at the end.
    """

    observations: list[Any]
    cursor: str | None
    next_cursor: str | None


@dataclass(frozen=True)
class ParsedPage:
    records: list[TraceRecord]
    skipped: list[MalformedTrace]


@dataclass(frozen=True)
class FeedbackScore:
    """A score read back from Langfuse (user feedback, or our own labels)."""

    id: str
    trace_id: str | None
    observation_id: str | None
    name: str
    data_type: str
    value: float | bool | str
    source: str
    comment: str | None
    timestamp: datetime
    author_user_id: str | None
    config_id: str | None


@dataclass(frozen=True)
class LabelScore:
    """A reviewer's label to write back.

    ``score_id`` and ``timestamp`` make the write an upsert: Langfuse updates a score sent
    again with the same id and timestamp. Without ``score_id`` one is derived from the trace
    id and score name (one routing label per trace); pass the console label's own stable id
    when several reviewers label the same trace.
    """

    trace_id: str
    value: str
    comment: str | None = None
    score_id: str | None = None
    timestamp: datetime | None = None
    metadata: dict[str, Any] | None = None

    def __post_init__(self):
        if self.value not in LABEL_VALUES:
            raise ValueError(f"label value must be one of {LABEL_VALUES}, got {self.value!r}")
        if not self.trace_id:
            raise ValueError("label needs a trace id")
        if self.timestamp is not None and self.timestamp.tzinfo is None:
            raise ValueError("label timestamp must be timezone-aware")


@dataclass(frozen=True)
class WriteResult:
    """The outcome of one score batch.

    ``status`` 202: all accepted. 207: ``rejected`` of them were refused, with ``errors``
    from the server; ``failed_ids`` lists the score ids the errors name (None when the
    errors do not say which, then the caller must check). A 207 is never retried here:
    resending rejected scores only fails again until their cause is fixed.
    """

    status: int
    sent_ids: tuple[str, ...]
    accepted: int
    rejected: int
    errors: tuple[str, ...] = ()
    failed_ids: tuple[str, ...] | None = ()

    @property
    def ok(self) -> bool:
        return self.rejected == 0


# ---------------------------------------------------------------- parsing

# Wire (camelCase) name -> SDK attribute, so the parser takes either form.
_ATTRS = {
    "id": "id",
    "traceId": "trace_id",
    "startTime": "start_time",
    "endTime": "end_time",
    "completionStartTime": "completion_start_time",
    "name": "name",
    "traceName": "trace_name",
    "userId": "user_id",
    "sessionId": "session_id",
    "input": "input",
    "output": "output",
    "metadata": "metadata",
    "tags": "tags",
    "totalCost": "total_cost",
    "costDetails": "cost_details",
    "usageDetails": "usage_details",
    "latency": "latency",
    "timeToFirstToken": "time_to_first_token",
    "model": "model",
    "environment": "environment",
}


def _field(obs: Any, wire_name: str) -> Any:
    if isinstance(obs, Mapping):
        return obs.get(wire_name)
    return getattr(obs, _ATTRS[wire_name], None)


def _text(value: Any) -> str | None:
    """A string field; any other type (a number, an object) counts as missing."""
    return value if isinstance(value, str) else None


def _mapping(value: Any) -> Mapping[str, Any]:
    """An object field; any other type counts as empty."""
    return value if isinstance(value, Mapping) else {}


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple)


def _as_utc(value: Any, what: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise MalformedTrace(f"unparsable {what}") from exc
    if not isinstance(value, datetime):
        raise MalformedTrace(f"unparsable {what}")
    if value.tzinfo is None:  # the API speaks UTC
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _parse_json_text(raw: Any) -> Any:
    """Input/output arrive as raw strings; some ingestion paths encode them twice."""
    value = raw
    for _ in range(2):
        if not isinstance(value, str):
            return value
        stripped = value.strip()
        if not stripped or stripped[0] not in '[{"':
            return value
        value = json.loads(stripped)
    return value


def parse_messages(raw_input: Any) -> list[dict[str, Any]]:
    """The chat messages of a raw input: a list of OpenAI messages or ``{"messages": [...]}``.

    Raises MalformedTrace for missing input, unparsable JSON and any other shape.
    """
    if raw_input is None or (isinstance(raw_input, str) and not raw_input.strip()):
        raise MalformedTrace("missing input")
    try:
        value = _parse_json_text(raw_input)
    except json.JSONDecodeError as exc:
        raise MalformedTrace("unparsable input JSON") from exc
    if isinstance(value, Mapping) and "messages" in value:
        value = value["messages"]
    if isinstance(value, str):
        raise MalformedTrace("unknown input shape: plain text")
    if not isinstance(value, list):
        raise MalformedTrace(f"unknown input shape: {type(value).__name__}")
    if not value:
        raise MalformedTrace("empty messages")
    for index, message in enumerate(value):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise MalformedTrace(f"unknown input shape: messages[{index}] has no role")
    try:
        conversation_text(value)  # the classifier's own reading must succeed
    except MessagesError as exc:
        raise MalformedTrace(f"unknown input shape: {exc}") from exc
    return [dict(m) for m in value]


def parse_output(raw_output: Any) -> str:
    """The answer text. Output is informative, not required: anything unknown stays as text."""
    if raw_output is None:
        return ""
    try:
        value = _parse_json_text(raw_output)
    except json.JSONDecodeError:
        return str(raw_output)
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        choices = value.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
            value = choices[0].get("message") or choices[0]
        if isinstance(value, Mapping) and "content" in value:
            content = value["content"]
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(
                    str(p.get("text", "")) if isinstance(p, Mapping) else str(p) for p in content
                )
    if isinstance(value, list) and value and isinstance(value[-1], Mapping):
        return parse_output(value[-1])
    return raw_output if isinstance(raw_output, str) else json.dumps(raw_output)


def _tag_values(tags: Sequence[str]) -> dict[str, str]:
    values = {}
    for tag in tags:
        key, sep, value = tag.partition(":")
        if sep and key not in values:
            values[key] = value
    return values


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None  # NaN and inf are not measurements


def _keyword_list(value: Any) -> tuple[str, ...] | None:
    """Metadata arrays ingested through OTel come back as JSON strings; accept both."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip().startswith("[") else value.split(",")
        except json.JSONDecodeError:
            return None  # truncated by the API: better unknown than wrong
    if isinstance(value, list | tuple):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return None


def parse_observation(obs: Any) -> TraceRecord:
    """Turn one root observation (SDK object or wire-format dict) into a TraceRecord.

    Tier, classifier version, keyword match and turn count come from the tags the pod sets
    (``tier:weak``, ``classifier_version:v7``, ...), with metadata as a fallback.
    Raises MalformedTrace(reason) when the observation cannot be used.
    """
    observation_id = _field(obs, "id")
    try:
        if not observation_id or not isinstance(observation_id, str):
            raise MalformedTrace("missing id")
        start_time = _as_utc(_field(obs, "startTime"), "startTime")
        if start_time is None:
            raise MalformedTrace("missing startTime")
        messages = parse_messages(_field(obs, "input"))
        raw_tags = _field(obs, "tags")
        tags = tuple(t for t in raw_tags if isinstance(t, str)) if _is_list(raw_tags) else ()
        metadata = _mapping(_field(obs, "metadata"))
        tag = _tag_values(tags)
        tier = tag.get("tier") or metadata.get("tier")
        if tier not in ("weak", "strong", None):
            raise MalformedTrace(f"unknown tier {str(tier)[:20]!r}")
        latency = _as_float(_field(obs, "latency"))
        end_time = _as_utc(_field(obs, "endTime"), "endTime")
        if latency is None and end_time is not None:
            latency = (end_time - start_time).total_seconds()
        ttft = _as_float(_field(obs, "timeToFirstToken"))
        first_token = _as_utc(_field(obs, "completionStartTime"), "completionStartTime")
        if ttft is None and first_token is not None:
            ttft = (first_token - start_time).total_seconds()
        cost = _as_float(_field(obs, "totalCost"))
        if cost is None:
            cost = _as_float(_mapping(_field(obs, "costDetails")).get("total"))
        usage = {
            str(k): v
            for k, v in _mapping(_field(obs, "usageDetails")).items()
            if isinstance(v, int) and not isinstance(v, bool)
        }
    except MalformedTrace as exc:
        raise MalformedTrace(exc.reason, observation_id) from exc
    version = tag.get("classifier_version") or metadata.get("classifier_version")
    return TraceRecord(
        langfuse_id=_text(_field(obs, "traceId")) or observation_id,
        observation_id=observation_id,
        start_time=start_time,
        name=_text(_field(obs, "traceName")) or _text(_field(obs, "name")),
        user_id=_text(_field(obs, "userId")),
        session_id=_text(_field(obs, "sessionId")),
        messages=messages,
        output=parse_output(_field(obs, "output")),
        tags=tags,
        tier=tier,
        classifier_version=str(version) if isinstance(version, str | int) else None,
        keyword_match=_as_bool(tag.get("keyword_match")),
        matched_keywords=_keyword_list(metadata.get("strong_keywords_found")),
        content_length=_as_int(metadata.get("content_length")),
        turn_count=_as_int(tag.get("turn_count", metadata.get("turn_count"))),
        cost_usd=cost,
        latency_s=latency,
        ttft_s=ttft,
        model=_text(_field(obs, "model")),
        environment=_text(_field(obs, "environment")),
        usage=usage,
        metadata=dict(metadata),
    )


def parse_page(page: ObservationPage | Iterable[Any]) -> ParsedPage:
    """Parse every observation of a page; malformed ones are collected, never raised.

    A shape the parser did not foresee is skipped too (and logged): one odd trace must not
    stop a sync.
    """
    observations = page.observations if isinstance(page, ObservationPage) else page
    records, skipped = [], []
    for obs in observations:
        try:
            records.append(parse_observation(obs))
        except MalformedTrace as exc:
            skipped.append(exc)
        except Exception as exc:  # noqa: BLE001 - counted as a skip, logged for a fix
            obs_id = _text(_field(obs, "id")) if isinstance(obs, Mapping) else None
            log.warning("unreadable observation %s", obs_id, exc_info=True)
            skipped.append(MalformedTrace(f"unreadable: {type(exc).__name__}", obs_id))
    return ParsedPage(records, skipped)


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("datetimes given to the Langfuse adapter must be timezone-aware")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def observation_filter(
    since: datetime, until: datetime, tags: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The JSON ``filter`` for root observations in ``[since, until)`` having any of ``tags``.

    Everything goes into the filter because a ``filter`` overrides the query-parameter
    filters (isRootObservation, fromStartTime, ...) on the server.
    """
    conditions: list[dict[str, Any]] = [
        {"type": "datetime", "column": "startTime", "operator": ">=", "value": _iso(since)},
        {"type": "datetime", "column": "startTime", "operator": "<", "value": _iso(until)},
        {"type": "boolean", "column": "isRootObservation", "operator": "=", "value": True},
    ]
    if tags:
        conditions.append(
            {"type": "arrayOptions", "column": "tags", "operator": "any of", "value": list(tags)}
        )
    return conditions


# ---------------------------------------------------------------- the client


def _label_score_id(trace_id: str, name: str) -> str:
    return str(uuid.uuid5(SCORE_ID_NAMESPACE, f"{trace_id}\n{name}"))


class LangfuseAdapter:
    """The console's Langfuse client: one per task or thread, closed when done (context manager)."""

    def __init__(
        self,
        settings: LangfuseSettings,
        *,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, so a shared default is safe
        sleep: Callable[[float], None] = time.sleep,
        label_score_name: str = DEFAULT_LABEL_SCORE_NAME,
    ):
        self.settings = settings
        self.retry = retry
        self.label_score_name = label_score_name
        self._sleep = sleep
        self._warned_public_reads = False
        # Our own httpx client, so close() releases its connections.
        self._http = httpx.Client(timeout=settings.timeout, follow_redirects=True)
        self.api = LangfuseAPI(
            base_url=settings.host,
            username=settings.public_key,
            password=settings.secret_key,
            x_langfuse_public_key=settings.public_key,
            timeout=settings.timeout,
            httpx_client=self._http,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs) -> LangfuseAdapter:
        """Settings from ``settings_from_env``; the labels' score name from
        LANGFUSE_LABEL_SCORE_NAME (default ``routing_label``) unless given."""
        kwargs.setdefault("label_score_name", label_score_name_from_env(environ))
        return cls(settings_from_env(environ), **kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LangfuseAdapter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _call(self, operation: str, func: Callable[[], T]) -> T:
        return call_with_retry(func, policy=self.retry, sleep=self._sleep, operation=operation)

    # -- reads

    def check(self) -> None:
        """Raise LangfuseError unless the host answers and accepts the keys."""
        self._call(
            "check",
            lambda: self.api.observations.get_many(
                limit=1, fields="core", request_options=_NO_SDK_RETRIES
            ),
        )

    def iter_root_observations(
        self,
        since: datetime,
        until: datetime,
        tags: Sequence[str] | None = None,
        cursor: str | None = None,
        page_size: int = 500,
    ) -> Iterator[ObservationPage]:
        """Pages of root observations started in ``[since, until)`` with any of ``tags``.

        Starts at ``cursor`` when given (a ``next_cursor`` stored earlier). Each page is
        fetched with retries; a LangfuseError ends the iteration and the caller keeps the
        cursor of the last page it finished.
        """
        if not 1 <= page_size <= MAX_OBSERVATION_PAGE:
            raise ValueError(f"page_size must be 1..{MAX_OBSERVATION_PAGE}, got {page_size}")
        query = {
            "fields": OBSERVATION_FIELDS,
            "expand_metadata": ",".join(EXPANDED_METADATA_KEYS),
            "limit": page_size,
            "filter": json.dumps(observation_filter(since, until, tags), separators=(",", ":")),
        }
        while True:
            current = cursor
            body = self._read_page(
                "list observations",
                "observations",
                {**query, "cursor": current} if current else query,
            )
            data = _page_data(body)
            cursor = (body.get("meta") or {}).get("cursor") or None
            yield ObservationPage(data, current, cursor)
            if cursor is None or not data:
                return

    def iter_trace_records(
        self, since: datetime, until: datetime, **kwargs
    ) -> Iterator[tuple[ObservationPage, ParsedPage]]:
        """``iter_root_observations`` with each page parsed."""
        for page in self.iter_root_observations(since, until, **kwargs):
            yield page, parse_page(page)

    def fetch_scores(
        self, trace_ids: Sequence[str], name: str | Sequence[str] | None = None
    ) -> list[FeedbackScore]:
        """Every score on the given traces (optionally only the given score names)."""
        names = name if name is None or isinstance(name, str) else ",".join(name)
        unique_ids = list(dict.fromkeys(trace_ids))
        scores: list[FeedbackScore] = []
        for start in range(0, len(unique_ids), TRACE_IDS_PER_SCORE_QUERY):
            chunk = ",".join(unique_ids[start : start + TRACE_IDS_PER_SCORE_QUERY])
            scores.extend(self._iter_scores(trace_id=chunk, name=names))
        return scores

    def iter_scores(
        self,
        since: datetime,
        until: datetime,
        name: str | Sequence[str] | None = None,
    ) -> Iterator[FeedbackScore]:
        """Scores timestamped in ``[since, until)``: feedback often arrives after its trace
        was synced, so a sync can pick it up by time instead of by trace id."""
        names = name if name is None or isinstance(name, str) else ",".join(name)
        yield from self._iter_scores(
            from_timestamp=since.astimezone(UTC), to_timestamp=until.astimezone(UTC), name=names
        )

    def fetch_scores_by_id(self, score_ids: Sequence[str]) -> list[FeedbackScore]:
        scores: list[FeedbackScore] = []
        unique_ids = list(dict.fromkeys(score_ids))
        for start in range(0, len(unique_ids), TRACE_IDS_PER_SCORE_QUERY):
            chunk = ",".join(unique_ids[start : start + TRACE_IDS_PER_SCORE_QUERY])
            scores.extend(self._iter_scores(id=chunk))
        return scores

    def _iter_scores(self, **query) -> Iterator[FeedbackScore]:
        params = {"limit": MAX_SCORE_PAGE, "fields": "details,subject,annotation"}
        params.update((key, value) for key, value in query.items() if value is not None)
        cursor = None
        while True:
            body = self._read_page(
                "list scores",
                "scores",
                {**params, "cursor": cursor} if cursor else params,
            )
            data = _page_data(body)
            for raw in data:
                score = _feedback_score_from_wire(raw)
                if score is not None:
                    yield score
            cursor = (body.get("meta") or {}).get("cursor") or None
            if cursor is None or not data:
                return

    def _read_page(self, operation: str, resource: str, query: dict[str, Any]) -> dict[str, Any]:
        """One page of a bulk read (``resource``: observations or scores) as wire JSON.

        ``query`` holds the SDK's keyword arguments of ``api.<resource>.get_many``. The
        bulk reads skip the SDK's response models on purpose: converting them costs about
        0.35 ms per observation and 3 ms per score, which alone capped a sync at ~800
        traces/s. That needs the SDK's private HTTP client; an SDK without it still works
        through the public ``get_many``, only slower.
        """
        http = _private_http_client(self.api)
        if http is None:
            if not self._warned_public_reads:
                self._warned_public_reads = True
                log.warning(
                    "langfuse SDK %s has no api._client_wrapper.httpx_client: bulk reads go "
                    "through the public get_many (slower; an item its models reject fails "
                    "its page)",
                    _sdk_version(),
                )
            return self._call(operation, partial(self._read_page_public, resource, query))
        path = _BULK_READ_PATHS[resource]
        return self._call(operation, partial(_get_json, http, path, _wire_params(query)))

    def _read_page_public(self, resource: str, query: dict[str, Any]) -> dict[str, Any]:
        client = getattr(self.api, resource)
        response = client.get_many(**query, request_options=_NO_SDK_RETRIES)
        # dict() gives the wire names back (camelCase); times stay datetimes, parsed alike.
        return response.dict()

    # -- writes

    def ensure_label_score_config(self) -> str:
        """The id of the categorical score config for labels, created when missing.

        Langfuse requires a config for ANNOTATION scores that are not corrections; its
        categories are the two label values.
        """
        from langfuse.api.commons.types.config_category import ConfigCategory

        page = 1
        while True:
            current = page
            configs = self._call(
                "list score configs",
                partial(
                    self.api.score_configs.get,
                    page=current,
                    limit=100,
                    request_options=_NO_SDK_RETRIES,
                ),
            )
            for config in configs.data:
                if (
                    config.name == self.label_score_name
                    and str(config.data_type) == "CATEGORICAL"
                    and not config.is_archived
                ):
                    return config.id
            if page >= configs.meta.total_pages:
                break
            page += 1
        categories = [
            ConfigCategory(label=value, value=float(index))
            for index, value in enumerate(LABEL_VALUES)
        ]
        # Not retried: a create whose answer was lost could leave a duplicate config.
        try:
            created = self.api.score_configs.create(
                name=self.label_score_name,
                data_type="CATEGORICAL",
                categories=categories,
                description="Cascade console review: was the weak tier sufficient?",
                request_options=_NO_SDK_RETRIES,
            )
        except Exception as exc:  # noqa: BLE001 - translated, or re-raised as is
            try:
                error = translate_error(exc, "create score config")
            except TypeError:
                raise exc from None
            raise error from exc
        return created.id

    def delete_score(self, score_id: str) -> bool:
        """Delete one score (an undone label's); False when Langfuse has no such score.

        Retried like a read: deleting twice is harmless, the second finds nothing.
        """
        try:
            self._call(
                "delete score",
                lambda: self.api.scores.delete(score_id, request_options=_NO_SDK_RETRIES),
            )
        except LangfuseError as e:
            if e.status == 404:
                return False
            raise
        return True

    def write_label_scores(
        self, labels: Sequence[LabelScore], *, config_id: str | None = None
    ) -> WriteResult:
        """Write labels as CATEGORICAL ANNOTATION scores named ``label_score_name``.

        ``config_id`` defaults to ``ensure_label_score_config()``. Retries transport errors,
        429 and 5xx (safe: each score has a fixed id and timestamp, so a repeat is an update).
        A 207 is returned, not retried; see WriteResult.
        """
        from langfuse.api.scores.types.create_score_batch_results import (
            CreateScoreBatchResults,
        )
        from langfuse.api.scores.types.create_score_request import CreateScoreRequest

        if not labels:
            return WriteResult(202, (), 0, 0)
        config_id = config_id or self.ensure_label_score_config()
        now = datetime.now(UTC)
        requests, sent_ids = [], []
        for label in labels:
            score_id = label.score_id or _label_score_id(label.trace_id, self.label_score_name)
            sent_ids.append(score_id)
            requests.append(
                CreateScoreRequest(
                    id=score_id,
                    trace_id=label.trace_id,
                    name=self.label_score_name,
                    value=label.value,
                    comment=label.comment or None,
                    metadata=label.metadata,
                    data_type="CATEGORICAL",
                    config_id=config_id,
                    source="ANNOTATION",
                    timestamp=label.timestamp or now,
                )
            )
        result = self._call(
            "write scores",
            lambda: self.api.scores.create(request=requests, request_options=_NO_SDK_RETRIES),
        )
        if not isinstance(result, CreateScoreBatchResults):
            return WriteResult(202, tuple(sent_ids), len(sent_ids), 0)
        errors = tuple(e.message for e in result.errors)
        failed = tuple(sid for sid in sent_ids if any(sid in message for message in errors))
        return WriteResult(
            status=207,
            sent_ids=tuple(sent_ids),
            accepted=result.accepted,
            rejected=result.rejected,
            errors=errors,
            failed_ids=failed if len(failed) == result.rejected else None,
        )


_BULK_READ_PATHS = {
    "observations": "api/public/v2/observations",
    "scores": "api/public/v3/scores",
}
# SDK keyword -> query parameter on the wire, where the two differ.
_WIRE_NAMES = {
    "expand_metadata": "expandMetadata",
    "trace_id": "traceId",
    "from_timestamp": "fromTimestamp",
    "to_timestamp": "toTimestamp",
    "data_type": "dataType",
}


def _wire_params(query: Mapping[str, Any]) -> dict[str, Any]:
    return {
        _WIRE_NAMES.get(key, key): _iso(value) if isinstance(value, datetime) else value
        for key, value in query.items()
        if value is not None
    }


def _private_http_client(api: Any) -> Any | None:
    """The SDK's internal HTTP client (auth, base URL, timeouts); None if this SDK version
    has none where 5.0 keeps it."""
    http = getattr(getattr(api, "_client_wrapper", None), "httpx_client", None)
    return http if callable(getattr(http, "request", None)) else None


def _sdk_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("langfuse")
    except PackageNotFoundError:
        return "(unknown version)"


def _get_json(http: Any, path: str, params: dict[str, Any]) -> dict[str, Any]:
    """GET ``path`` through the SDK's HTTP client and read the body as a JSON object."""
    response = http.request(path, method="GET", params=params, request_options=_NO_SDK_RETRIES)
    if not 200 <= response.status_code < 300:
        try:
            detail = response.json()
        except json.JSONDecodeError:
            detail = response.text
        raise ApiError(
            status_code=response.status_code, headers=dict(response.headers), body=detail
        )
    body = response.json()
    if not isinstance(body, dict):
        raise json.JSONDecodeError("expected a JSON object", response.text[:80], 0)
    return body


def _page_data(body: Mapping[str, Any]) -> list[Any]:
    data = body.get("data")
    if not isinstance(data, list):
        raise json.JSONDecodeError("expected a data list", str(body)[:80], 0)
    return data


def _feedback_score_from_wire(score: Any) -> FeedbackScore | None:
    """A v3 score as the API sends it (camelCase JSON); None when it cannot be read (one bad
    score must not fail a whole sync: it is dropped and logged)."""
    score = _mapping(score)
    subject = _mapping(score.get("subject"))
    trace_id = observation_id = None
    if subject.get("kind") == "trace":
        trace_id = _text(subject.get("id"))
    elif subject.get("kind") == "observation":
        observation_id, trace_id = _text(subject.get("id")), _text(subject.get("traceId"))
    try:
        timestamp = _as_utc(score.get("timestamp"), "timestamp")
    except MalformedTrace:
        timestamp = None
    if not _text(score.get("id")) or not _text(score.get("name")) or timestamp is None:
        log.warning("unreadable score dropped: %.200s", score)
        return None
    return FeedbackScore(
        id=score["id"],
        trace_id=trace_id,
        observation_id=observation_id,
        name=score["name"],
        data_type=str(score.get("dataType")),
        value=score.get("value"),
        source=str(score.get("source")),
        comment=_text(score.get("comment")),
        timestamp=timestamp,
        author_user_id=_text(score.get("authorUserId")),
        config_id=_text(score.get("configId")),
    )
