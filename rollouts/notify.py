"""Notifications: a generic webhook with a Slack-compatible payload (``text`` + ``blocks``).

Sent after commit by a Celery task (``rollouts.tasks.send_notification``), so a slow or
absent receiver never blocks a rollback; ``cascade`` carries the same facts as data.
"""

from __future__ import annotations

import httpx
from django.db import transaction

from . import conf

EVENTS = {
    "start": ":rocket: Canary started",
    "advance": ":arrow_forward: Canary advanced",
    "promotion": ":white_check_mark: Canary promoted",
    "hold": ":warning: Canary held",
    "rollback": ":rewind: Canary rolled back",
    "failed": ":x: Rollout failed",
    "rollback_failed": ":rotating_light: Automatic rollback failed, act now",
    "drift": ":warning: Route weights changed outside the console",
    "stalled": ":rotating_light: Rollout automation stalled",
}


class WebhookError(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def payload(event: str, rollout, message: str = "") -> dict:
    head = EVENTS.get(event, event)
    text = (
        f"{head}: {rollout.version.name} on {rollout.route.name} "
        f"(canary {rollout.canary_weight}% / stable {rollout.stable_weight}%, "
        f"stage {rollout.stage}/{len(rollout.steps)})"
    )
    if message:
        text += f" - {message}"
    return {
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
        "cascade": {
            "event": event,
            "rollout": rollout.pk,
            "route": rollout.route.name,
            "version": rollout.version.name,
            "state": rollout.state,
            "stage": rollout.stage,
            "canary_weight": rollout.canary_weight,
            "stable_weight": rollout.stable_weight,
            "message": message,
        },
    }


def notify(event: str, rollout, message: str = "") -> None:
    """Queue the notification for after the current transaction commits (if configured)."""
    if not conf.notify_webhook_url():
        return
    body = payload(event, rollout, message)

    def send() -> None:
        from .tasks import send_notification

        send_notification.delay(body)

    transaction.on_commit(send)


def post(url: str, body: dict, *, timeout: float = 5.0) -> None:
    try:
        response = httpx.post(url, json=body, timeout=timeout)
    except httpx.HTTPError as exc:
        raise WebhookError(f"webhook unreachable: {exc}", retryable=True) from exc
    if response.status_code >= 400:
        raise WebhookError(
            f"webhook answered {response.status_code}",
            retryable=response.status_code >= 500 or response.status_code == 429,
        )
