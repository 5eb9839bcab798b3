"""Every failure of a Langfuse call as one exception, with whether a retry can help."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from datetime import UTC
from typing import Any

from .protocol import _RETRYABLE_STATUSES


class LangfuseError(Exception):
    """A failed Langfuse call.

    ``retryable``: trying again later can help. ``status``: the HTTP status, or None when no
    response arrived (timeout, connection error). ``retry_after``: seconds the server asked
    us to wait, if it said so.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return (
            f"LangfuseError({str(self)!r}, retryable={self.retryable}, "
            f"status={self.status}, retry_after={self.retry_after})"
        )


class LangfuseConfigError(ValueError):
    """The Langfuse settings are missing or invalid; the message names the variable."""


class MalformedTrace(ValueError):
    """A root observation that cannot become a TraceRecord; ``reason`` is short and countable."""

    def __init__(self, reason: str, observation_id: str | None = None):
        super().__init__(reason if observation_id is None else f"{observation_id}: {reason}")
        self.reason = reason
        self.observation_id = observation_id


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    Returns None when absent or unparsable; never negative.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _error_detail(body: Any) -> str:
    if isinstance(body, Mapping):
        for key in ("message", "error", "detail"):
            if isinstance(body.get(key), str):
                return body[key]
    text = str(body) if body is not None else ""
    return text[:200]


def translate_error(exc: BaseException, operation: str) -> LangfuseError:
    """Map an SDK / httpx / parsing exception to a LangfuseError saying if a retry helps."""
    # Imported here: only a failed call gets this far, and by then the client has loaded the
    # SDK; the settings checks that import this module at start-up need none of it.
    import httpx
    import pydantic
    from langfuse.api.core.api_error import ApiError

    if isinstance(exc, LangfuseError):
        return exc
    if isinstance(exc, ApiError):
        status = exc.status_code
        retry_after = parse_retry_after(_header(exc.headers, "retry-after"))
        retryable = status is None or status >= 500 or status in _RETRYABLE_STATUSES
        return LangfuseError(
            f"{operation}: HTTP {status}: {_error_detail(exc.body)}",
            retryable=retryable,
            status=status,
            retry_after=retry_after,
        )
    if isinstance(exc, httpx.TimeoutException):
        return LangfuseError(f"{operation}: timed out ({type(exc).__name__})", retryable=True)
    if isinstance(exc, httpx.TransportError):
        return LangfuseError(f"{operation}: connection failed: {exc}", retryable=True)
    if isinstance(exc, pydantic.ValidationError | json.JSONDecodeError):
        # A 2xx whose body the SDK cannot read: retrying will not change the server.
        return LangfuseError(f"{operation}: unexpected response shape: {exc}", retryable=False)
    raise TypeError(f"not a Langfuse call failure: {exc!r}") from exc
