"""The Celery app. Embedded mode (no broker configured) runs tasks in-process."""

import importlib
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cascade_admin.settings")

app = Celery("cascade_admin")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Periodic work is declared next to the code it runs, one `schedule.py` per app.
SCHEDULE_MODULES = ("labeling.schedule", "tuning.schedule", "rollouts.schedule")


def beat_schedule() -> dict:
    schedule = {}
    for name in SCHEDULE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        schedule.update(module.BEAT_SCHEDULE)
    return schedule


@app.on_after_finalize.connect
def _install_beat_schedule(sender, **kwargs):
    # After finalize, so the schedule modules may import the apps' code.
    sender.conf.beat_schedule = beat_schedule()
