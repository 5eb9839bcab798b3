"""The Celery app. Embedded mode (no broker configured) runs tasks in-process."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cascade_admin.settings")

app = Celery("cascade_admin")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
