"""The console's /metrics: write-back backlog and age, pending retractions, sync health."""

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from labeling import services
from labeling.models import Label, ScoreRetraction, SyncRun, SyncStatus

pytestmark = pytest.mark.django_db


def scrape(client, **headers) -> dict[str, float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


@pytest.fixture
def batch(synced, make_batch):
    return make_batch(size=5, seed=3)


def test_the_backlog_its_age_and_pending_retractions_are_exported(client, batch, reviewer):
    before = scrape(client)
    assert before["cascade_console_writeback_backlog_labels"] == 0
    item = batch.items.first()
    label = services.label_submit(reviewer=reviewer, item=item, value="weak_sufficient")
    Label.objects.filter(pk=label.pk).update(updated_at=timezone.now() - timedelta(minutes=5))
    ScoreRetraction.objects.create(score_id="s-1", item=item)
    SyncRun.objects.create(
        since=timezone.now() - timedelta(days=1), until=timezone.now(),
        status=SyncStatus.SUCCEEDED, finished_at=timezone.now(),
    )  # fmt: skip

    after = scrape(client)

    assert after["cascade_console_writeback_backlog_labels"] == 1
    assert 290 < after["cascade_console_writeback_oldest_seconds"] < 600
    assert after["cascade_console_retractions_pending"] == 1
    assert after["cascade_console_sync_last_success_timestamp_seconds"] > 0


def test_a_metrics_token_is_required_when_set(client, settings):
    settings.METRICS_TOKEN = "scrape-me"

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 401
    assert "cascade_console_sync_running" in scrape(client, HTTP_AUTHORIZATION="Bearer scrape-me")
