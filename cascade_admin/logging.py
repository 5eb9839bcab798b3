"""Structured logs: one JSON object per line, for the cluster's log pipeline.

``JsonFormatter`` is used by the console (settings.LOGGING), the Celery worker and beat
(which log through the same configuration) and gunicorn (gunicorn.conf.py). Every line has
``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``; a traceback comes as
``exc_info``. Fields passed with ``extra={...}`` are kept as top-level keys, so
``log.info("synced", extra={"traces": 120})`` is searchable as ``traces``. Values JSON
cannot encode are written as their ``str()``. Formatting never raises: a log call must not
break the request that made it.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
) | {"message", "asctime", "taskName"}


def _request_fields(request: Any) -> dict[str, Any]:
    """Django's request loggers pass the request object: keep what identifies it."""
    fields = {}
    for name in ("method", "path"):
        value = getattr(request, name, None)
        if isinstance(value, str):
            fields[name] = value
    return fields


class JsonFormatter(logging.Formatter):
    """Formats a record as a single-line JSON object (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key in _RECORD_ATTRIBUTES or key.startswith("_") or key in entry:
                continue
            if key == "request":
                entry.update({k: v for k, v in _request_fields(value).items() if k not in entry})
                continue
            entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        try:
            return json.dumps(entry, ensure_ascii=False, default=str)
        except (TypeError, ValueError):  # e.g. a circular structure passed in extra
            safe = {
                k: v if isinstance(v, str | int | float | bool | None) else repr(v)
                for k, v in entry.items()
            }
            return json.dumps(safe, ensure_ascii=False, default=str)


# gunicorn's access logger passes its request "atoms" as the record's args (a dict).
_ACCESS_FIELDS = {
    "m": "method",
    "U": "path",
    "q": "query",
    "s": "status",
    "B": "bytes",
    "h": "remote_addr",
    "a": "user_agent",
    "{x-request-id}i": "request_id",
}


class GunicornAccessJsonFormatter(JsonFormatter):
    """gunicorn access lines as JSON, with the request's method, path, status and timing.

    ``duration_ms`` is the time gunicorn spent on the request; fields gunicorn reports as
    ``-`` (absent) are left out.
    """

    def format(self, record: logging.LogRecord) -> str:
        atoms = record.args if isinstance(record.args, dict) else {}
        fields: dict[str, Any] = {}
        for atom, name in _ACCESS_FIELDS.items():
            value = atoms.get(atom)
            if value not in (None, "", "-"):
                fields[name] = value
        if isinstance(atoms.get("D"), int):
            fields["duration_ms"] = round(atoms["D"] / 1000, 3)
        for name, value in fields.items():
            setattr(record, name, value)
        return super().format(record)
