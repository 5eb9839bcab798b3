"""Observations as Langfuse sends them, parsed into records (never guessed)."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from routing.engine import MessagesError, conversation_text

from .errors import MalformedTrace
from .records import ObservationPage, ParsedPage, TraceRecord

log = logging.getLogger(__name__)

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
        except Exception as exc:  # counted as a skip, logged for a fix
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
