"""Langfuse traces of routed requests, kept off the request path.

On the request path the pod only opens the trace's root observation (an OTel span:
microseconds, no I/O) with its tags and trace metadata. Input, output and the end of
the span are handed to one background thread through a bounded queue, and the SDK's
batch processor exports from its own thread. A slow, failing or absent Langfuse can
therefore only lose traces, never delay or fail a request.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from routing.engine import Decision

from .settings import LangfuseSettings

if TYPE_CHECKING:  # the SDK itself is imported only when tracing is on
    from langfuse import LangfuseGeneration

log = logging.getLogger("routing.pod.tracing")

TRACE_NAME = "cascade-route"
METADATA_LIMIT = 200  # Langfuse drops a metadata value longer than this once JSON-encoded
OUTPUT_CAPTURE_LIMIT = 256 * 1024  # bytes of a response kept to show as the trace output


def trace_tags(decision: Decision, version: str) -> list[str]:
    return [
        f"tier:{decision.tier}",
        f"keyword_match:{'true' if decision.matched_keywords else 'false'}",
        f"turn_count:{decision.turn_count}",
        f"classifier_version:{version}",
    ]


def fit_keywords(keywords: tuple[str, ...], limit: int = METADATA_LIMIT) -> list[str]:
    """As many keywords as fit in ``limit`` characters of JSON, so none is dropped whole."""
    kept: list[str] = []
    for keyword in keywords:
        if len(json.dumps([*kept, keyword], ensure_ascii=False, separators=(",", ":"))) > limit:
            break
        kept.append(keyword)
    return kept


def trace_metadata(decision: Decision, version: str) -> dict[str, Any]:
    metadata = {
        "content_length": decision.char_count,
        "strong_keywords_found": fit_keywords(decision.matched_keywords),
        "classifier_version": version,
    }
    if decision.score is not None:
        metadata["classifier_score"] = round(decision.score, 6)
        metadata["score_top_features"] = fit_keywords(
            tuple(f"{feature}:{weight:+.3g}" for feature, weight in decision.top_features)
        )
    return metadata


def response_text(captured: bytes, stream: bool) -> str | None:
    """The answer's text from a captured response body (SSE or JSON), best effort."""
    pieces: list[str] = []
    try:
        if stream:
            for line in captured.decode("utf-8", "replace").splitlines():
                if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                    continue
                event = json.loads(line[5:])
                for choice in event.get("choices") or []:
                    delta = choice.get("delta") or {}
                    pieces.append(delta.get("content") or choice.get("text") or "")
        else:
            document = json.loads(captured)
            for choice in document.get("choices") or []:
                message = choice.get("message") or {}
                pieces.append(message.get("content") or choice.get("text") or "")
    except (ValueError, AttributeError, TypeError):
        return captured[:2000].decode("utf-8", "replace") or None
    return "".join(pieces)


@dataclass
class Finished:
    """What became of a request, for the background thread to attach to its trace."""

    input: Any
    output_bytes: bytes
    stream: bool
    backend: str | None
    model: str | None
    status: int
    first_byte_at: datetime | None
    end_ns: int
    error: str | None
    fallback: str | None
    request_id: str


class NullTracer:
    """Tracing switched off (no Langfuse keys)."""

    enabled = False

    def start(self, **kwargs: object) -> None:
        return None

    def finish(self, handle: object, finished: Finished) -> None:
        pass

    def close(self, timeout: float = 5.0) -> None:
        pass


class LangfuseTracer:
    """Traces through the real langfuse SDK (OTel export in the background)."""

    enabled = True

    def __init__(self, settings: LangfuseSettings, queue_size: int = 10_000):
        # Imported here: a pod without Langfuse keys does not pay for the SDK's import.
        from langfuse import Langfuse, propagate_attributes

        self._propagate = propagate_attributes
        self._create_trace_id = Langfuse.create_trace_id
        self.client = Langfuse(
            public_key=settings.public_key,
            secret_key=settings.secret_key,
            base_url=settings.base_url,
            timeout=settings.timeout,
        )
        self._queue: queue.Queue[tuple[LangfuseGeneration, Finished] | None] = queue.Queue(
            queue_size
        )
        self._thread = threading.Thread(target=self._run, name="pod-tracing", daemon=True)
        self._thread.start()

    def trace_id(self, request_id: str) -> str:
        return self._create_trace_id(seed=request_id)

    def start(
        self,
        *,
        request_id: str,
        decision: Decision,
        version: str,
        endpoint: str,
        user: str | None = None,
    ) -> LangfuseGeneration | None:
        """Open the trace's root observation; returns a handle for ``finish`` (or None)."""
        try:
            with (
                self.client.start_as_current_observation(
                    trace_context={"trace_id": self.trace_id(request_id)},
                    name=endpoint,
                    as_type="generation",
                    end_on_exit=False,
                ) as observation,
                self._propagate(
                    tags=trace_tags(decision, version),
                    metadata=trace_metadata(decision, version),
                    trace_name=TRACE_NAME,
                    user_id=user,
                ),
            ):
                pass
            return observation
        except Exception:  # tracing must never fail a request
            log.exception("could not start a trace")
            return None

    def finish(self, handle: LangfuseGeneration | None, finished: Finished) -> None:
        if handle is None:
            return
        try:
            self._queue.put_nowait((handle, finished))
        except queue.Full:
            # Behind on tracing: keep the trace, lose its input and output.
            self._end(handle, finished, with_io=False)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._end(*item, with_io=True)

    def _end(self, observation: LangfuseGeneration, finished: Finished, *, with_io: bool) -> None:
        try:
            update: dict[str, Any] = {
                "model": finished.model,
                "metadata": {
                    "backend": finished.backend,
                    "status": finished.status,
                    "fallback": finished.fallback,
                    "request_id": finished.request_id,
                },
            }
            if with_io:
                update["input"] = finished.input
                update["output"] = response_text(finished.output_bytes, finished.stream)
            if finished.first_byte_at is not None:
                update["completion_start_time"] = finished.first_byte_at
            if finished.error:
                update["level"] = "ERROR"
                update["status_message"] = finished.error
            observation.update(**update)
            observation.end(end_time=finished.end_ns)
        except Exception:
            log.exception("could not finish a trace")

    def close(self, timeout: float = 5.0) -> None:
        """Drain the queue and flush, waiting at most ``timeout`` seconds in all."""
        deadline = time.monotonic() + timeout
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        flusher = threading.Thread(target=self.client.shutdown, daemon=True)
        flusher.start()
        flusher.join(max(0.0, deadline - time.monotonic()))
        if flusher.is_alive():
            log.warning("Langfuse flush still running after %.1fs; unsent traces are lost", timeout)


# What the pod traces with: a trace ``start`` opened goes back to the same tracer's ``finish``.
Tracer = LangfuseTracer | NullTracer


def now_utc() -> datetime:
    return datetime.now(UTC)
