"""Beat entries of the rollouts app; the project wires ``BEAT_SCHEDULE`` into Celery beat."""

from . import conf

_INTERVAL = conf.evaluate_interval()

BEAT_SCHEDULE = {
    "rollouts-evaluate": {
        "task": "rollouts.tasks.evaluate_rollouts",
        "schedule": float(_INTERVAL),
        # A tick that waited longer than one interval is superseded by the next one.
        "options": {"expires": float(_INTERVAL)},
    },
}
