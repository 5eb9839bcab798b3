"""Beat entries of the rollouts app; the project wires ``BEAT_SCHEDULE`` into Celery beat."""

from celery.schedules import crontab

from . import conf

_INTERVAL = conf.evaluate_interval()

BEAT_SCHEDULE = {
    "rollouts-evaluate": {
        "task": "rollouts.tasks.evaluate_rollouts",
        "schedule": float(_INTERVAL),
        # A tick that waited longer than one interval is superseded by the next one.
        "options": {"expires": float(_INTERVAL)},
    },
    # Weight changes whose answer was lost, publications whose worker died.
    "rollouts-settle": {
        "task": "rollouts.tasks.settle_intents",
        "schedule": float(_INTERVAL),
        "options": {"expires": float(_INTERVAL)},
    },
    "rollouts-resume-publications": {
        "task": "rollouts.tasks.resume_publications",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
    # The previous UTC day's misroute estimate from labels; rolls back above the threshold.
    "rollouts-daily-misroute": {
        "task": "rollouts.tasks.daily_misroute_checks",
        "schedule": crontab(hour=conf.daily_check_hour(), minute=0),
        "options": {"expires": 3600},
    },
}
