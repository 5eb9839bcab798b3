"""Periodic work of the tuning app, for the project's beat schedule (with time limits)."""

from celery.schedules import crontab

BEAT_SCHEDULE = {
    "tuning-nightly-reports": {
        "task": "tuning.tasks.nightly_reports",
        "schedule": crontab(hour=0, minute=30),
        "options": {"expires": 3600},
    },
    "tuning-refresh-stale-reports": {
        "task": "tuning.tasks.refresh_stale_reports",
        "schedule": 600.0,  # every ten minutes: labels show up on the board soon after
        "options": {"expires": 540},
    },
}
