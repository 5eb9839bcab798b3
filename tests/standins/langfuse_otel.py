"""A minimal Langfuse stand-in: the OTel trace ingest endpoint, nothing else.

The Langfuse SDK 5 exports spans as OTLP/HTTP protobuf (optionally gzipped) to
``POST {base}/api/public/otel/v1/traces``. This server decodes them with
``opentelemetry-proto`` (a langfuse dependency) and keeps them for tests to read::

    with LangfuseOtel() as lf:
        ... point the SDK at lf.base_url with any keys ...
        spans = lf.wait_for_spans(lambda s: s.trace_id == wanted)
        spans[0].attributes["langfuse.trace.tags"]   # -> ["tier:strong", ...]

``lf.stall(seconds)`` makes it hold every request before answering and
``lf.fail(status)`` makes it answer an error, to show that a slow or broken
Langfuse does not reach the request path of the service under test.
"""

from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from labeling.standin.ingest import otlp_spans

PATH = "/api/public/otel/v1/traces"


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str  # 32 lowercase hex digits, as Langfuse shows it
    span_id: str
    parent_span_id: str
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    headers: dict[str, str]  # of the export request that carried the span


def decode_spans(payload: bytes, headers: dict[str, str]) -> list[ReceivedSpan]:
    """Every span in one OTLP protobuf export body (decoded as the Langfuse stand-in does)."""
    return [
        ReceivedSpan(**span, headers=headers)
        for span in otlp_spans(payload, "application/x-protobuf")
    ]


class LangfuseOtel:
    """The stand-in server, on 127.0.0.1 in a daemon thread."""

    def __init__(self, port: int = 0):
        self._port = port
        self._lock = threading.Lock()
        self._spans: list[ReceivedSpan] = []
        self.export_requests = 0
        self._stall = 0.0
        self._status = 200
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def stall(self, seconds: float) -> None:
        """Hold each export request ``seconds`` before answering (0 to stop)."""
        self._stall = seconds

    def fail(self, status: int) -> None:
        """Answer every export with ``status`` (200 to stop failing); nothing is kept."""
        self._status = status

    def wait_for_spans(
        self, predicate=lambda span: True, *, count: int = 1, timeout: float = 10.0
    ) -> list[ReceivedSpan]:
        """The matching spans once there are ``count`` of them; raise on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            found = [span for span in self.spans if predicate(span)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(found)} matching spans after {timeout}s: {self.spans}")
            time.sleep(0.02)

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                payload = self.rfile.read(length)
                standin.export_requests += 1
                if standin._stall:
                    standin._release.wait(standin._stall)
                if self.path.split("?")[0] != PATH:
                    return self._answer(404, b"not found", "text/plain")
                if standin._status != 200:
                    return self._answer(standin._status, b"{}", "application/json")
                if self.headers.get("content-encoding") == "gzip":
                    payload = gzip.decompress(payload)
                headers = {k.lower(): v for k, v in self.headers.items()}
                spans = decode_spans(payload, headers)
                with standin._lock:
                    standin._spans.extend(spans)
                body = ExportTraceServiceResponse().SerializeToString()
                self._answer(200, body, "application/x-protobuf")

            def _answer(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def start(self) -> LangfuseOtel:
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()  # free stalled handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LangfuseOtel:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
