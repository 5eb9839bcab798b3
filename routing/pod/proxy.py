"""The routing proxy for ``/v1/chat/completions`` and ``/v1/completions`` (raw ASGI).

Per request: read and check the body, classify it with the config snapshot of the
moment, rewrite ``model`` to the chosen backend's served model, then relay the backend's
answer chunk by chunk. It is raw ASGI rather than a Starlette endpoint because it must
decide the status only after the backend's first byte (so strong can still fall back to
weak) and must notice a client that hangs up while it waits (so the backend stops).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import anyio
from starlette.types import Receive, Scope, Send

from routing.engine import STRONG, Decision

from .errors import RequestError, UpstreamUnavailable, error_body
from .metrics import NONE, status_class
from .payload import classify, dump_json, parse_json, reasons_header, routing_messages
from .settings import Backend, Settings
from .tracing import OUTPUT_CAPTURE_LIMIT, Finished, now_utc
from .upstream import STREAM_ERRORS, Opened, open_backend

if TYPE_CHECKING:
    from langfuse import LangfuseGeneration

    from .app import PodState  # app imports this module

log = logging.getLogger("routing.pod.proxy")

REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
FORWARDED = (b"accept", b"user-agent", b"traceparent", b"tracestate")


class ClientGone(Exception):
    """The client disconnected while we were still reading its request."""


@dataclass
class Exchange:
    """What one request did; filled in as it goes, read by metrics and tracing."""

    started: float = field(default_factory=time.perf_counter)
    request_id: str = ""
    decision: Decision | None = None
    version: str = NONE
    backend: str = NONE
    model: str | None = None
    status: int = 0
    first_byte: float | None = None
    first_byte_at: datetime | None = None
    fallback: str | None = None
    error: str | None = None
    disconnected: bool = False
    response_done: bool = False
    stream: bool = False
    captured: list[bytes] = field(default_factory=list)
    captured_size: int = 0


def first_byte_deadline(settings: Settings, *, last: bool) -> float:
    """How long one attempt may wait for the backend's first body byte.

    The first-byte timeout exists to trigger the fallback; on the last attempt there is
    nothing to fall back to, so a slow but working backend (a non-streaming answer's first
    byte comes when the whole answer is done) gets the read timeout instead of a 503.
    """
    return settings.read_timeout if last else settings.first_byte_timeout


class ChatProxy:
    """ASGI app for one endpoint (``chat`` or ``completions``); ``pod`` is the PodState."""

    def __init__(self, pod: PodState, endpoint: str):
        self.pod = pod
        self.endpoint = endpoint
        self.path = "/chat/completions" if endpoint == "chat" else "/completions"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        pod = self.pod
        ex = Exchange()
        # Later duplicates win; fine for the ones we read.
        headers: dict[bytes, bytes] = dict(scope["headers"])
        ex.request_id = self._request_id(headers)
        loaded = pod.store.current
        if loaded is not None:
            ex.version = loaded.version
        trace: LangfuseGeneration | None = None
        payload: dict[str, Any] | None = None
        try:
            try:
                body = await self._read_body(headers, receive)
                payload = parse_json(body)
                if not isinstance(payload, dict):
                    raise RequestError(400, "Request body must be a JSON object.")
                messages = routing_messages(payload, self.endpoint)
                if loaded is None:
                    raise RequestError(503, "No classifier config is loaded yet.", code="not_ready")
                ex.decision = classify(loaded, messages, explain=pod.tracer.enabled)
            except RequestError as exc:
                await self._send_error(
                    send, ex, exc.status, exc.message, code=exc.code, param=exc.param
                )
                return
            except ClientGone:
                ex.disconnected = True
                return
            ex.stream = payload.get("stream") is True
            user = payload.get("user") if isinstance(payload.get("user"), str) else None
            trace = pod.tracer.start(
                request_id=ex.request_id,
                decision=ex.decision,
                version=ex.version,
                endpoint=self.endpoint,
                user=user,
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch_disconnect, receive, tg.cancel_scope, ex)
                await self._forward(ex, payload, headers, send)
                tg.cancel_scope.cancel()
        finally:
            self._record(ex, trace, payload)

    # -- request side ---------------------------------------------------------------
    def _request_id(self, headers: dict[bytes, bytes]) -> str:
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        return given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex

    async def _read_body(self, headers: dict[bytes, bytes], receive: Receive) -> bytes:
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if ctype != b"application/json" and not ctype.endswith(b"+json"):
            shown = ctype.decode("latin-1") or "none"
            raise RequestError(400, f"Content-Type must be application/json, got {shown}.")
        limit = self.pod.settings.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RequestError(
                413, f"Request body is larger than {limit} bytes.", code="request_too_large"
            )
        parts, size = [], 0
        deadline = self.pod.settings.body_timeout
        try:
            with anyio.fail_after(deadline):  # a body trickled in holds a connection
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise ClientGone
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        raise RequestError(
                            413,
                            f"Request body is larger than {limit} bytes.",
                            code="request_too_large",
                        )
                    parts.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(parts)
        except TimeoutError:
            raise RequestError(
                408,
                f"The request body did not arrive within {deadline:g} s.",
                code="request_timeout",
            ) from None

    async def _watch_disconnect(
        self, receive: Receive, scope: anyio.CancelScope, ex: Exchange
    ) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not ex.response_done:
                    ex.disconnected = True
                    scope.cancel()  # cancels the backend request too
                return

    def _upstream_headers(
        self, backend: Backend, headers: dict[bytes, bytes], ex: Exchange
    ) -> list[tuple[str, str]]:
        out = [
            ("content-type", "application/json"),
            ("accept-encoding", "identity"),
            ("x-request-id", ex.request_id),
        ]
        for name in FORWARDED:
            if name in headers:
                out.append((name.decode(), headers[name].decode("latin-1")))
        if "accept" not in (k for k, _ in out):
            out.append(("accept", "text/event-stream" if ex.stream else "application/json"))
        if backend.api_key:
            out.append(("authorization", f"Bearer {backend.api_key}"))
        elif self.pod.settings.forward_client_auth and b"authorization" in headers:
            out.append(("authorization", headers[b"authorization"].decode("latin-1")))
        return out

    # -- backend side -----------------------------------------------------------------
    async def _forward(
        self, ex: Exchange, payload: dict[str, Any], headers: dict[bytes, bytes], send: Send
    ) -> None:
        pod = self.pod
        settings = pod.settings
        assert ex.decision is not None  # classified before forwarding
        plan = [settings.strong, settings.weak] if ex.decision.tier == STRONG else [settings.weak]
        failures: list[UpstreamUnavailable] = []
        for attempt, backend in enumerate(plan):
            if failures:
                ex.fallback = failures[0].reason
                pod.metrics.fallbacks.labels(ex.fallback, ex.version).inc()
            payload["model"] = backend.model
            try:
                opened = await open_backend(
                    pod.sessions[backend.name],
                    backend,
                    self.path,
                    dump_json(payload),
                    self._upstream_headers(backend, headers, ex),
                    first_byte_deadline(settings, last=attempt == len(plan) - 1),
                )
            except UpstreamUnavailable as exc:
                log.warning("request %s: %s", ex.request_id, exc)
                pod.metrics.upstream_failures.labels(backend.name, exc.reason).inc()
                failures.append(exc)
                continue
            await self._relay(ex, opened, send)
            return
        detail = "; ".join(str(f) for f in failures)
        last = failures[-1]
        extra = [(b"retry-after", last.retry_after.encode("latin-1"))] if last.retry_after else []
        if last.reason == "status_429":
            # The last backend tried is rate limited: the client should slow down and retry,
            # which a 503 would not say; and it is no server error for the canary's gates.
            pod.metrics.rate_limited.labels(last.backend, ex.version).inc()
            await self._send_error(
                send, ex, 429, f"Rate limited: {detail}.", code="rate_limited", extra_headers=extra
            )
            return
        await self._send_error(
            send,
            ex,
            503,
            f"No backend could answer: {detail}.",
            code="backends_unavailable",
            extra_headers=extra,
        )

    def _cascade_headers(self, ex: Exchange) -> list[tuple[bytes, bytes]]:
        out = [
            (b"x-request-id", ex.request_id.encode()),
            (b"x-cascade-version", quote(ex.version, safe="").encode()),
        ]
        if ex.decision is not None:
            out.append((b"x-cascade-tier", ex.decision.tier.encode()))
            out.append((b"x-cascade-reasons", reasons_header(ex.decision.reasons)))
            if ex.decision.score is not None:
                out.append((b"x-cascade-score", f"{ex.decision.score:.6g}".encode()))
        if ex.backend != NONE:
            out.append((b"x-cascade-backend", ex.backend.encode()))
        if ex.fallback:
            out.append((b"x-cascade-fallback", ex.fallback.encode()))
        return out

    async def _relay(self, ex: Exchange, opened: Opened, send: Send) -> None:
        ex.backend, ex.model, ex.status = opened.backend.name, opened.backend.model, opened.status
        ctype = opened.response.headers.get("content-type", "application/json")
        sse = ctype.startswith("text/event-stream")
        headers = [(b"content-type", ctype.encode("latin-1"))]
        if sse:
            headers.append((b"cache-control", b"no-cache"))
        headers += self._cascade_headers(ex)
        capture = self.pod.tracer.enabled
        complete = False
        try:
            await send({"type": "http.response.start", "status": opened.status, "headers": headers})
            chunk = opened.first
            try:
                while chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    if ex.first_byte is None:
                        ex.first_byte, ex.first_byte_at = time.perf_counter(), now_utc()
                    if capture:
                        self._capture(ex, chunk)
                    chunk = await opened.read()
            except STREAM_ERRORS as exc:
                # Past the first byte: no fallback. Tell the client its answer is cut.
                ex.error = f"{opened.backend.name} failed mid-answer: {exc!r}"
                log.warning("request %s: %s", ex.request_id, ex.error)
                self.pod.metrics.stream_errors.labels(ex.backend, ex.version).inc()
                if not sse:
                    return  # leaving the response unfinished makes the server cut the connection
                event = error_body(
                    502,
                    "The backend failed in the middle of the answer.",
                    code="upstream_stream_error",
                )
                ex.response_done = True
                await send(
                    {
                        "type": "http.response.body",
                        "body": b"\n\ndata: " + event + b"\n\n",
                        "more_body": False,
                    }
                )
                return
            complete = True
            ex.response_done = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            opened.close(reuse=complete)

    def _capture(self, ex: Exchange, chunk: bytes) -> None:
        if ex.captured_size < OUTPUT_CAPTURE_LIMIT:
            ex.captured.append(chunk)
            ex.captured_size += len(chunk)

    # -- answers and bookkeeping -------------------------------------------------------
    async def _send_error(
        self,
        send: Send,
        ex: Exchange,
        status: int,
        message: str,
        *,
        code: str,
        param: str | None = None,
        extra_headers: Iterable[tuple[bytes, bytes]] = (),
    ) -> None:
        ex.status = status
        ex.error = message
        body = error_body(status, message, code=code, param=param)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        headers += self._cascade_headers(ex)
        headers += list(extra_headers)
        ex.response_done = True
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    def _record(
        self, ex: Exchange, trace: LangfuseGeneration | None, payload: dict[str, Any] | None
    ) -> None:
        metrics = self.pod.metrics
        tier = ex.decision.tier if ex.decision is not None else NONE
        if ex.disconnected:
            metrics.client_disconnects.labels(tier, ex.version).inc()
            ex.error = ex.error or "client disconnected"
        status = status_class(ex.status) if ex.status else "none"
        metrics.requests.labels(tier, ex.backend, status, ex.version).inc()
        if ex.decision is not None and ex.decision.score is not None:
            metrics.score.labels(ex.version).observe(ex.decision.score)
        if ex.backend != NONE:
            metrics.duration.labels(tier, ex.backend, ex.version).observe(
                time.perf_counter() - ex.started
            )
            if ex.first_byte is not None:
                metrics.ttft.labels(tier, ex.backend, ex.version).observe(
                    ex.first_byte - ex.started
                )
        if trace is not None:
            self.pod.tracer.finish(
                trace,
                Finished(
                    input=(payload or {}).get("messages", (payload or {}).get("prompt")),
                    output_bytes=b"".join(ex.captured),
                    stream=ex.stream,
                    backend=ex.backend,
                    model=ex.model,
                    status=ex.status,
                    first_byte_at=ex.first_byte_at,
                    end_ns=time.time_ns(),
                    error=ex.error,
                    fallback=ex.fallback,
                    request_id=ex.request_id,
                ),
            )
