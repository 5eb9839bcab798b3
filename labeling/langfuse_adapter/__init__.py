"""The one adapter between the console and Langfuse (SDK ``langfuse`` 5, REST API only).

Reads routed traces, reads user feedback scores (``GET /api/public/v3/scores``), writes
reviewers' labels back as a categorical score (``POST /api/public/scores``) and asks for an
undone label's score to be deleted (``DELETE``). Every call goes through the SDK's client
(auth, base URL, timeouts); the bulk reads take the JSON as sent instead of the SDK's
response models, whose conversion alone would cap a sync at ~800 traces/s. That uses the
SDK's private HTTP client; should an SDK release drop it, the v4 reads fall back to the
public ``get_many`` methods (same results, slower) with a logged warning.

What it relies on, read from the Langfuse server's source (v3.180.0 to v3.225.4, v4):
- Generations. Cloud and v4 servers read traces as root observations through
  ``GET /api/public/v2/observations`` (cursor, up to 1,000 a page) and take a JSON list of
  scores (202, or 207 when some are refused). Self-hosted v3 answers 404 there (unless
  ``LANGFUSE_MIGRATION_V4_ALLOW_PREVIEW_OPT_IN=true``), has ``/api/public/v3/scores`` only
  from 3.180.0, and takes one score object per request (200 ``{id}``; a list is 400
  "Invalid request data"; ``timestamp`` is dropped). ``GET /api/public/health`` reports
  ``version``. The generation is found once per adapter (``server_info``).
- v3 reads: ``GET /api/public/traces`` and ``/api/public/observations`` page by
  ``page``/``limit`` (at most 100) with ``LIMIT/OFFSET``, newest first with no tie-breaker:
  paging a window could skip or repeat rows, so windows are cut to one page each.
- Deletes answer 202 for any id (both generations) and happen later.
- A read over the analytics store's limits answers 422 ``{"error": "Request timed out"}``:
  read smaller. 429 carries ``Retry-After``.
- The documented model field is ``providedModelName``; servers send ``model``.

Contracts worth knowing:
- Every failure of a call surfaces as ``LangfuseError``; ``retryable`` says whether trying
  again later can help (timeouts, connection errors, 408, 429, 5xx) or not (400, 401, 403,
  404, an unexpected response shape). The SDK's own retries are switched off
  (``max_retries: 0``) so that ``call_with_retry`` is the only retry loop: its sleeps are
  injectable and bounded, and it honours ``Retry-After``.
- Paging is by opaque cursor. A caller that stores ``ObservationPage.next_cursor`` after
  handling a page can resume after a crash by passing it back as ``cursor`` with the same
  window and tags. Do not assume any order of observations inside a window.
- ``parse_observation`` never guesses: it returns a ``TraceRecord`` or raises
  ``MalformedTrace(reason)``, which callers count and skip. An optional field of the wrong
  type (a numeric userId, a list where an object belongs) is read as missing.

No Django here: the console, its Celery tasks, the CLI and the benchmarks share it.

The package: ``protocol`` (what is asked of the API and its limits), ``errors``, ``retry``,
``settings``, ``records`` (what the console gets), ``parsing`` and ``client`` (the adapter).
Import from the package; its names are the ones below.
"""

from typing import TYPE_CHECKING, Any

from .errors import LangfuseConfigError, LangfuseError, MalformedTrace, parse_retry_after
from .parsing import (
    _iso,
    observation_filter,
    parse_messages,
    parse_observation,
    parse_output,
    parse_page,
)
from .protocol import (
    DEFAULT_LABEL_SCORE_NAME,
    EXPANDED_METADATA_KEYS,
    LABEL_VALUES,
    MAX_OBSERVATION_PAGE,
    MAX_SCORE_PAGE,
    OBSERVATION_FIELDS,
    SCORE_ID_NAMESPACE,
    STRONG_NEEDED,
    WEAK_SUFFICIENT,
)
from .records import (
    FeedbackScore,
    LabelScore,
    ObservationPage,
    ParsedPage,
    TraceRecord,
    WriteResult,
)
from .retry import RetryPolicy, call_with_retry
from .settings import LangfuseSettings, label_score_name_from_env, settings_from_env

if TYPE_CHECKING:
    from .client import LangfuseAdapter, ServerInfo, generation_of

_CLIENT = {"LangfuseAdapter", "ServerInfo", "generation_of"}


def __getattr__(name: str) -> Any:
    # The client needs the langfuse SDK, a third of a second to import: it loads when first
    # asked for, so the settings' start-up check of the Langfuse variables does not pay it.
    if name in _CLIENT:
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_LABEL_SCORE_NAME",
    "EXPANDED_METADATA_KEYS",
    "LABEL_VALUES",
    "MAX_OBSERVATION_PAGE",
    "MAX_SCORE_PAGE",
    "OBSERVATION_FIELDS",
    "SCORE_ID_NAMESPACE",
    "STRONG_NEEDED",
    "WEAK_SUFFICIENT",
    "FeedbackScore",
    "LabelScore",
    "LangfuseAdapter",
    "LangfuseConfigError",
    "LangfuseError",
    "LangfuseSettings",
    "MalformedTrace",
    "ObservationPage",
    "ParsedPage",
    "RetryPolicy",
    "ServerInfo",
    "TraceRecord",
    "WriteResult",
    "_iso",
    "call_with_retry",
    "generation_of",
    "label_score_name_from_env",
    "observation_filter",
    "parse_messages",
    "parse_observation",
    "parse_output",
    "parse_page",
    "parse_retry_after",
    "settings_from_env",
]
