"""The pod's ASGI app: the proxy endpoints plus config, health and metrics routes."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from routing.engine import SCHEMAS, ConfigError

from .config_store import ConfigStore, parse_document
from .errors import error_body
from .metrics import PodMetrics
from .proxy import ChatProxy
from .settings import Settings
from .tracing import LangfuseTracer, NullTracer, Tracer
from .upstream import make_session


class PodState:
    """Everything a request needs, built once per app."""

    def __init__(self, settings: Settings, tracer: Tracer | None = None):
        self.settings = settings
        self.metrics = PodMetrics()
        self.store = ConfigStore(settings.config_path, on_change=self.metrics.config_changed)
        self.tracer: Tracer = tracer or (
            LangfuseTracer(settings.langfuse) if settings.langfuse else NullTracer()
        )
        self.sessions: dict[str, aiohttp.ClientSession] = {}  # by backend name

    async def open(self) -> None:
        self.sessions = {
            b.name: make_session(self.settings) for b in (self.settings.weak, self.settings.strong)
        }

    async def close(self) -> None:
        for session in self.sessions.values():
            await session.close()
        # Flushing traces may wait on a dead Langfuse; bound it by one export timeout.
        budget = self.settings.langfuse.timeout if self.settings.langfuse else 1
        await anyio.to_thread.run_sync(self.tracer.close, min(5, budget))


def _error(status: int, message: str, code: str, **extra: Any) -> Response:
    return Response(
        error_body(status, message, code=code, extra=extra or None),
        status,
        media_type="application/json",
    )


class PodApp:
    """The proxy endpoints go straight to their ChatProxy, everything else through Starlette.

    A streamed answer calls ``send`` once per chunk; under Starlette each call would pass
    through its error and exception middlewares' wrappers, and each task wake-up through
    their frames (about a seventh of the pod's CPU with 1,000 streams). The proxy answers
    its own errors, so it needs neither.
    """

    def __init__(self, starlette: Starlette, proxies: dict[str, ChatProxy]) -> None:
        self.starlette = starlette
        self.proxies = proxies
        self.state = starlette.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            proxy = self.proxies.get(scope["path"])
            if proxy is not None:
                await proxy(scope, receive, send)
                return
        await self.starlette(scope, receive, send)


def create_app(settings: Settings) -> PodApp:
    pod = PodState(settings)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if pod.store.current is None:
            return JSONResponse({"status": "not ready", "reason": "no valid config loaded"}, 503)
        return JSONResponse({"status": "ready", "version": pod.store.current.version})

    async def get_config(request: Request) -> Response:
        # ``schemas``: the config schemas this pod reads; the console checks it before
        # publishing (a pod from before schema 2 sends none, and reads only schema 1).
        if pod.store.current is None:
            return _error(
                503, "No classifier config is loaded yet.", "not_ready", schemas=list(SCHEMAS)
            )
        return JSONResponse({**pod.store.current.summary(), "schemas": list(SCHEMAS)})

    async def put_config(request: Request) -> Response:
        if not settings.admin_token:
            return _error(
                403, "The admin API is disabled: no admin token is configured.", "admin_disabled"
            )
        given = request.headers.get("authorization", "")
        expected = f"Bearer {settings.admin_token}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return _error(401, "A valid admin bearer token is required.", "unauthorized")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > settings.max_body_bytes:
                return _error(413, "Config document is too large.", "request_too_large")
        try:
            loaded = pod.store.apply(parse_document(body), "admin")
        except ConfigError as exc:
            return _error(400, str(exc), "invalid_config", fields=exc.errors)
        return JSONResponse(loaded.summary())

    started = int(time.time())  # a model's "created": when this pod began serving it

    def model_entry() -> dict[str, str | int]:
        return {
            "id": settings.model_name,
            "object": "model",
            "created": started,
            "owned_by": "cascade",
        }

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [model_entry()]})

    async def model(request: Request) -> Response:
        name = request.path_params["name"]
        if name != settings.model_name:
            return _error(404, f"The model {name!r} does not exist.", "model_not_found")
        return JSONResponse(model_entry())

    async def metrics(request: Request) -> Response:
        body, ctype = pod.metrics.render()
        return Response(body, media_type=ctype)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pod.store.load_file(force=True)
        await pod.open()
        watcher = None
        if settings.reload_interval > 0:
            watcher = asyncio.create_task(pod.store.watch(settings.reload_interval))
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            await pod.close()

    proxies = {
        "/v1/chat/completions": ChatProxy(pod, "chat"),
        "/v1/completions": ChatProxy(pod, "completions"),
    }
    app = Starlette(
        routes=[
            # Reached only by other methods, which Starlette answers with 405.
            *(Route(path, proxy, methods=["POST"]) for path, proxy in proxies.items()),
            Route("/v1/models", models),
            Route("/v1/models/{name:path}", model),
            Route("/config", get_config),
            Route("/admin/config", put_config, methods=["PUT"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
        ],
        lifespan=lifespan,
    )
    app.state.pod = pod
    return PodApp(app, proxies)
