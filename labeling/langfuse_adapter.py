"""The one adapter between the console and Langfuse (SDK ``langfuse`` 5, REST API only).

Reads routed traces, reads user feedback scores (``GET /api/public/v3/scores``), writes
reviewers' labels back as a categorical score (``POST /api/public/scores``) and asks for an
undone label's score to be deleted (``DELETE``). Every call goes through the SDK's client
(auth, base URL, timeouts); the bulk reads take the JSON as sent instead of the SDK's
response models, whose conversion alone would cap a sync at ~800 traces/s. That uses the
SDK's private HTTP client; should an SDK release drop it, the v4 reads fall back to the
public ``get_many`` methods (same results, slower) with a logged warning.

What it relies on, read from the Langfuse server's source (v3.180.0 to v3.225.4, v4):
- Generations. Cloud and v4 servers read traces as root observations through
  ``GET /api/public/v2/observations`` (cursor, up to 1,000 a page) and take a JSON list of
  scores (202, or 207 when some are refused). Self-hosted v3 answers 404 there (unless
  ``LANGFUSE_MIGRATION_V4_ALLOW_PREVIEW_OPT_IN=true``), has ``/api/public/v3/scores`` only
  from 3.180.0, and takes one score object per request (200 ``{id}``; a list is 400
  "Invalid request data"; ``timestamp`` is dropped). ``GET /api/public/health`` reports
  ``version``. The generation is found once per adapter (``server_info``).
- v3 reads: ``GET /api/public/traces`` and ``/api/public/observations`` page by
  ``page``/``limit`` (at most 100) with ``LIMIT/OFFSET``, newest first with no tie-breaker:
  paging a window could skip or repeat rows, so windows are cut to one page each.
- Deletes answer 202 for any id (both generations) and happen later.
- A read over the analytics store's limits answers 422 ``{"error": "Request timed out"}``:
  read smaller. 429 carries ``Retry-After``.
- The documented model field is ``providedModelName``; servers send ``model``.

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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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

GENERATIONS = ("v3", "v4")
MIN_V3 = (3, 180)  # the first v3 release with GET /api/public/v3/scores
V3_CURSOR = "v3:"  # a v3 read's cursor: the next window's start
V3_PAGE = 100  # v1 reads' largest page
V3_FIRST_WINDOW = timedelta(hours=1)
V3_MAX_WINDOW = timedelta(days=1)
V3_MIN_WINDOW = timedelta(seconds=1)  # narrower windows are paged through, de-duplicated
V3_ROOT_SLACK = timedelta(seconds=10)  # a root generation starts with its trace (OTel)
MIN_TIMED_OUT_PAGE = 50  # a v2 page that times out is halved down to this
V3_WRITERS = 4  # v3 takes one score per request: this many in flight at once

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
    api_generation: str | None = None  # "v3" or "v4"; None: detect it

    def __post_init__(self):
        parts = urlsplit(self.host)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise LangfuseConfigError(f"Langfuse host must be an http(s) URL, got {self.host!r}")
        if not self.public_key or not self.secret_key:
            raise LangfuseConfigError("Langfuse public and secret keys are both required")
        if not self.timeout > 0:
            raise LangfuseConfigError(f"Langfuse timeout must be positive, got {self.timeout!r}")
        if self.api_generation not in (None, *GENERATIONS):
            raise LangfuseConfigError(
                f"LANGFUSE_API_GENERATION must be v3 or v4, got {self.api_generation!r}"
            )


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
    LANGFUSE_TIMEOUT (seconds) and LANGFUSE_API_GENERATION (v3 or v4; detected when unset).
    Raises LangfuseConfigError naming what is missing or bad.
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
    generation = (_env_value(env, "LANGFUSE_API_GENERATION") or "").lower() or None
    return LangfuseSettings(host.rstrip("/"), public_key, secret_key, timeout, generation)


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
        # v2 documents providedModelName; servers send model today (v1 always did).
        model=_text(_field(obs, "providedModelName")) or _text(_field(obs, "model")),
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


@dataclass(frozen=True)
class ServerInfo:
    """Which Langfuse API generation the server speaks, and its version if it says."""

    generation: str  # "v3" or "v4"
    version: str | None
    detected: bool  # False when LANGFUSE_API_GENERATION named it

    def describe(self) -> str:
        how = "detected" if self.detected else "set by LANGFUSE_API_GENERATION"
        return f"Langfuse {self.version or '(version not reported)'}, API {self.generation} ({how})"


def _version_tuple(version: str | None) -> tuple[int, ...] | None:
    match = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", version or "")
    return tuple(int(p) for p in match.groups() if p is not None) if match else None


def generation_of(version: str | None) -> str | None:
    """v3 or v4 from a server version (None when it does not say). Refuses v3 before 3.180."""
    parts = _version_tuple(version)
    if parts is None:
        return None
    if parts[0] >= 4:
        return "v4"
    if parts[0] == 3 and parts[:2] >= MIN_V3:
        return "v3"
    raise LangfuseError(
        f"Langfuse {version} is not supported: the console needs v4, Cloud, or v3 from "
        f"{MIN_V3[0]}.{MIN_V3[1]}.0 (the first with the v3 scores API). Upgrade Langfuse.",
        retryable=False,
    )


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
        self._server: ServerInfo | None = None
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

    def server_info(self) -> ServerInfo:
        """The server's API generation (and version), found once per adapter: from
        LANGFUSE_API_GENERATION, else from ``/api/public/health``'s version, else from
        whether ``/api/public/v2/observations`` exists (v3 answers 404 there)."""
        if self._server is not None:
            return self._server
        wanted = self.settings.api_generation
        if wanted == "v4" or (wanted is None and _private_http_client(self.api) is None):
            # Named, or nothing to detect with (an SDK without its HTTP client: the public
            # SDK methods, which speak v4, are all there is).
            self._server = ServerInfo("v4", None, detected=False)
            return self._server
        version = self._health_version()
        if wanted == "v3":
            if version is not None:
                generation_of(version)  # refuses a v3 before 3.180
            self._server = ServerInfo(wanted, version, detected=False)
            return self._server
        generation = generation_of(version) or self._probe_generation()
        self._server = ServerInfo(generation, version, detected=True)
        return self._server

    def _sdk_http(self) -> Any:
        """The SDK's HTTP client, for the calls the SDK has no method for."""
        http = _private_http_client(self.api)
        if http is None:
            raise LangfuseError(
                f"langfuse SDK {_sdk_version()} has no api._client_wrapper.httpx_client, "
                "which the generation check and v3 calls need",
                retryable=False,
            )
        return http

    def _health_version(self) -> str | None:
        http = self._sdk_http()
        try:
            body = self._call("health", partial(_get_json, http, "api/public/health", {}))
        except LangfuseError as exc:
            if exc.retryable:
                raise
            return None  # no health route (a proxy in front): probe the reads instead
        version = body.get("version")
        return version if isinstance(version, str) and version else None

    def _probe_generation(self) -> str:
        http = self._sdk_http()
        params = {"limit": 1, "fields": "core"}
        try:
            self._call("probe", partial(_get_json, http, _BULK_READ_PATHS["observations"], params))
        except LangfuseError as exc:
            if exc.status == 404:
                return "v3"
            raise
        return "v4"

    def check(self) -> ServerInfo:
        """The server's generation and version; raises LangfuseError unless the host
        answers and accepts the keys (one authenticated read of that generation)."""
        info = self.server_info()
        http = self._sdk_http()
        path, params = (
            ("api/public/traces", {"limit": 1, "fields": "core"})
            if info.generation == "v3"
            else (_BULK_READ_PATHS["observations"], {"limit": 1, "fields": "core"})
        )
        self._call("check", partial(_get_json, http, path, params))
        return info

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
        if self.server_info().generation == "v3":
            yield from self._iter_v3_roots(since, until, tags, cursor)
            return
        query = {
            "fields": OBSERVATION_FIELDS,
            "expand_metadata": ",".join(EXPANDED_METADATA_KEYS),
            "filter": json.dumps(observation_filter(since, until, tags), separators=(",", ":")),
        }
        if cursor and cursor.startswith(V3_CURSOR):
            cursor = None  # a run begun against a v3 server: start over (stores are upserts)
        while True:
            current = cursor
            try:
                body = self._read_page(
                    "list observations",
                    "observations",
                    {**query, "limit": page_size, **({"cursor": current} if current else {})},
                )
            except LangfuseError as exc:
                if exc.status != 422:
                    raise
                if page_size <= MIN_TIMED_OUT_PAGE:
                    raise _timed_out_error(exc, f"a page of {page_size}") from exc
                page_size = max(MIN_TIMED_OUT_PAGE, page_size // 2)  # the same page, smaller
                continue
            data = _page_data(body)
            cursor = (body.get("meta") or {}).get("cursor") or None
            yield ObservationPage(data, current, cursor)
            if cursor is None or not data:
                return

    def _iter_v3_roots(
        self,
        since: datetime,
        until: datetime,
        tags: Sequence[str] | None,
        cursor: str | None,
    ) -> Iterator[ObservationPage]:
        """v3 has no cursor read of observations, and its page/limit reads order by time
        with no tie-breaker, so paging a window could skip or repeat rows. Read instead in
        past time windows small enough for one page of traces each (halved while a window
        holds more, or times out; grown again while they hold few): a window read in one
        page is complete. The cursor is the next window's start."""
        start = since
        if cursor and cursor.startswith(V3_CURSOR):
            start = max(since, _as_utc(cursor[len(V3_CURSOR) :], "cursor") or since)
        width = V3_FIRST_WINDOW
        while start < until:
            end = min(until, start + width)
            try:
                traces = self._v3_traces(start, end)
                if traces is not None:
                    roots = self._v3_generations(start, end, {t["id"] for t in traces})
            except LangfuseError as exc:
                if exc.status != 422:
                    raise
                if end - start <= V3_MIN_WINDOW:
                    raise _timed_out_error(exc, f"a window of {end - start}") from exc
                width = (end - start) / 2
                continue
            if traces is None:  # more than one page: a smaller window
                width = (end - start) / 2
                continue
            if tags:
                wanted = set(tags)
                traces = [t for t in traces if wanted & set(t.get("tags") or ())]
            data = [_v1_root(trace, roots.get(trace["id"])) for trace in traces]
            next_cursor = f"{V3_CURSOR}{_iso(end)}" if end < until else None
            yield ObservationPage(data, cursor, next_cursor)
            cursor, start = next_cursor, end
            if len(traces) < V3_PAGE // 4:
                width = min(V3_MAX_WINDOW, width * 2)

    def _v3_traces(self, start: datetime, end: datetime) -> list[dict[str, Any]] | None:
        """The traces of ``[start, end)``, or None when they fill more than one page (a
        window narrower than ``V3_MIN_WINDOW`` is paged through and de-duplicated)."""
        http = self._sdk_http()
        params = {
            "fromTimestamp": _iso(start),
            "toTimestamp": _iso(end),
            "limit": V3_PAGE,
            "fields": "core,io,metrics",
        }
        found: dict[str, dict[str, Any]] = {}
        page = 1
        while True:
            body = self._call(
                "list traces",
                partial(_get_json, http, "api/public/traces", {**params, "page": page}),
            )
            total = int((body.get("meta") or {}).get("totalItems") or 0)
            if total > V3_PAGE and end - start > V3_MIN_WINDOW:
                return None
            for trace in _page_data(body):
                if isinstance(trace, dict) and isinstance(trace.get("id"), str):
                    found.setdefault(trace["id"], trace)
            if page >= int((body.get("meta") or {}).get("totalPages") or 1):
                return list(found.values())
            page += 1

    def _v3_generations(
        self, start: datetime, end: datetime, trace_ids: set[str]
    ) -> dict[str, dict[str, Any]]:
        """Each trace's root generation (model, first token, usage), read around the
        window: a root may start a moment after its trace's timestamp."""
        if not trace_ids:
            return {}
        http = self._sdk_http()
        params = {
            "type": "GENERATION",
            "fromStartTime": _iso(start - V3_ROOT_SLACK),
            "toStartTime": _iso(end + V3_ROOT_SLACK),
            "limit": V3_PAGE,
        }
        roots: dict[str, dict[str, Any]] = {}
        page = 1
        while True:
            body = self._call(
                "list observations",
                partial(_get_json, http, "api/public/observations", {**params, "page": page}),
            )
            for obs in _page_data(body):
                obs = _mapping(obs)
                trace_id = obs.get("traceId")
                if trace_id not in trace_ids:
                    continue
                known = roots.get(trace_id)
                is_root = obs.get("parentObservationId") is None
                if known is None or (is_root and known.get("parentObservationId") is not None):
                    roots[trace_id] = dict(obs)
            if page >= int((body.get("meta") or {}).get("totalPages") or 1):
                return roots
            page += 1

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
        """Ask Langfuse to delete one score (an undone label's). True when it took the
        request: it answers 202 for any id and deletes later, so only a later read can tell
        the score is gone. False on a 404 (a server that checks first).

        Retried like a read: deleting twice is harmless.
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
        if self.server_info().generation == "v3":
            return self._write_one_by_one(labels, config_id)
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

    def _write_one_by_one(self, labels: Sequence[LabelScore], config_id: str) -> WriteResult:
        """v3: one ``POST /api/public/scores`` per score (a list gets 400 there), at most
        ``V3_WRITERS`` at once, each retried like any call (``Retry-After`` honoured). A
        score the server refuses (4xx) is reported as rejected, like a 207's; anything
        retryable that outlasts the retries is raised."""
        http = self._sdk_http()
        bodies = [
            _score_body(
                label,
                label.score_id or _label_score_id(label.trace_id, self.label_score_name),
                self.label_score_name,
                config_id,
            )
            for label in labels
        ]

        def write(body: dict[str, Any]) -> str | None:
            try:
                self._call("write score", partial(_post_json, http, "api/public/scores", body))
            except LangfuseError as exc:
                if exc.retryable:
                    raise
                return f"{body['id']}: {exc}"
            return None

        with ThreadPoolExecutor(max_workers=min(V3_WRITERS, len(bodies))) as pool:
            outcomes = list(pool.map(write, bodies))
        errors = tuple(e for e in outcomes if e is not None)
        failed = tuple(b["id"] for b, e in zip(bodies, outcomes, strict=True) if e is not None)
        return WriteResult(
            status=207 if errors else 202,
            sent_ids=tuple(b["id"] for b in bodies),
            accepted=len(bodies) - len(errors),
            rejected=len(errors),
            errors=errors,
            failed_ids=failed,
        )


def _post_json(http: Any, path: str, body: Any) -> dict[str, Any]:
    """POST ``body`` through the SDK's HTTP client; the answer as a JSON object."""
    response = http.request(path, method="POST", json=body, request_options=_NO_SDK_RETRIES)
    answer = _json_answer(response)
    return answer if isinstance(answer, dict) else {}


def _timed_out_error(exc: LangfuseError, what: str) -> LangfuseError:
    """A 422 "Request timed out" that halving did not cure gets a message saying so."""
    return LangfuseError(
        f"Langfuse timed out reading {what}, the smallest the console asks for: its "
        f"analytics store is overloaded or short of memory ({exc})",
        retryable=True,
        status=422,
    )


def _v1_root(trace: Mapping[str, Any], generation: Mapping[str, Any] | None) -> dict[str, Any]:
    """A v1 trace and its root generation as one v2-style root observation, the shape
    ``parse_observation`` reads (tags and trace name come from the trace)."""
    obs = dict(generation or {})
    obs.update(
        {
            "id": obs.get("id") or trace["id"],
            "traceId": trace["id"],
            "startTime": obs.get("startTime") or trace.get("timestamp"),
            "input": obs.get("input") if obs.get("input") is not None else trace.get("input"),
            "output": obs.get("output") if obs.get("output") is not None else trace.get("output"),
            "tags": trace.get("tags") or [],
            "traceName": trace.get("name"),
            "userId": trace.get("userId"),
            "sessionId": trace.get("sessionId"),
            # Trace metadata holds what the pod sets (version, content length, keywords).
            "metadata": {**_mapping(obs.get("metadata")), **_mapping(trace.get("metadata"))},
            "latency": trace.get("latency"),  # seconds on v1 traces
            "totalCost": obs.get("calculatedTotalCost", trace.get("totalCost")),
        }
    )
    return obs


def _score_body(label: LabelScore, score_id: str, name: str, config_id: str) -> dict[str, Any]:
    """One score as v3 takes it (no timestamp: v3 drops it and stamps the write)."""
    body = {
        "id": score_id,
        "traceId": label.trace_id,
        "name": name,
        "value": label.value,
        "dataType": "CATEGORICAL",
        "configId": config_id,
        "source": "ANNOTATION",
        "comment": label.comment or None,
        "metadata": label.metadata,
    }
    return {k: v for k, v in body.items() if v is not None}


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
    body = _json_answer(response)
    if not isinstance(body, dict):
        raise json.JSONDecodeError("expected a JSON object", response.text[:80], 0)
    return body


def _json_answer(response: Any) -> Any:
    """A 2xx answer's JSON; any other status raised as the SDK's ApiError (translated and
    retried like the SDK's own calls)."""
    if not 200 <= response.status_code < 300:
        try:
            detail = response.json()
        except json.JSONDecodeError:
            detail = response.text
        raise ApiError(
            status_code=response.status_code, headers=dict(response.headers), body=detail
        )
    return response.json()


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
