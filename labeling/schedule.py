"""Periodic labeling work, merged into the beat schedule in cascade_admin/celery.py."""

BEAT_SCHEDULE = {
    "labeling.sync": {
        "task": "labeling.tasks.sync_periodic",
        "schedule": 15 * 60,
        "options": {"expires": 14 * 60},
    },
    "labeling.push-pending-labels": {
        "task": "labeling.tasks.push_pending_labels",
        "schedule": 30 * 60,
        "options": {"expires": 29 * 60},
    },
}
