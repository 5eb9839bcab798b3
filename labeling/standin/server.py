"""HTTP face of the Langfuse stand-in: the public API paths the v5 SDK calls.

Served paths (all but health need HTTP basic auth with the public/secret key pair):
  GET  /api/public/health            (the version says the generation: 4.x or 3.180+)
  GET  /api/public/v2/observations   (v4; 404 on v3, as there without the preview opt-in)
  GET  /api/public/traces, /api/public/observations   (v3: page/limit <= 100; 404 on v4)
  GET  /api/public/v3/scores
  POST /api/public/scores            DELETE /api/public/scores/{scoreId}
  GET  /api/public/score-configs      POST /api/public/score-configs
  POST /api/public/otel/v1/traces    (OTLP/HTTP protobuf or JSON, gzip: what the SDK exports)
  POST /api/public/ingestion         (trace-create, generation-create, score-create batches)
  POST /_standin/faults   (queue a fault: {"status": 429, "count": 2, "retry_after": "1"})

Errors answer JSON ``{"message": ...}`` with the status the real API uses (400, 401, 404,
405). Faults queued in the Store are served first, before auth, like a proxy in front.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .store import BadRequest, Fault, Store

DEFAULT_PUBLIC_KEY = "pk-lf-standin"
DEFAULT_SECRET_KEY = "sk-lf-standin"  # noqa: S105 - a local test server's fixed key
STANDIN_VERSIONS = {"v4": "4.60.0-standin", "v3": "3.180.0-standin"}
V1_READS = ("/api/public/traces", "/api/public/observations")
V1_READS_ON_V4 = (
    "This endpoint is not available on deployments running in Langfuse v4 events_only mode."
)
V2_OBSERVATIONS_ON_V3 = (
    "The observations v2 API is only available in a Langfuse v4 write mode. Learn more at: "
    "https://langfuse.com/docs/v4"
)
MAX_BODY = 10 * 1024 * 1024


class StandinServer(ThreadingHTTPServer):
    """Tracks open connections so ``stop`` can close idle keep-alive ones and join threads."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, address, store: Store, public_key: str, secret_key: str):
        super().__init__(address, StandinHandler)
        self.store = store
        self.public_key = public_key
        self.secret_key = secret_key
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, conn: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                conn.shutdown(socket.SHUT_RDWR)


class StandinHandler(BaseHTTPRequestHandler):
    server: StandinServer
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects
    disable_nagle_algorithm = True  # or each keep-alive answer waits ~40 ms on delayed ACKs
    server_version = "LangfuseStandin/1"

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # base signature
        pass  # tests and the demo read the store's request log instead

    def do_GET(self) -> None:  # http.server naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # http.server naming
        self._dispatch("POST")

    def do_PATCH(self) -> None:  # http.server naming
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:  # http.server naming
        self._dispatch("DELETE")

    # -- plumbing

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise BadRequest("request body too large")
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequest("body is not valid JSON") from exc

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization") or ""
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user, self.server.public_key) and hmac.compare_digest(
            password, self.server.secret_key
        )

    def _serve_fault(self, fault: Fault) -> bool:
        """Apply a fault; True when the request is answered (or dropped) by it."""
        if fault.delay and self.server.stopping.wait(fault.delay):
            fault = Fault(status=None, drop=True)  # shutting down: do not hold the thread
        if fault.drop:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return True
        if fault.status is None:
            return False  # a pure delay: answer normally afterwards
        # Read the request's body first: left unread it would be parsed as the next
        # request on this keep-alive connection.
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length <= MAX_BODY:
            self.rfile.read(length)
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        body = fault.body if fault.body is not None else {"message": f"injected {fault.status}"}
        self._send(fault.status, body, headers)
        return True

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        query = parse_qs(url.query, keep_blank_values=True)
        store = self.server.store
        store.log_request(method, path, query)
        fault = store.take_fault(method, path)
        if fault is not None and self._serve_fault(fault):
            return
        if path == "/api/public/health" and method == "GET":
            self._send(200, {"status": "OK", "version": STANDIN_VERSIONS[store.api_generation]})
            return
        if not self._authorized():
            self._send(
                401,
                {
                    "message": "Invalid credentials. Confirm that you've configured "
                    "the correct host and keys."
                },
            )
            return
        if store.api_generation == "v3" and path == "/api/public/v2/observations":
            self._send(404, {"message": V2_OBSERVATIONS_ON_V3, "error": "LangfuseNotFoundError"})
            return
        if store.api_generation == "v4" and path in V1_READS:
            self._send(404, {"message": V1_READS_ON_V4, "error": "LangfuseNotFoundError"})
            return
        route = ROUTES.get(path)
        if route is None and path.startswith(SCORE_PATH_PREFIX):
            route = ROUTES[SCORE_PATH_PREFIX]
        if route is None:
            self._send(404, {"message": f"No route for {path}"})
            return
        handler = route.get(method)
        if handler is None:
            self._send(405, {"message": f"Method {method} not allowed on {path}"})
            return
        try:
            status, body = handler(self, store, query)
        except BadRequest as exc:
            self._send(400, {"message": str(exc)})
            return
        self._send(status, body)


SCORE_PATH_PREFIX = "/api/public/scores/"  # a score's own path: the id follows


def _score_id_of(raw_path: str) -> str:
    return unquote(urlsplit(raw_path).path.rstrip("/")[len(SCORE_PATH_PREFIX) :])


def _otel_traces(handler: StandinHandler, store: Store, query) -> tuple[int, Any]:
    """OTLP/HTTP spans (protobuf or JSON, gzip or not), as the langfuse SDK exports them."""
    from .ingest import IngestError, observations_from_spans, otlp_spans

    length = int(handler.headers.get("Content-Length") or 0)
    if length > MAX_BODY:
        raise BadRequest("request body too large")
    body = handler.rfile.read(length) if length else b""
    try:
        spans = otlp_spans(
            body,
            handler.headers.get("Content-Type") or "",
            handler.headers.get("Content-Encoding") or "",
        )
    except IngestError as exc:
        return 400, {"error": str(exc)}
    store.upsert_observations(observations_from_spans(spans))
    return 200, {}


def _ingestion(handler: StandinHandler, store: Store, query) -> tuple[int, Any]:
    from .ingest import batch_events

    return store.ingest_batch(batch_events(handler._read_json()))


def _faults(handler: StandinHandler, store: Store, query) -> tuple[int, Any]:
    body = handler._read_json()
    if not isinstance(body, dict):
        raise BadRequest("fault must be a JSON object")
    allowed = {"status", "count", "retry_after", "path", "method", "delay", "drop"}
    unknown = set(body) - allowed
    if unknown:
        raise BadRequest(f"unknown fault fields: {', '.join(sorted(unknown))}")
    store.inject_fault(**body)
    return 200, {"queued": True}


ROUTES: dict[str, dict[str, Callable[[StandinHandler, Store, Any], tuple[int, Any]]]] = {
    "/api/public/v2/observations": {"GET": lambda h, s, q: s.list_observations(q)},
    "/api/public/v3/scores": {"GET": lambda h, s, q: s.list_scores(q)},
    "/api/public/traces": {"GET": lambda h, s, q: s.list_traces_v1(q)},
    "/api/public/observations": {"GET": lambda h, s, q: s.list_observations_v1(q)},
    "/api/public/scores": {"POST": lambda h, s, q: s.create_scores(h._read_json())},
    SCORE_PATH_PREFIX: {"DELETE": lambda h, s, q: s.delete_score(_score_id_of(h.path))},
    "/api/public/score-configs": {
        "GET": lambda h, s, q: s.list_score_configs(q),
        "POST": lambda h, s, q: s.create_score_config(h._read_json()),
    },
    "/api/public/otel/v1/traces": {"POST": _otel_traces},
    "/api/public/ingestion": {"POST": _ingestion},
    "/_standin/faults": {"POST": _faults},
    # Not a Langfuse path: the generator's ground truth, for the demo's simulated reviewer.
    "/_standin/truth": {"GET": lambda h, s, q: (200, {"truth": s.truth})},
}


def start_in_thread(
    store: Store | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    public_key: str = DEFAULT_PUBLIC_KEY,
    secret_key: str = DEFAULT_SECRET_KEY,
) -> tuple[str, Callable[[], None]]:
    """Serve ``store`` (a new empty one if None) on ``host:port`` (0: any free port).

    Returns ``(base_url, stop)``. ``stop()`` ends the server, closes open connections and
    joins every thread it started; calling it twice is harmless.
    """
    server = StandinServer((host, port), store or Store(), public_key, secret_key)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="langfuse-standin"
    )
    thread.start()
    stopped = threading.Event()

    def stop() -> None:
        if stopped.is_set():
            return
        stopped.set()
        server.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()  # joins the request threads (block_on_close)
        thread.join()

    bound_host, bound_port = server.server_address[:2]
    assert isinstance(bound_host, str)  # an AF_INET(6) socket's own address; bytes only in stubs
    return f"http://{bound_host}:{bound_port}", stop
