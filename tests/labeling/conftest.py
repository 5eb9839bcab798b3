from datetime import UTC, datetime

import pytest

from labeling.standin import (
    DEFAULT_PUBLIC_KEY,
    DEFAULT_SECRET_KEY,
    Store,
    generate_traffic,
    start_in_thread,
)

# Fixed, so windows and counts are the same on every run.
TRAFFIC_END = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.fixture(scope="session")
def traffic():
    return generate_traffic(seed=11, days=2, per_day=400, end=TRAFFIC_END)


@pytest.fixture
def langfuse(traffic, monkeypatch):
    """A stand-in Langfuse with two days of traffic; the console's env points at it."""
    store = Store()
    store.load(traffic)
    url, stop = start_in_thread(store)
    monkeypatch.setenv("LANGFUSE_BASE_URL", url)
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", DEFAULT_PUBLIC_KEY)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", DEFAULT_SECRET_KEY)
    store.url = url
    yield store
    stop()


@pytest.fixture(scope="session")
def _synced_rows():
    return []


@pytest.fixture
def synced(langfuse, db, _synced_rows):
    """The stand-in's traffic in the trace store.

    The first test that asks syncs for real (through the SDK); later ones get the same rows
    copied in, which keeps the many tests that only need traces from paying for the sync.
    """
    from datetime import timedelta

    from labeling.langfuse_adapter import LangfuseAdapter, RetryPolicy
    from labeling.models import Trace
    from labeling.sync import sync_execute, sync_start

    if _synced_rows:
        Trace.objects.bulk_create(Trace(**row) for row in _synced_rows)
        return
    run = sync_start(since=TRAFFIC_END - timedelta(days=3), until=TRAFFIC_END)
    adapter = LangfuseAdapter.from_env(retry=RetryPolicy(attempts=2), sleep=lambda s: None)
    sync_execute(run.pk, adapter=adapter, page_size=500)
    fields = [f.attname for f in Trace._meta.concrete_fields if f.attname != "id"]
    _synced_rows.extend(Trace.objects.order_by("id").values(*fields))


@pytest.fixture
def make_batch(operator):
    """Draw a batch over the stand-in's window: make_batch(size=10, seed=2, kind=...)."""
    from datetime import timedelta

    from labeling import services
    from labeling.models import BatchKind

    def make(size=10, seed=2, kind=BatchKind.HEADLINE, **options):
        return services.batch_create(
            actor=operator,
            kind=kind,
            period_start=TRAFFIC_END - timedelta(days=3),
            period_end=TRAFFIC_END,
            size=size,
            seed=seed,
            **options,
        )

    return make
