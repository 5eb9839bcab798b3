"""The one retry loop around Langfuse calls: bounded, injectable sleeps, Retry-After."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .errors import translate_error

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff.

    ``attempts`` counts every call, the first included. The delay before retry n (1-based)
    is ``base_delay * 2**(n-1)`` capped at ``max_delay``, plus up to ``jitter`` of itself.
    A server's ``Retry-After`` replaces the computed delay; one longer than
    ``max_retry_after`` is not waited out here (the error is raised so a task queue can
    reschedule instead of holding a worker).
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0
    jitter: float = 0.1

    def delay(self, retry_number: int, retry_after: float | None, rand: float = 0.0) -> float:
        if retry_after is not None:
            return retry_after
        backoff = min(self.max_delay, self.base_delay * 2 ** (retry_number - 1))
        return backoff * (1 + self.jitter * rand)


def call_with_retry(
    func: Callable[[], T],
    *,
    policy: RetryPolicy = RetryPolicy(),  # frozen, so a shared default is safe
    sleep: Callable[[float], None] = time.sleep,
    operation: str = "langfuse call",
    rand: Callable[[], float] = random.random,
) -> T:
    """Call ``func`` until it succeeds, a permanent error occurs, or attempts run out.

    ``func`` raises LangfuseError (or anything ``translate_error`` understands). The last
    error is re-raised unchanged, so callers see the real status.
    """
    retry_number = 0
    while True:
        try:
            return func()
        except Exception as exc:  # narrowed by translate_error, re-raised
            try:
                error = translate_error(exc, operation)
            except TypeError:
                raise exc from None
            retry_number += 1
            if not error.retryable or retry_number >= policy.attempts:
                raise error from exc
            if error.retry_after is not None and error.retry_after > policy.max_retry_after:
                raise error from exc
            sleep(policy.delay(retry_number, error.retry_after, rand()))
