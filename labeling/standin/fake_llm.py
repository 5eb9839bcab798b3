"""A small fake OpenAI-compatible backend (vLLM stand-in) with fault injection.

It is a real HTTP/1.1 server on 127.0.0.1 written on raw asyncio streams, so it can
do what a framework would not let it: drop the connection before the status line or in
the middle of a stream, and notice at once when its client goes away.

Serves ``POST {prefix}/chat/completions`` and ``POST {prefix}/completions`` (JSON, or
SSE when the body says ``"stream": true``) and ``GET {prefix}/models``.

Use from tests::

    with FakeLLM("weak") as weak:
        weak.behave(status=500)                      # every request from now on
        weak.behave(Behavior(first_byte_delay=0.5), times=1)   # only the next one
        ... weak.base_url ...                        # "http://127.0.0.1:PORT/v1"
        weak.requests[-1].body                       # what arrived

Or alone: ``python -m labeling.standin.fake_llm --port 9001 --name weak`` (``bin/console
--with-pods`` runs two, a weak and a strong one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class Behavior:
    """How the fake answers one request.

    ``drop`` is where the connection is cut: ``"before_headers"`` (request read, nothing
    sent), ``"after_headers"`` (status and headers sent, no body byte) or
    ``"mid_stream"`` (after ``drop_after_chunks`` body chunks).
    """

    status: int = 200
    headers_delay: float = 0.0  # before the status line
    first_byte_delay: float = 0.0  # after the headers, before the first body byte
    chunk_delay: float = 0.0  # between stream chunks
    chunks: int = 3  # content pieces in a stream (and words in a JSON answer)
    drop: str | None = None
    drop_after_chunks: int = 1
    retry_after: str | None = None


@dataclass
class Received:
    """One request as the fake saw it, and what became of it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    client_gone: bool = False  # the peer closed the connection before we were done
    chunks_sent: int = 0


class _ClientGone(Exception):
    pass


def _holds(predicate) -> bool:
    try:
        return bool(predicate())
    except IndexError:
        return False


class FakeLLM:
    """The fake backend, run on its own event loop in a daemon thread."""

    def __init__(self, name: str = "fake", *, port: int = 0, prefix: str = "/v1"):
        self.name = name
        self.prefix = prefix
        self._port = port
        self._default = Behavior()
        self._scripted: deque[Behavior] = deque()
        self._lock = threading.Lock()
        self.requests: list[Received] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # -- control (any thread) -------------------------------------------------
    def behave(self, behavior: Behavior | None = None, *, times: int | None = None, **kw) -> None:
        """Set the behaviour of the next ``times`` requests, or of all if ``times`` is None."""
        behavior = replace(behavior or Behavior(), **kw)
        with self._lock:
            if times is None:
                self._default = behavior
                self._scripted.clear()
            else:
                self._scripted.extend([behavior] * times)

    def reset(self) -> None:
        with self._lock:
            self._default = Behavior()
            self._scripted.clear()
            self.requests.clear()

    def _next_behavior(self) -> Behavior:
        with self._lock:
            return self._scripted.popleft() if self._scripted else self._default

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.sockets[0].getsockname()[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    def wait_for(self, predicate, timeout: float = 5.0) -> bool:
        """Poll ``predicate()`` until true or ``timeout``; for facts that arrive late.

        A predicate that indexes ``requests`` before any arrived counts as false.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _holds(predicate):
                return True
            time.sleep(0.01)
        return _holds(predicate)

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> FakeLLM:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", self._port, backlog=4096)
            )
            ready.set()
            loop.run_forever()
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            loop.run_until_complete(self._server.wait_closed())
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

        self._thread = threading.Thread(target=run, name=f"fake-llm-{self.name}", daemon=True)
        self._thread.start()
        if not ready.wait(5):
            raise RuntimeError("fake LLM did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop = None

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- HTTP ----------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            import socket

            # Without this each keep-alive answer waits on delayed ACKs (~40 ms).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Bytes the close-watcher read past a response (a pipelined next request).
        carry = bytearray()
        try:
            while True:
                request = await self._read_request(reader, carry)
                if request is None:
                    return
                keep_open = await self._respond(request, reader, writer, carry)
                if not keep_open:
                    return
        except (ConnectionError, _ClientGone, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _read_request(
        self, reader: asyncio.StreamReader, carry: bytearray
    ) -> Received | None:
        try:
            while b"\r\n\r\n" not in carry:
                chunk = await reader.read(65536)
                if not chunk:
                    return None
                carry += chunk
        except ConnectionError:
            return None
        end = carry.index(b"\r\n\r\n") + 4
        head = bytes(carry[:end])
        del carry[:end]
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                key, value = line.split(":", 1)
                headers[key.strip().lower()] = value.strip()
        length = int(headers.get("content-length", 0))
        while len(carry) < length:
            chunk = await reader.read(65536)
            if not chunk:
                raise asyncio.IncompleteReadError(bytes(carry), length)
            carry += chunk
        raw = bytes(carry[:length])
        del carry[:length]
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        return Received(method, path, headers, body)

    async def _respond(self, req: Received, reader, writer, carry: bytearray) -> bool:
        self.requests.append(req)
        behavior = self._next_behavior()
        route = req.path.split("?", 1)[0]
        if req.method == "GET" and route == f"{self.prefix}/models":
            await self._send_json(
                writer,
                200,
                {
                    "object": "list",
                    "data": [{"id": self._model(req), "object": "model", "owned_by": self.name}],
                },
            )
            return True
        kind = {f"{self.prefix}/chat/completions": "chat", f"{self.prefix}/completions": "text"}
        if req.method != "POST" or route not in kind:
            await self._send_json(writer, 404, {"error": {"message": "no such route"}})
            return True

        watcher = asyncio.ensure_future(self._watch_close(reader, carry))
        try:
            await self._serve_completion(req, kind[route], behavior, writer, watcher)
        except _ClientGone:
            req.client_gone = True
            raise
        finally:
            req.finished = time.monotonic()
            watcher.cancel()
            # The reader allows one waiter: the watcher must be gone before the next read.
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        return behavior.drop is None and not req.client_gone

    async def _watch_close(self, reader: asyncio.StreamReader, carry: bytearray) -> None:
        # EOF while we answer means the client hung up; anything it sends meanwhile is
        # its next request on this connection, kept for the next read.
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                carry += chunk

    async def _pause(self, seconds: float, watcher: asyncio.Future) -> None:
        if seconds > 0:
            done, _ = await asyncio.wait({watcher}, timeout=seconds)
            if done:
                raise _ClientGone
        elif watcher.done():
            raise _ClientGone

    async def _serve_completion(self, req, kind, behavior, writer, watcher) -> None:
        await self._pause(behavior.headers_delay, watcher)
        if behavior.drop == "before_headers":
            writer.transport.abort()
            return
        if behavior.status != 200:
            extra = {"retry-after": behavior.retry_after} if behavior.retry_after else {}
            body = {
                "error": {
                    "message": f"{self.name} fails with {behavior.status}",
                    "type": "fake_error",
                    "code": behavior.status,
                }
            }
            await self._send_json(writer, behavior.status, body, extra)
            return
        stream = isinstance(req.body, dict) and req.body.get("stream") is True
        ctype = "text/event-stream" if stream else "application/json"
        writer.write(
            (
                f"HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ntransfer-encoding: chunked\r\n"
                f"x-fake-backend: {self.name}\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        if behavior.drop == "after_headers":
            await self._pause(behavior.first_byte_delay, watcher)
            writer.transport.abort()
            return
        await self._pause(behavior.first_byte_delay, watcher)
        pieces = [f"{self.name}-{i} " for i in range(behavior.chunks)]
        if not stream:
            answer = json.dumps(self._answer(req, kind, "".join(pieces))).encode()
            if behavior.drop == "mid_stream":  # half an answer, then the line goes dead
                await self._chunk(writer, answer[: len(answer) // 2])
                req.chunks_sent = 1
                await asyncio.sleep(0.05)  # let the half reach the client first
                writer.transport.abort()
                return
            await self._chunk(writer, answer)
            req.chunks_sent = 1
            await self._chunk(writer, b"")
            return
        for index, piece in enumerate(pieces):
            if index:
                await self._pause(behavior.chunk_delay, watcher)
            if behavior.drop == "mid_stream" and index == behavior.drop_after_chunks:
                writer.transport.abort()
                return
            event = self._stream_event(req, kind, piece)
            await self._chunk(writer, b"data: " + json.dumps(event).encode() + b"\n\n")
            req.chunks_sent += 1
            if watcher.done():
                raise _ClientGone
        await self._chunk(writer, b"data: [DONE]\n\n")
        await self._chunk(writer, b"")

    async def _chunk(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await writer.drain()

    async def _send_json(self, writer, status: int, body: Any, extra: dict | None = None) -> None:
        data = json.dumps(body).encode()
        head = [
            f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}",
            "content-type: application/json",
            f"content-length: {len(data)}",
            f"x-fake-backend: {self.name}",
        ]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await writer.drain()

    def _model(self, req: Received) -> str:
        if isinstance(req.body, dict) and isinstance(req.body.get("model"), str):
            return req.body["model"]
        return f"{self.name}-model"

    def _answer(self, req: Received, kind: str, text: str) -> dict:
        base = {
            "id": f"cmpl-{self.name}",
            "created": int(time.time()),
            "model": self._model(req),
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        }
        if kind == "text":
            return base | {
                "object": "text_completion",
                "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
            }
        return base | {
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": text},
                }
            ],
        }

    def _stream_event(self, req: Received, kind: str, piece: str) -> dict:
        base = {"id": f"cmpl-{self.name}", "created": int(time.time()), "model": self._model(req)}
        if kind == "text":
            return base | {
                "object": "text_completion",
                "choices": [{"index": 0, "text": piece, "finish_reason": None}],
            }
        return base | {
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--name", default="fake")
    parser.add_argument("--chunks", type=int, default=3)
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between chunks")
    args = parser.parse_args()
    fake = FakeLLM(args.name, port=args.port).start()
    fake.behave(chunks=args.chunks, chunk_delay=args.chunk_delay)
    print(f"listening {fake.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
