"""What the adapter hands the console: traces, pages, scores and write results."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import MalformedTrace
from .protocol import LABEL_VALUES


@dataclass(frozen=True)
class TraceRecord:
    """One routed request as the console stores it. Times are aware UTC; durations seconds."""

    langfuse_id: str  # the trace id (scores attach to it)
    observation_id: str
    start_time: datetime
    name: str | None
    user_id: str | None
    session_id: str | None
    messages: list[dict[str, Any]]
    output: str
    tags: tuple[str, ...]
    tier: str | None  # "weak" / "strong", None when the pod did not say
    classifier_version: str | None
    keyword_match: bool | None
    matched_keywords: tuple[str, ...] | None
    content_length: int | None
    turn_count: int | None
    cost_usd: float | None
    latency_s: float | None
    ttft_s: float | None
    model: str | None
    environment: str | None
    usage: dict[str, int]
    metadata: dict[str, Any]


@dataclass(frozen=True)
class ObservationPage:
    """One page of root observations, as the API sends them (camelCase JSON objects).

    ``cursor`` fetched this page; ``next_cursor`` fetches the next one, None at the end.
    """

    observations: list[Any]
    cursor: str | None
    next_cursor: str | None


@dataclass(frozen=True)
class ParsedPage:
    records: list[TraceRecord]
    skipped: list[MalformedTrace]


@dataclass(frozen=True)
class FeedbackScore:
    """A score read back from Langfuse (user feedback, or our own labels)."""

    id: str
    trace_id: str | None
    observation_id: str | None
    name: str
    data_type: str
    value: float | bool | str
    source: str
    comment: str | None
    timestamp: datetime
    author_user_id: str | None
    config_id: str | None


@dataclass(frozen=True)
class LabelScore:
    """A reviewer's label to write back.

    ``score_id`` and ``timestamp`` make the write an upsert: Langfuse updates a score sent
    again with the same id and timestamp. Without ``score_id`` one is derived from the trace
    id and score name (one routing label per trace); pass the console label's own stable id
    when several reviewers label the same trace.
    """

    trace_id: str
    value: str
    comment: str | None = None
    score_id: str | None = None
    timestamp: datetime | None = None
    metadata: dict[str, Any] | None = None

    def __post_init__(self):
        if self.value not in LABEL_VALUES:
            raise ValueError(f"label value must be one of {LABEL_VALUES}, got {self.value!r}")
        if not self.trace_id:
            raise ValueError("label needs a trace id")
        if self.timestamp is not None and self.timestamp.tzinfo is None:
            raise ValueError("label timestamp must be timezone-aware")


@dataclass(frozen=True)
class WriteResult:
    """The outcome of one score batch.

    ``status`` 202: all accepted. 207: ``rejected`` of them were refused, with ``errors``
    from the server; ``failed_ids`` lists the score ids the errors name (None when the
    errors do not say which, then the caller must check). A 207 is never retried here:
    resending rejected scores only fails again until their cause is fixed.
    """

    status: int
    sent_ids: tuple[str, ...]
    accepted: int
    rejected: int
    errors: tuple[str, ...] = ()
    failed_ids: tuple[str, ...] | None = ()

    @property
    def ok(self) -> bool:
        return self.rejected == 0
