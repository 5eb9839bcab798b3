"""Ingestion for the stand-in: OTLP/HTTP traces as the langfuse SDK exports them, and the
``/api/public/ingestion`` batch API, turned into the observations and scores it serves.

OTLP bodies are protobuf (``application/x-protobuf``, what SDK 5 sends) or OTLP/JSON
(``application/json``), optionally gzipped. Spans map as Langfuse maps them:
``langfuse.observation.*`` to the observation, ``langfuse.trace.*`` (tags, name, metadata)
and ``user.id`` / ``session.id`` to its trace; a span marked ``langfuse.internal.as_root``
(or without a parent) is the trace's root. Attribute values arrive JSON-encoded; metadata
comes back as strings (arrays JSON-encoded), as Langfuse returns OTel metadata.
"""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from .store import BadRequest, iso

OBSERVATION_TYPES = {"generation", "span", "event", "agent", "tool", "chain", "retriever"}


class IngestError(BadRequest):
    """A body the ingestion endpoints cannot read; the text says why."""


def _decoded(body: bytes, content_encoding: str) -> bytes:
    if "gzip" in (content_encoding or "").lower():
        try:
            return gzip.decompress(body)
        except OSError as exc:
            raise IngestError(f"gzip body could not be read: {exc}") from exc
    return body


def attribute_value(any_value: AnyValue) -> Any:
    """An OTLP attribute value as plain Python (arrays as lists, key-value lists as dicts)."""
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [attribute_value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: attribute_value(kv.value) for kv in any_value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(any_value.bytes_value).decode()
    return getattr(any_value, kind)


def otlp_spans(body: bytes, content_type: str, content_encoding: str = "") -> list[dict]:
    """The spans of one OTLP/HTTP export body as plain dicts (hex ids, ns times)."""
    raw = _decoded(body, content_encoding)
    request = ExportTraceServiceRequest()
    try:
        if "application/x-protobuf" in content_type:
            request.ParseFromString(raw)
        elif "application/json" in content_type:
            # OTLP/JSON spells ids in hex; protobuf's JSON mapping expects base64.
            json_format.ParseDict(_hex_ids_to_base64(json.loads(raw)), request)
        else:
            raise IngestError("Invalid content type")
    except (ValueError, json_format.ParseError) as exc:
        raise IngestError(f"OTLP body could not be parsed: {exc}") from exc
    spans = []
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    {
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "name": span.name,
                        "start_ns": span.start_time_unix_nano,
                        "end_ns": span.end_time_unix_nano,
                        "attributes": {kv.key: attribute_value(kv.value) for kv in span.attributes},
                    }
                )
    return spans


def _hex_ids_to_base64(document: Any) -> Any:
    for resource_spans in document.get("resourceSpans", []) if isinstance(document, dict) else []:
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    return document


def _json_attr(value: Any) -> Any:
    """An attribute the SDK JSON-encoded ('"v7"', '33', '["a"]'), decoded."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _metadata_value(value: Any) -> str:
    """OTel metadata comes back from Langfuse as strings, arrays and objects JSON-encoded."""
    decoded = _json_attr(value)
    if isinstance(decoded, str):
        return decoded
    return json.dumps(decoded, ensure_ascii=False)


def _time(ns: int) -> str:
    return iso(datetime.fromtimestamp(ns / 1e9, UTC))


def observations_from_spans(spans: list[dict]) -> list[dict[str, Any]]:
    """Each span as an observation in the stand-in's (v2 wire) form; a root carries its
    trace's context (tags, trace name, user, session, trace metadata)."""
    out = []
    for span in spans:
        attrs = span["attributes"]
        root = bool(attrs.get("langfuse.internal.as_root")) or not span["parent_span_id"]
        kind = str(attrs.get("langfuse.observation.type") or "span").lower()
        metadata = {
            key.removeprefix(prefix): _metadata_value(value)
            for prefix in ("langfuse.observation.metadata.", "langfuse.trace.metadata.")
            for key, value in attrs.items()
            if key.startswith(prefix)
        }
        start, end = _time(span["start_ns"]), _time(span["end_ns"])
        first_token = _json_attr(attrs.get("langfuse.observation.completion_start_time"))
        tags = attrs.get("langfuse.trace.tags")
        out.append(
            {
                "id": span["span_id"],
                "traceId": span["trace_id"],
                "startTime": start,
                "endTime": end,
                "parentObservationId": None if root else span["parent_span_id"],
                "type": kind.upper() if kind in OBSERVATION_TYPES else "SPAN",
                "name": span["name"],
                "level": attrs.get("langfuse.observation.level") or "DEFAULT",
                "statusMessage": attrs.get("langfuse.observation.status_message"),
                "environment": attrs.get("langfuse.environment") or "default",
                "userId": attrs.get("user.id") or attrs.get("langfuse.user.id"),
                "sessionId": attrs.get("session.id") or attrs.get("langfuse.session.id"),
                "isRootObservation": root,
                "completionStartTime": first_token if isinstance(first_token, str) else None,
                "createdAt": end,
                "updatedAt": end,
                "input": attrs.get("langfuse.observation.input"),
                "output": attrs.get("langfuse.observation.output"),
                "metadata": metadata,
                "model": attrs.get("langfuse.observation.model.name"),
                "usageDetails": _json_attr(attrs.get("langfuse.observation.usage_details")),
                "costDetails": _json_attr(attrs.get("langfuse.observation.cost_details")),
                "latency": round((span["end_ns"] - span["start_ns"]) / 1e9, 3),
                "tags": list(tags) if isinstance(tags, list) else [],
                "release": attrs.get("langfuse.release"),
                "traceName": attrs.get("langfuse.trace.name"),
            }
        )
    return out


def batch_events(body: Any) -> list[dict[str, Any]]:
    """The events of a ``POST /api/public/ingestion`` body, checked for their envelope."""
    if not isinstance(body, dict) or not isinstance(body.get("batch"), list):
        raise IngestError("Invalid request data: a {batch: [...]} object is required")
    for index, event in enumerate(body["batch"]):
        if not isinstance(event, dict) or not all(k in event for k in ("id", "type", "body")):
            raise IngestError(f"Invalid request data: batch[{index}] needs id, type and body")
    return body["batch"]


def observation_from_event(event: dict[str, Any], traces: dict[str, dict]) -> dict[str, Any]:
    """A ``generation-create`` (or ``span-create``) event's body as an observation; a root
    one takes its trace's context from an earlier ``trace-create``."""
    body = event["body"]
    if not isinstance(body.get("traceId"), str) or not body.get("traceId"):
        raise IngestError("traceId is required")
    trace = traces.get(body["traceId"], {})
    root = not body.get("parentObservationId")
    kind = "GENERATION" if event["type"].startswith("generation") else "SPAN"
    start = body.get("startTime") or event.get("timestamp")
    if not isinstance(start, str):
        raise IngestError("startTime is required")
    return {
        "id": body.get("id") or event["id"],
        "traceId": body["traceId"],
        "startTime": start,
        "endTime": body.get("endTime"),
        "parentObservationId": body.get("parentObservationId"),
        "type": kind,
        "name": body.get("name"),
        "level": body.get("level") or "DEFAULT",
        "statusMessage": body.get("statusMessage"),
        "environment": body.get("environment") or "default",
        "userId": trace.get("userId"),
        "sessionId": trace.get("sessionId"),
        "isRootObservation": root,
        "completionStartTime": body.get("completionStartTime"),
        "createdAt": event.get("timestamp"),
        "updatedAt": event.get("timestamp"),
        "input": _as_wire_text(body.get("input", trace.get("input"))),
        "output": _as_wire_text(body.get("output", trace.get("output"))),
        "metadata": {**(body.get("metadata") or {}), **(trace.get("metadata") or {})},
        "model": body.get("model"),
        "usageDetails": body.get("usageDetails"),
        "costDetails": body.get("costDetails"),
        "tags": trace.get("tags") or [],
        "release": trace.get("release"),
        "traceName": trace.get("name"),
    }


def _as_wire_text(value: Any) -> Any:
    """Input and output are served as raw strings (the API's default)."""
    return value if value is None or isinstance(value, str) else json.dumps(value)
