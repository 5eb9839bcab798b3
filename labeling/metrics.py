"""The console's ``/metrics``: Langfuse write-back and sync health, for Prometheus.

Gauges computed at scrape time from the database (a few indexed counts), in the text
exposition format. Open like ``/healthz`` unless ``METRICS_TOKEN`` is set; then a scrape
needs ``Authorization: Bearer <token>``. Nothing here carries user content.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from .models import ScoreRetraction, SyncRun, SyncStatus
from .selectors import writeback_backlog

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _gauge(name: str, help_text: str, value: float) -> str:
    return f"# HELP {name} {help_text}\n# TYPE {name} gauge\n{name} {value:g}\n"


def exposition(now=None) -> str:
    now = now or timezone.now()
    backlog = writeback_backlog(now)
    last_ok = SyncRun.objects.filter(status=SyncStatus.SUCCEEDED).order_by("-finished_at").first()
    return "".join(
        [
            _gauge(
                "cascade_console_writeback_backlog_labels",
                "Judgements not yet written back to Langfuse (no permanent error).",
                backlog.labels,
            ),
            _gauge(
                "cascade_console_writeback_oldest_seconds",
                "Age of the oldest judgement waiting for its write-back (0: none waiting).",
                backlog.oldest_seconds or 0,
            ),
            _gauge(
                "cascade_console_retractions_pending",
                "Undone labels' scores Langfuse was asked to delete and still has (or unsent).",
                ScoreRetraction.objects.filter(confirmed_at__isnull=True).count(),
            ),
            _gauge(
                "cascade_console_sync_running",
                "Trace syncs running now.",
                SyncRun.objects.filter(status=SyncStatus.RUNNING).count(),
            ),
            _gauge(
                "cascade_console_sync_last_success_timestamp_seconds",
                "When the last successful trace sync finished (Unix time; 0: never).",
                last_ok.finished_at.timestamp() if last_ok and last_ok.finished_at else 0,
            ),
        ]
    )


@login_not_required  # Prometheus has no session; METRICS_TOKEN guards it when set
@require_GET
def metrics(request):
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, f"Bearer {token}".encode()):
            return HttpResponse("A valid bearer token is required.\n", status=401)
    return HttpResponse(exposition(), content_type=CONTENT_TYPE)
