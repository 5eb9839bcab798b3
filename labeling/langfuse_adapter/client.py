"""The adapter: reads traces and feedback, writes and deletes labels, either generation."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import httpx
from langfuse.api import LangfuseAPI
from langfuse.api.core.api_error import ApiError

from .errors import LangfuseError, MalformedTrace, translate_error
from .parsing import _as_utc, _iso, _mapping, _text, observation_filter, parse_page
from .protocol import (
    _NO_SDK_RETRIES,
    DEFAULT_LABEL_SCORE_NAME,
    EXPANDED_METADATA_KEYS,
    LABEL_VALUES,
    MAX_OBSERVATION_PAGE,
    MAX_SCORE_PAGE,
    MIN_TIMED_OUT_PAGE,
    MIN_V3,
    OBSERVATION_FIELDS,
    SCORE_ID_NAMESPACE,
    TRACE_IDS_PER_SCORE_QUERY,
    V3_CURSOR,
    V3_FIRST_WINDOW,
    V3_MAX_WINDOW,
    V3_MIN_WINDOW,
    V3_PAGE,
    V3_ROOT_SLACK,
    V3_WRITERS,
)
from .records import FeedbackScore, LabelScore, ObservationPage, ParsedPage, WriteResult
from .retry import RetryPolicy, call_with_retry
from .settings import LangfuseSettings, label_score_name_from_env, settings_from_env

log = logging.getLogger(__name__)
T = TypeVar("T")


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
        except Exception as exc:  # translated, or re-raised as is
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
        from langfuse.api.commons.types.score_data_type import ScoreDataType
        from langfuse.api.scores.types.create_score_batch_results import (
            CreateScoreBatchResults,
        )
        from langfuse.api.scores.types.create_score_request import CreateScoreRequest
        from langfuse.api.scores.types.create_score_source import CreateScoreSource

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
                    data_type=ScoreDataType.CATEGORICAL,
                    config_id=config_id,
                    source=CreateScoreSource.ANNOTATION,
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
