"""Errors the pod answers with, in the OpenAI shape clients already parse."""

from __future__ import annotations

import json
from typing import Any


class RequestError(Exception):
    """The client's request is unusable (4xx); sending it again unchanged will not help."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str = "invalid_request"
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code


class UpstreamUnavailable(Exception):
    """A backend failed before its first byte. A retry (elsewhere or later) may help.

    ``reason`` is a metric label: connect, timeout, dropped, status_429 or status_5xx.
    """

    def __init__(self, backend: str, reason: str, detail: str, *, retry_after: str | None = None):
        super().__init__(f"{backend}: {detail}")
        self.backend = backend
        self.reason = reason
        self.detail = detail
        self.retry_after = retry_after


ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}


def error_body(
    status: int,
    message: str,
    *,
    code: str,
    param: str | None = None,
    extra: dict[str, Any] | None = None,
) -> bytes:
    error = {
        "message": message,
        "type": ERROR_TYPES.get(status, "api_error"),
        "param": param,
        "code": code,
    }
    error.update(extra or {})
    return json.dumps({"error": error}, ensure_ascii=False).encode("utf-8")
