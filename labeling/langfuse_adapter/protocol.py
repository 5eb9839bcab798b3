"""What the console asks of Langfuse's API, and the limits the API sets."""

from __future__ import annotations

import uuid
from datetime import timedelta

# Field groups of the v2 observations API: tags live in ``trace_context``,
# completionStartTime in ``time`` (a TTFT fallback), cost in ``usage``.
OBSERVATION_FIELDS = "core,basic,time,io,metadata,model,usage,metrics,trace_context"
# Metadata values over 200 characters come back truncated unless expanded by key.
EXPANDED_METADATA_KEYS = ("strong_keywords_found", "content_length", "classifier_version")
MAX_OBSERVATION_PAGE = 1000  # the API's limit
MAX_SCORE_PAGE = 100  # the API's limit
TRACE_IDS_PER_SCORE_QUERY = 50  # keeps the comma-separated traceId query well under URL limits

GENERATIONS = ("v3", "v4")
MIN_V3 = (3, 180)  # the first v3 release with GET /api/public/v3/scores
V3_CURSOR = "v3:"  # a v3 read's cursor: the next window's start
V3_PAGE = 100  # v1 reads' largest page
V3_FIRST_WINDOW = timedelta(hours=1)
V3_MAX_WINDOW = timedelta(days=1)
V3_MIN_WINDOW = timedelta(seconds=1)  # narrower windows are paged through, de-duplicated
V3_ROOT_SLACK = timedelta(seconds=10)  # a root generation starts with its trace (OTel)
MIN_TIMED_OUT_PAGE = 50  # a v2 page that times out is halved down to this
V3_WRITERS = 4  # v3 takes one score per request: this many in flight at once

WEAK_SUFFICIENT = "weak_sufficient"
STRONG_NEEDED = "strong_needed"
LABEL_VALUES = (WEAK_SUFFICIENT, STRONG_NEEDED)
DEFAULT_LABEL_SCORE_NAME = "routing_label"
# Score ids are derived from this namespace, so re-sending a label updates the same score.
SCORE_ID_NAMESPACE = uuid.UUID("6f1c1d2e-5a7b-4c0e-9a43-2b8f1f6a7c11")

# The SDK must not retry on its own (it would sleep with time.sleep, unbounded by us).
_NO_SDK_RETRIES = {"max_retries": 0}
_RETRYABLE_STATUSES = frozenset({408, 429})
