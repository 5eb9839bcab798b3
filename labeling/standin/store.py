"""In-memory data and query semantics of the Langfuse stand-in.

Observations and scores are kept in the API's wire format (camelCase dicts). Queries
answer with ``(status, body)`` so the HTTP layer stays thin and the rules are testable
on their own. Semantics follow what the v5 SDK documents for the public API:

- observations v2: keyset cursor, newest first; ``limit`` <= 1000; ``fields`` groups;
  a JSON ``filter`` takes precedence over every query-parameter filter;
  ``parseIoAsJson=true`` is refused; metadata values over 200 characters are truncated
  unless their key is in ``expandMetadata``.
- scores v3: cursor, ``limit`` <= 100, ``fields`` in details/subject/annotation.
- score writes (v4): a JSON list; 202 when all are valid, 207 with counts and messages
  otherwise; an ANNOTATION score needs a ``configId`` unless it is a CORRECTION; a score sent
  again with the same id replaces the stored one. (v3): one object per request, 200 ``{id}``;
  a list is 400 "Invalid request data"; ``timestamp`` is dropped (the write is stamped).
- score deletes (both): 202 for any id; the score goes ``delete_delay`` seconds later.

``Store(api_generation="v3")`` answers as a self-hosted Langfuse v3 does (from 3.180): no
``/api/public/v2/observations`` (404), the v1 reads instead, one score per write.
"""

from __future__ import annotations

import base64
import bisect
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

PROJECT_ID = "standin-project"
MAX_OBSERVATION_LIMIT = 1000
MAX_SCORE_LIMIT = 100
MAX_SCORE_BATCH = 1000
METADATA_PREVIEW = 200
MAX_V1_LIMIT = 100
# Trace-level fields v1 observations do not carry (the v2 ones do, as trace context).
V1_NOT_ON_OBSERVATIONS = frozenset(
    {"tags", "traceName", "release", "isRootObservation", "userId", "sessionId"}
)
V1_TIMEOUT_MESSAGE = (
    "Your query could not be completed. Please narrow your request by adding more specific "
    "filters (e.g., a shorter date range)."
)

FIELD_GROUPS = {
    "core": (
        "id", "traceId", "startTime", "endTime", "projectId", "parentObservationId", "type",
    ),
    "basic": (
        "name", "level", "statusMessage", "version", "environment", "bookmarked", "public",
        "userId", "sessionId", "isRootObservation",
    ),
    "time": ("completionStartTime", "createdAt", "updatedAt"),
    "io": ("input", "output"),
    "metadata": ("metadata",),
    "model": (
        "model", "internalModelId", "modelParameters", "modelId", "inputPrice", "outputPrice",
        "totalPrice",
    ),
    "usage": ("usageDetails", "costDetails", "totalCost", "usagePricingTierName"),
    "prompt": ("promptId", "promptName", "promptVersion"),
    "metrics": ("latency", "timeToFirstToken"),
    "trace_context": ("tags", "release", "traceName"),
}  # fmt: skip
DEFAULT_GROUPS = ("core", "basic")
SCORE_CORE = (
    "id", "projectId", "name", "value", "dataType", "source", "timestamp", "environment",
    "createdAt", "updatedAt",
)  # fmt: skip
SCORE_GROUPS = {
    "details": ("comment", "configId", "metadata"),
    "subject": ("subject",),
    "annotation": ("authorUserId", "queueId"),
}
SCORE_DATA_TYPES = ("NUMERIC", "BOOLEAN", "CATEGORICAL", "TEXT", "CORRECTION")
# Query parameters that act as filters only when no JSON ``filter`` is given.
_PARAM_COLUMNS = {
    "name": "name",
    "userId": "userId",
    "sessionId": "sessionId",
    "type": "type",
    "traceId": "traceId",
    "level": "level",
    "version": "version",
}
_COLUMN_ALIASES = {"traceTags": "tags", "providedModelName": "model", "tokens": "totalTokens"}
_ENVIRONMENT = re.compile(r"^(?!langfuse)[a-z0-9_-]{1,40}$")
_CONFIG_NAME = re.compile(r"^[A-Za-z0-9_ .()\-]{1,35}$")


class BadRequest(ValueError):
    """A request the real API answers with 400."""


def iso(moment: datetime) -> str:
    """The API's timestamp format: UTC, milliseconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def parse_time(value: Any, what: str = "datetime") -> datetime:
    if not isinstance(value, str):
        raise BadRequest(f"{what} must be an ISO 8601 string")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequest(f"invalid {what}: {value!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _micros(value: str) -> int:
    moment = parse_time(value)
    return int(moment.timestamp() * 1_000_000)


def encode_cursor(payload: Mapping[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("invalid cursor") from exc
    if not isinstance(payload, dict):
        raise BadRequest("invalid cursor")
    return payload


@dataclass
class Fault:
    """The next ``count`` matching requests fail this way.

    ``status`` answers with that HTTP status (``retry_after`` sets the header), ``delay``
    holds the answer back that many seconds (to provoke client timeouts), ``drop`` closes
    the connection without an answer. ``path`` limits it to URL paths starting so.
    """

    status: int | None = 500
    count: int = 1
    retry_after: str | None = None
    path: str = "/api/public/"
    method: str | None = None
    delay: float = 0.0
    drop: bool = False
    body: Any = None


# ---------------------------------------------------------------- filters


def _number(obs: Mapping[str, Any], column: str) -> float | None:
    if column in ("inputTokens", "outputTokens", "totalTokens"):
        key = {"inputTokens": "input", "outputTokens": "output", "totalTokens": "total"}[column]
        return (obs.get("usageDetails") or {}).get(key)
    if column in ("inputCost", "outputCost"):
        return (obs.get("costDetails") or {}).get(column[:-4])
    value = obs.get(column)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _obs_micros(obs: Mapping[str, Any], column: str) -> int | None:
    """A datetime column in µs; startTime is cached at load time (filters run per row)."""
    cached = obs.get("_" + column)
    if cached is not None:
        return cached
    value = obs.get(column)
    return _micros(value) if value is not None else None


def start_time_bounds(conditions: list[dict[str, Any]]) -> tuple[int | None, int | None]:
    """The tightest [low, high] startTime bounds (µs, inclusive) a valid filter implies."""
    low = high = None
    for cond in conditions:
        if cond.get("type") != "datetime" or cond.get("column") != "startTime":
            continue
        bound, operator = _micros(cond["value"]), cond["operator"]
        if operator in (">", ">="):
            bound += operator == ">"
            low = bound if low is None else max(low, bound)
        else:
            bound -= operator == "<"
            high = bound if high is None else min(high, bound)
    return low, high


def _compare(left: Any, operator: str, right: Any) -> bool:
    if left is None:
        return False
    if operator == "=":
        return left == right
    if operator == ">":
        return left > right
    if operator == "<":
        return left < right
    if operator == ">=":
        return left >= right
    if operator == "<=":
        return left <= right
    raise BadRequest(f"invalid operator {operator!r}")


def _string_match(value: Any, operator: str, target: Any) -> bool:
    if not isinstance(target, str):
        raise BadRequest("string filters need a string value")
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    if operator == "=":
        return text == target
    if operator == "contains":
        return target in text
    if operator == "does not contain":
        return target not in text
    if operator == "starts with":
        return text.startswith(target)
    if operator == "ends with":
        return text.endswith(target)
    if operator == "matches":
        return target.lower() in text.lower()
    if operator == "is set":
        return value is not None
    if operator == "is not set":
        return value is None
    raise BadRequest(f"invalid string operator {operator!r}")


def compile_filter(conditions: Any):
    """Validate a JSON filter (already decoded) and return ``predicate(observation)``."""
    if not isinstance(conditions, list):
        raise BadRequest("filter must be a JSON array")
    checks = []
    for index, cond in enumerate(conditions):
        if not isinstance(cond, dict):
            raise BadRequest(f"filter[{index}] must be an object")
        kind, column, operator = cond.get("type"), cond.get("column"), cond.get("operator")
        if not (isinstance(kind, str) and isinstance(column, str) and isinstance(operator, str)):
            raise BadRequest(f"filter[{index}] needs type, column and operator")
        column = _COLUMN_ALIASES.get(column, column)
        value = cond.get("value")
        checks.append(_condition(kind, column, operator, value, cond.get("key"), index))
    return lambda obs: all(check(obs) for check in checks)


def _condition(kind, column, operator, value, key, index):  # one branch per type
    if kind == "datetime":
        if operator not in (">", "<", ">=", "<="):
            raise BadRequest(f"filter[{index}]: invalid datetime operator {operator!r}")
        bound = _micros(value) if isinstance(value, str) else None
        if bound is None:
            raise BadRequest(f"filter[{index}]: datetime value must be an ISO string")
        return lambda obs: _compare(_obs_micros(obs, column), operator, bound)
    if kind == "arrayOptions":
        if operator not in ("any of", "none of", "all of") or not isinstance(value, list):
            raise BadRequest(f"filter[{index}]: invalid arrayOptions condition")
        wanted = set(value)
        if operator == "any of":
            return lambda obs: bool(wanted & set(obs.get(column) or ()))
        if operator == "all of":
            return lambda obs: wanted <= set(obs.get(column) or ())
        return lambda obs: not (wanted & set(obs.get(column) or ()))
    if kind in ("stringOptions", "categoryOptions"):
        if operator not in ("any of", "none of") or not isinstance(value, list):
            raise BadRequest(f"filter[{index}]: invalid {kind} condition")
        options = set(value)
        if kind == "categoryOptions" and key:
            return lambda obs: (
                ((obs.get(column) or {}).get(key) in options) == (operator == "any of")
            )
        return lambda obs: (obs.get(column) in options) == (operator == "any of")
    if kind == "string":
        return lambda obs: _string_match(obs.get(column), operator, value)
    if kind == "number":
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise BadRequest(f"filter[{index}]: number value must be a number")
        return lambda obs: _compare(_number(obs, column), operator, value)
    if kind == "boolean":
        if operator not in ("=", "<>") or not isinstance(value, bool):
            raise BadRequest(f"filter[{index}]: invalid boolean condition")
        return lambda obs: (bool(obs.get(column)) == value) == (operator == "=")
    if kind == "null":
        if operator not in ("is null", "is not null"):
            raise BadRequest(f"filter[{index}]: invalid null operator")
        return lambda obs: (obs.get(column) is None) == (operator == "is null")
    if kind in ("stringObject", "numberObject"):
        if not key:
            raise BadRequest(f"filter[{index}]: {kind} needs a key")
        if kind == "stringObject":
            return lambda obs: _string_match((obs.get(column) or {}).get(key), operator, value)

        def metadata_number(obs):
            raw = (obs.get(column) or {}).get(key)
            if raw is None:  # float(None) would raise TypeError: the same answer
                return None
            try:
                return float(raw)
            except (TypeError, ValueError):
                return None

        return lambda obs: _compare(metadata_number(obs), operator, value)
    raise BadRequest(f"filter[{index}]: unknown filter type {kind!r}")


def _param_filter(query: Mapping[str, list[str]]):
    """Filters from plain query parameters (ignored when a JSON filter is given)."""
    checks: list[Callable[[dict[str, Any]], bool]] = []
    equal = {column: query[param][-1] for param, column in _PARAM_COLUMNS.items() if param in query}
    if equal:
        checks.append(lambda obs: all(obs.get(c) == w for c, w in equal.items()))
    if "isRootObservation" in query:
        is_root = _query_bool(query, "isRootObservation")
        checks.append(lambda obs: bool(obs.get("isRootObservation")) == is_root)
    if "parentObservationId" in query:
        parent = query["parentObservationId"][-1] or None
        checks.append(lambda obs: obs.get("parentObservationId") == parent)
    if "environment" in query:
        environments = set(query["environment"])
        checks.append(lambda obs: obs.get("environment") in environments)
    bounds = [
        (operator, _micros(query[param][-1]))
        for param, operator in (("fromStartTime", ">="), ("toStartTime", "<"))
        if param in query
    ]
    if bounds:
        checks.append(
            lambda obs: all(_compare(_obs_micros(obs, "startTime"), op, b) for op, b in bounds)
        )
    return lambda obs: all(check(obs) for check in checks)


def _query_bool(query: Mapping[str, list[str]], name: str) -> bool:
    raw = query[name][-1].lower()
    if raw not in ("true", "false"):
        raise BadRequest(f"{name} must be true or false")
    return raw == "true"


def _query_int(query: Mapping[str, list[str]], name: str, default: int, maximum: int) -> int:
    if name not in query:
        return default
    try:
        value = int(query[name][-1])
    except ValueError as exc:
        raise BadRequest(f"{name} must be an integer") from exc
    if not 1 <= value <= maximum:
        raise BadRequest(f"{name} must be between 1 and {maximum}")
    return value


def _csv(query: Mapping[str, list[str]], name: str) -> set[str] | None:
    if name not in query:
        return None
    return {part.strip() for raw in query[name] for part in raw.split(",") if part.strip()}


# ---------------------------------------------------------------- the store


class Store:
    """Everything the stand-in holds. Thread-safe; every public method takes the lock."""

    def __init__(
        self,
        project_id: str = PROJECT_ID,
        *,
        api_generation: str = "v4",
        delete_delay: float = 1.0,
    ):
        if api_generation not in ("v3", "v4"):
            raise ValueError(f"api_generation must be v3 or v4, got {api_generation!r}")
        self.project_id = project_id
        self.api_generation = api_generation
        self.delete_delay = delete_delay
        # A v1 read matching more rows than this, or a v2 page asked larger, answers 422
        # "Request timed out", as Langfuse does when a query outgrows its analytics store.
        self.timeout_above: int | None = None
        self._pending_deletes: dict[str, float] = {}  # score id -> when it goes (monotonic)
        self._lock = threading.RLock()
        self._observations: list[dict[str, Any]] = []  # ascending by _keys
        self._keys: list[tuple[int, str]] = []  # (startTime in µs, id)
        self._scores: dict[str, dict[str, Any]] = {}
        self._traces: dict[str, dict[str, Any]] = {}  # trace-create bodies, for their context
        self._scores_by_trace: dict[str, set[str]] = {}
        self._configs: dict[str, dict[str, Any]] = {}
        self._faults: deque[Fault] = deque()
        self.truth: dict[str, str] = {}
        self.request_log: deque[tuple[str, str, dict[str, list[str]]]] = deque(maxlen=5000)

    # -- loading

    def add_observations(self, observations: Iterable[Mapping[str, Any]]) -> None:
        new = [{**item, "_startTime": _micros(item["startTime"])} for item in observations]
        with self._lock:
            self._set_rows([*self._observations, *new])

    def _set_rows(self, rows: list[dict[str, Any]]) -> None:
        """Keep the rows sorted by (start, id) with their keys (held lock)."""
        rows.sort(key=lambda o: (o["_startTime"], o["id"]))
        self._observations = rows
        self._keys = [(o["_startTime"], o["id"]) for o in rows]

    def upsert_observations(self, observations: Iterable[Mapping[str, Any]]) -> int:
        """Add ingested observations, an id seen before replacing the stored one (the SDK
        sends an observation again when it ends). Returns how many were stored."""
        new = {o["id"]: dict(o) for o in observations}
        with self._lock:
            kept = [o for o in self._observations if o["id"] not in new]
            for obs in new.values():
                obs["_startTime"] = _micros(obs["startTime"])
            self._set_rows([*kept, *new.values()])
        return len(new)

    def ingest_batch(self, events: list[dict[str, Any]]) -> tuple[int, Any]:
        """``POST /api/public/ingestion``: trace-create, generation-create, span-create and
        score-create events (others, updates included, are refused one by one); 207 with
        each event's outcome, by the event's own id."""
        from .ingest import IngestError, observation_from_event

        successes, errors, observations = [], [], []
        now = iso(datetime.now(UTC))
        for event in events:
            kind, body = event["type"], event["body"]
            try:
                if not isinstance(body, dict):
                    raise IngestError("body must be an object")
                if kind == "trace-create":
                    if not body.get("id"):
                        raise IngestError("id is required")
                    with self._lock:
                        self._traces[body["id"]] = {**self._traces.get(body["id"], {}), **body}
                elif kind in ("generation-create", "span-create"):
                    with self._lock:
                        traces = dict(self._traces)
                    observations.append(observation_from_event(event, traces))
                elif kind == "score-create":
                    stamped = {**body, "timestamp": body.get("timestamp") or event.get("timestamp")}
                    with self._lock:
                        self._put_score(self._validate_score(stamped, now))
                else:
                    raise IngestError(f"event type {kind!r} is not supported here")
            except BadRequest as exc:
                errors.append({"id": event["id"], "status": 400, "message": str(exc)})
                continue
            successes.append({"id": event["id"], "status": 201})
        if observations:
            self.upsert_observations(observations)
        return 207, {"successes": successes, "errors": errors}

    def add_scores(self, scores: Iterable[Mapping[str, Any]]) -> None:
        with self._lock:
            for score in scores:
                self._put_score(dict(score))

    def load(self, traffic) -> None:
        """Load a ``traffic.Traffic`` (observations, feedback scores, and the ground truth
        the demo's simulated reviewer reads; real Langfuse has no such thing)."""
        self.add_observations(traffic.observations)
        self.add_scores(traffic.scores)
        with self._lock:
            self.truth = dict(getattr(traffic, "truth", {}))

    def observations(self) -> list[dict[str, Any]]:
        """Copies of every stored observation, oldest first (for tests and the demo)."""
        with self._lock:
            return [
                {k: v for k, v in o.items() if not k.startswith("_")} for o in self._observations
            ]

    def observation_count(self) -> int:
        with self._lock:
            return len(self._observations)

    def scores(self) -> list[dict[str, Any]]:
        self.apply_due_deletes()
        with self._lock:
            return [dict(s) for s in self._scores.values()]

    def score_configs(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(c) for c in self._configs.values()]

    def update_score_config(self, config_id: str, **changes: Any) -> None:
        """Change a config behind the client's back (e.g. drop a category)."""
        with self._lock:
            self._configs[config_id].update(changes)

    # -- faults

    def inject_fault(self, fault: Fault | None = None, **kwargs: Any) -> None:
        """Queue a fault; ``inject_fault(status=429, count=2, retry_after="1")``."""
        with self._lock:
            self._faults.append(fault or Fault(**kwargs))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if path.startswith(fault.path) and fault.method in (None, method):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def log_request(self, method: str, path: str, query: dict[str, list[str]]) -> None:
        with self._lock:
            self.request_log.append((method, path, query))

    def requests_to(self, path: str) -> list[dict[str, list[str]]]:
        with self._lock:
            return [q for _, p, q in self.request_log if p == path]

    # -- v1 reads (Langfuse v3): page/limit, newest first, LIMIT/OFFSET over a count

    def _v1_page(self, rows: list[dict[str, Any]], query) -> tuple[int, Any]:
        page = _query_int(query, "page", 1, 1_000_000)
        limit = _query_int(query, "limit", 50, MAX_V1_LIMIT)
        if self.timeout_above is not None and len(rows) > self.timeout_above:
            return 422, {"message": V1_TIMEOUT_MESSAGE, "error": "Request timed out"}
        total = len(rows)
        data = rows[(page - 1) * limit : page * limit]
        meta = {"page": page, "limit": limit, "totalItems": total,
                "totalPages": (total + limit - 1) // limit}  # fmt: skip
        return 200, {"data": data, "meta": meta}

    def _v1_bounds(self, query, low_name: str, high_name: str) -> tuple[int | None, int | None]:
        low = _micros(iso(parse_time(query[low_name][-1]))) if low_name in query else None
        high = _micros(iso(parse_time(query[high_name][-1]))) if high_name in query else None
        return low, high

    def list_traces_v1(self, query: Mapping[str, list[str]]) -> tuple[int, Any]:
        """GET /api/public/traces: one item per trace (from its root observation)."""
        low, high = self._v1_bounds(query, "fromTimestamp", "toTimestamp")
        tags = set(query.get("tags", []))
        with self._lock:
            roots = [
                o for o in self._observations
                if o.get("parentObservationId") is None
                and (low is None or o["_startTime"] >= low)
                and (high is None or o["_startTime"] < high)
                and tags <= set(o.get("tags") or ())
            ]  # fmt: skip
            scores = {t: sorted(ids) for t, ids in self._scores_by_trace.items()}
        roots.sort(key=lambda o: o["_startTime"], reverse=True)
        return self._v1_page([self._trace_v1(o, scores) for o in roots], query)

    def _trace_v1(self, root: Mapping[str, Any], scores: Mapping[str, list[str]]) -> dict:
        return {
            "id": root["traceId"],
            "timestamp": root["startTime"],
            "name": root.get("traceName"),
            "userId": root.get("userId"),
            "sessionId": root.get("sessionId"),
            "metadata": root.get("metadata"),
            "tags": root.get("tags") or [],
            "input": root.get("input"),
            "output": root.get("output"),
            "release": root.get("release"),
            "version": root.get("version"),
            "environment": root.get("environment"),
            "public": False,
            "bookmarked": False,
            "projectId": self.project_id,
            "htmlPath": f"/project/{self.project_id}/traces/{root['traceId']}",
            "latency": root.get("latency"),
            "totalCost": root.get("totalCost"),
            "observations": [root["id"]],
            "scores": scores.get(root["traceId"], []),
            "createdAt": root.get("createdAt"),
            "updatedAt": root.get("updatedAt"),
        }

    def list_observations_v1(self, query: Mapping[str, list[str]]) -> tuple[int, Any]:
        """GET /api/public/observations: observations in v1's shape (``model``, no trace
        context), newest first."""
        low, high = self._v1_bounds(query, "fromStartTime", "toStartTime")
        wanted_type = query.get("type", [None])[-1]
        trace_id = query.get("traceId", [None])[-1]
        with self._lock:
            rows = [
                o for o in self._observations
                if (low is None or o["_startTime"] >= low)
                and (high is None or o["_startTime"] < high)
                and (wanted_type is None or o.get("type") == wanted_type)
                and (trace_id is None or o.get("traceId") == trace_id)
            ]  # fmt: skip
        rows.sort(key=lambda o: o["_startTime"], reverse=True)
        data = [
            {
                k: v
                for k, v in o.items()
                if k not in V1_NOT_ON_OBSERVATIONS and not k.startswith("_")
            }
            for o in rows
        ]
        return self._v1_page(data, query)

    # -- observations v2

    def list_observations(self, query: Mapping[str, list[str]]) -> tuple[int, Any]:
        limit = _query_int(query, "limit", 50, MAX_OBSERVATION_LIMIT)
        if self.timeout_above is not None and limit > self.timeout_above:
            return 422, {"message": V1_TIMEOUT_MESSAGE, "error": "Request timed out"}
        if "parseIoAsJson" in query and _query_bool(query, "parseIoAsJson"):
            raise BadRequest("parseIoAsJson is deprecated; input and output are raw strings")
        groups = _csv(query, "fields") or set(DEFAULT_GROUPS)
        unknown = groups - FIELD_GROUPS.keys()
        if unknown:
            raise BadRequest(f"unknown field groups: {', '.join(sorted(unknown))}")
        groups |= {"core"}
        expand = _csv(query, "expandMetadata") or set()
        low = high = None
        if "filter" in query and query["filter"][-1]:
            try:
                decoded = json.loads(query["filter"][-1])
            except json.JSONDecodeError as exc:
                raise BadRequest("filter is not valid JSON") from exc
            predicate = compile_filter(decoded)
            low, high = start_time_bounds(decoded)
        else:
            predicate = _param_filter(query)
        position = None
        if "cursor" in query and query["cursor"][-1]:
            payload = decode_cursor(query["cursor"][-1])
            try:
                position = (int(payload["t"]), str(payload["i"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise BadRequest("invalid cursor") from exc
        with self._lock:
            # Newest first: walk the ascending list backwards from the cursor, only
            # through the rows the startTime bounds allow.
            index = (
                len(self._keys) if position is None else bisect.bisect_left(self._keys, position)
            )
            if high is not None:
                index = min(index, bisect.bisect_left(self._keys, (high + 1, "")))
            stop = 0 if low is None else bisect.bisect_left(self._keys, (low, ""))
            page: list[dict[str, Any]] = []
            more = False
            for i in range(index - 1, stop - 1, -1):
                obs = self._observations[i]
                if not predicate(obs):
                    continue
                if len(page) == limit:
                    more = True
                    break
                page.append(obs)
            data = [self._project(obs, groups, expand) for obs in page]
        meta: dict[str, Any] = {}
        if more and page:
            last = page[-1]
            meta["cursor"] = encode_cursor({"t": _micros(last["startTime"]), "i": last["id"]})
        return 200, {"data": data, "meta": meta}

    def _project(self, obs: Mapping[str, Any], groups: set[str], expand: set[str]) -> dict:
        out: dict[str, Any] = {"projectId": self.project_id}
        for group in groups:
            for name in FIELD_GROUPS[group]:
                if name in obs:
                    out[name] = obs[name]
        if "metadata" in out and isinstance(out["metadata"], dict):
            out["metadata"] = {
                key: _preview(value) if key not in expand else value
                for key, value in out["metadata"].items()
            }
        return out

    # -- scores v3

    def list_scores(self, query: Mapping[str, list[str]]) -> tuple[int, Any]:
        self.apply_due_deletes()
        limit = _query_int(query, "limit", 50, MAX_SCORE_LIMIT)
        groups = _csv(query, "fields") or set()
        unknown = groups - SCORE_GROUPS.keys()
        if unknown:
            raise BadRequest(f"unknown field groups: {', '.join(sorted(unknown))}")
        trace_ids, session_ids = _csv(query, "traceId"), _csv(query, "sessionId")
        observation_ids = _csv(query, "observationId")
        if trace_ids is not None and session_ids is not None:
            raise BadRequest("traceId and sessionId are mutually exclusive")
        if observation_ids is not None and trace_ids is None:
            raise BadRequest("observationId requires traceId")
        filters = {
            "id": _csv(query, "id"),
            "name": _csv(query, "name"),
            "source": {s.upper() for s in _csv(query, "source") or ()} or None,
            "dataType": {s.upper() for s in _csv(query, "dataType") or ()} or None,
            "environment": _csv(query, "environment"),
            "configId": _csv(query, "configId"),
            "authorUserId": _csv(query, "authorUserId"),
        }
        since = parse_time(query["fromTimestamp"][-1]) if "fromTimestamp" in query else None
        until = parse_time(query["toTimestamp"][-1]) if "toTimestamp" in query else None
        position = None
        if "cursor" in query and query["cursor"][-1]:
            payload = decode_cursor(query["cursor"][-1])
            position = (payload.get("t"), payload.get("i"))
        with self._lock:
            if trace_ids is not None:
                ids = set().union(*(self._scores_by_trace.get(t, ()) for t in trace_ids))
                candidates = [self._scores[i] for i in ids]
            else:
                candidates = list(self._scores.values())
            rows = []
            for score in candidates:
                if any(
                    wanted is not None and score.get(column) not in wanted
                    for column, wanted in filters.items()
                ):
                    continue
                subject = score.get("subject") or {}
                if session_ids is not None and not (
                    subject.get("kind") == "session" and subject.get("id") in session_ids
                ):
                    continue
                if observation_ids is not None and not (
                    subject.get("kind") == "observation" and subject.get("id") in observation_ids
                ):
                    continue
                moment = parse_time(score["timestamp"])
                if (since and moment < since) or (until and moment >= until):
                    continue
                rows.append(score)
        rows.sort(key=lambda s: (s["timestamp"], s["id"]), reverse=True)
        if position is not None:
            rows = [s for s in rows if (s["timestamp"], s["id"]) < position]
        page, more = rows[:limit], len(rows) > limit
        keep = set(SCORE_CORE).union(*(SCORE_GROUPS[g] for g in groups))
        data = [
            {"projectId": self.project_id, **{k: v for k, v in s.items() if k in keep}}
            for s in page
        ]
        meta: dict[str, Any] = {"limit": limit}
        if more:
            meta["cursor"] = encode_cursor({"t": page[-1]["timestamp"], "i": page[-1]["id"]})
        return 200, {"data": data, "meta": meta}

    def create_score(self, body: Any) -> tuple[int, Any]:
        """v3: one score object; 200 ``{id}``."""
        if not isinstance(body, dict):
            return 400, {
                "message": "Invalid request data",
                "error": [{"message": "Expected object"}],
            }
        body = {k: v for k, v in body.items() if k != "timestamp"}  # v3 has no such field
        with self._lock:
            try:
                score = self._validate_score(body, iso(datetime.now(UTC)))
            except BadRequest as exc:
                return 400, {"message": "Invalid request data", "error": [{"message": str(exc)}]}
            self._put_score(score)
        return 200, {"id": score["id"]}

    def create_scores(self, body: Any) -> tuple[int, Any]:
        if self.api_generation == "v3":
            return self.create_score(body)
        if not isinstance(body, list) or not body:
            raise BadRequest("body must be a non-empty JSON array of scores")
        if len(body) > MAX_SCORE_BATCH:
            raise BadRequest(f"at most {MAX_SCORE_BATCH} scores per request")
        errors = []
        now = iso(datetime.now(UTC))
        with self._lock:
            for index, item in enumerate(body):
                try:
                    score = self._validate_score(item, now)
                except BadRequest as exc:
                    label = item.get("id") if isinstance(item, dict) else None
                    errors.append({"message": f"scores[{index}] (id={label}): {exc}"})
                    continue
                self._put_score(score)
        if not errors:
            return 202, {"message": "Accepted"}
        return 207, {"accepted": len(body) - len(errors), "rejected": len(errors), "errors": errors}

    def _validate_score(self, item: Any, now: str) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise BadRequest("must be an object")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise BadRequest("name is required")
        trace_id, session_id = item.get("traceId"), item.get("sessionId")
        observation_id, run_id = item.get("observationId"), item.get("datasetRunId")
        if sum(x is not None for x in (trace_id, session_id, run_id)) != 1:
            raise BadRequest("exactly one of traceId, sessionId, datasetRunId is required")
        if observation_id is not None and trace_id is None:
            raise BadRequest("observationId requires traceId")
        source = item.get("source") or "API"
        if source not in ("API", "ANNOTATION"):
            raise BadRequest(f"source {source!r} is not accepted")
        config = None
        if item.get("configId") is not None:
            config = self._configs.get(item["configId"])
            if config is None or config["isArchived"]:
                raise BadRequest(f"score config {item['configId']} not found or archived")
        data_type = item.get("dataType") or (config["dataType"] if config else "NUMERIC")
        if data_type not in SCORE_DATA_TYPES:
            raise BadRequest(f"unknown dataType {data_type!r}")
        if source == "ANNOTATION" and config is None and data_type != "CORRECTION":
            raise BadRequest("ANNOTATION scores need a configId unless dataType is CORRECTION")
        if config is not None and config["dataType"] != data_type:
            raise BadRequest(f"dataType {data_type} does not match its config")
        value = item.get("value")
        if data_type in ("CATEGORICAL", "TEXT", "CORRECTION"):
            if not isinstance(value, str):
                raise BadRequest(f"{data_type} value must be a string")
            if data_type == "TEXT" and not 1 <= len(value) <= 500:
                raise BadRequest("TEXT value must be 1-500 characters")
            if config is not None and data_type == "CATEGORICAL":
                labels = [c["label"] for c in config.get("categories") or ()]
                if value not in labels:
                    raise BadRequest(f"value {value!r} is not a category of config {name!r}")
        else:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise BadRequest(f"{data_type} value must be a number")
            if data_type == "BOOLEAN":
                if value not in (0, 1):
                    raise BadRequest("BOOLEAN value must be 0 or 1")
                value = bool(value)
            elif config is not None and not (
                (config.get("minValue") is None or value >= config["minValue"])
                and (config.get("maxValue") is None or value <= config["maxValue"])
            ):
                raise BadRequest("value is outside its config's range")
        environment = item.get("environment") or "default"
        if not _ENVIRONMENT.match(environment):
            raise BadRequest(f"invalid environment {environment!r}")
        timestamp = (
            iso(parse_time(item["timestamp"], "timestamp")) if item.get("timestamp") else now
        )
        score_id = item.get("id") or str(uuid.uuid4())
        previous = self._scores.get(score_id)
        if trace_id is not None and observation_id is not None:
            subject = {"kind": "observation", "id": observation_id, "traceId": trace_id}
        elif trace_id is not None:
            subject = {"kind": "trace", "id": trace_id}
        elif session_id is not None:
            subject = {"kind": "session", "id": session_id}
        else:
            subject = {"kind": "experiment", "id": run_id}
        return {
            "id": score_id,
            "name": name,
            "value": value,
            "dataType": data_type,
            "source": source,
            "timestamp": timestamp,
            "environment": environment,
            "createdAt": previous["createdAt"] if previous else now,
            "updatedAt": now,
            "comment": item.get("comment"),
            "configId": item.get("configId"),
            "metadata": item.get("metadata"),
            "authorUserId": None,
            "queueId": item.get("queueId"),
            "subject": subject,
        }

    def _put_score(self, score: dict[str, Any]) -> None:
        previous = self._scores.get(score["id"])
        if previous is not None:
            old_trace = _score_trace(previous)
            if old_trace:
                self._scores_by_trace.get(old_trace, set()).discard(score["id"])
        self._scores[score["id"]] = score
        trace_id = _score_trace(score)
        if trace_id:
            self._scores_by_trace.setdefault(trace_id, set()).add(score["id"])

    def delete_score(self, score_id: str) -> tuple[int, Any]:
        """202 for any id, as Langfuse answers; the score goes ``delete_delay`` later."""
        with self._lock:
            if score_id in self._scores:
                self._pending_deletes.setdefault(score_id, time.monotonic() + self.delete_delay)
        self.apply_due_deletes()
        return 202, {"message": "Score deletion queued successfully"}

    def drop_pending_deletes(self) -> int:
        """Forget the deletes not yet carried out (a lost queue job); returns how many."""
        with self._lock:
            count = len(self._pending_deletes)
            self._pending_deletes.clear()
            return count

    def apply_due_deletes(self, *, everything: bool = False) -> int:
        """Carry out the deletes whose delay is over (all of them with ``everything``)."""
        now = time.monotonic()
        with self._lock:
            due = [i for i, at in self._pending_deletes.items() if everything or at <= now]
            for score_id in due:
                del self._pending_deletes[score_id]
                score = self._scores.pop(score_id, None)
                trace_id = _score_trace(score) if score else None
                if trace_id:
                    self._scores_by_trace.get(trace_id, set()).discard(score_id)
        return len(due)

    # -- score configs

    def list_score_configs(self, query: Mapping[str, list[str]]) -> tuple[int, Any]:
        page = _query_int(query, "page", 1, 1_000_000)
        limit = _query_int(query, "limit", 50, 1000)
        with self._lock:
            configs = sorted(self._configs.values(), key=lambda c: (c["createdAt"], c["id"]))
        total = len(configs)
        chunk = configs[(page - 1) * limit : page * limit]
        return 200, {
            "data": chunk,
            "meta": {
                "page": page,
                "limit": limit,
                "totalItems": total,
                "totalPages": (total + limit - 1) // limit,
            },
        }

    def create_score_config(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        name, data_type = body.get("name"), body.get("dataType")
        if not isinstance(name, str) or not _CONFIG_NAME.match(name):
            raise BadRequest("name must be 1-35 letters, digits, _ . ( ) - or spaces")
        if data_type not in ("NUMERIC", "BOOLEAN", "CATEGORICAL"):
            raise BadRequest("dataType must be NUMERIC, BOOLEAN or CATEGORICAL")
        categories = body.get("categories")
        if data_type == "CATEGORICAL":
            if (
                not isinstance(categories, list)
                or not categories
                or not all(
                    isinstance(c, dict) and isinstance(c.get("label"), str) and "value" in c
                    for c in categories
                )
            ):
                raise BadRequest("CATEGORICAL configs need categories with label and value")
        elif data_type == "BOOLEAN":
            if categories:
                raise BadRequest("BOOLEAN configs get their categories automatically")
            categories = [{"label": "True", "value": 1}, {"label": "False", "value": 0}]
        now = iso(datetime.now(UTC))
        config = {
            "id": str(uuid.uuid4()),
            "name": name,
            "createdAt": now,
            "updatedAt": now,
            "projectId": self.project_id,
            "dataType": data_type,
            "isArchived": False,
            "minValue": body.get("minValue"),
            "maxValue": body.get("maxValue"),
            "categories": categories,
            "description": body.get("description"),
        }
        with self._lock:
            self._configs[config["id"]] = config
        return 200, dict(config)


def _score_trace(score: Mapping[str, Any]) -> str | None:
    subject = score.get("subject") or {}
    if subject.get("kind") == "trace":
        return subject.get("id")
    if subject.get("kind") == "observation":
        return subject.get("traceId")
    return None


def _preview(value: Any) -> Any:
    """Metadata values come back cut to 200 characters unless expanded."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if len(text) <= METADATA_PREVIEW:
        return value
    return text[:METADATA_PREVIEW] + "..."
