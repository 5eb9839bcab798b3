"""A real Celery worker on the real broker (Redis in CI), in a thread of the test process.

The worker shares the test database settings, so tests that use it need committed data
(``django_db(transaction=True)``).
"""

import contextlib

from celery.contrib.testing.worker import start_worker
from django.conf import settings

from cascade_admin.celery import app


@contextlib.contextmanager
def running_worker():
    assert not settings.CELERY_TASK_ALWAYS_EAGER, "set CELERY_BROKER_URL to test a real worker"
    app.conf.update(broker_url=settings.CELERY_BROKER_URL, task_always_eager=False)
    with app.connection_for_write() as connection:
        app.amqp.queues["celery"].bind(connection).purge()  # leftovers of earlier runs
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10) as worker:
        yield worker
