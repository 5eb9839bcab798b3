"""uvicorn's httptools protocol with a deadline for each request's headers.

uvicorn bounds the idle time between keep-alive requests, but not how long a client may
take to send a request's headers: a client trickling a byte now and then (slowloris) holds
its connection, and enough of them hold the pod. This protocol gives the headers
``header_timeout`` seconds from the connection (or from a kept-alive request's first byte),
then answers 408 and closes. The body's own deadline is the app's (``--body-timeout``).
"""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_BODY = json.dumps(
    {
        "error": {
            "message": "The request's headers did not arrive in time.",
            "type": "invalid_request_error",
            "param": None,
            "code": "request_timeout",
        }
    }
).encode()
TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    + f"content-length: {len(_BODY)}\r\n".encode()
    + b"connection: close\r\n\r\n"
    + _BODY
)


class GuardedHttpTools(HttpToolsProtocol):
    header_timeout = 10.0  # set by ``protocol(seconds)``

    _header_timer: asyncio.TimerHandle | None = None

    # Narrower than asyncio's BaseTransport, as in uvicorn's own override.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()  # a kept-alive connection's next request: the same time again

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.write(TIMED_OUT)
            self.transport.close()


def protocol(header_timeout: float) -> type[GuardedHttpTools]:
    """The protocol class uvicorn takes as ``http=``, with this header deadline."""
    return type("GuardedHttpTools", (GuardedHttpTools,), {"header_timeout": header_timeout})
