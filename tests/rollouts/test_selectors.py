"""Gate values over time: a bounded history that keeps every result change and the latest."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from rollouts import selectors, services
from rollouts.models import GateEvaluation

from .test_services import published

pytestmark = pytest.mark.django_db

START = datetime(2026, 11, 9, tzinfo=UTC)
EVERY = timedelta(seconds=30)


@pytest.fixture
def rollout(local_target, route, v8, operator):
    published(v8, route.canary_slot)
    return services.rollout_start(actor=operator, route=route, version=v8)


def evaluate(gate, stage, results, start=START):
    """One evaluation per result, 30 s apart from ``start``; the rows, oldest first."""
    rows = [
        GateEvaluation(
            gate=gate, stage=stage, result=result, value=0.01, requests=500, at=start + i * EVERY
        )
        for i, result in enumerate(results)
    ]
    return GateEvaluation.objects.bulk_create(rows)


def changes(rows):
    """The rows whose result differs from the one before (the first row included)."""
    return [row for i, row in enumerate(rows) if i == 0 or rows[i - 1].result != row.result]


def kept_ids(history, gate, stage):
    return [e.pk for e in history if e.gate_id == gate.pk and e.stage == stage]


def test_a_long_stage_keeps_every_change_and_the_latest_within_the_bound(rollout):
    error_rate, latency, _ = rollout.gates.all()
    # Two days of a stage at 30 s: unknown while traffic builds up, pass, a short failure,
    # pass again, then a last unknown (Prometheus went away).
    results = ["unknown"] * 40 + ["pass"] * 2500 + ["fail"] * 7 + ["pass"] * 3200 + ["unknown"]
    stage1 = evaluate(error_rate, 1, results)
    stage2 = evaluate(error_rate, 2, ["pass"] * 1500, start=START + timedelta(days=2))
    other = evaluate(latency, 1, ["unknown"] * 3000)

    history = selectors.gate_history(rollout)

    kept = kept_ids(history, error_rate, 1)
    assert {row.pk for row in changes(stage1)} <= set(kept)
    assert stage1[-1].pk == kept[0]  # newest first
    assert len(kept) <= selectors.HISTORY_POINTS + len(changes(stage1)) + 1
    # Sampled evenly: no gap between kept rows wider than the sampling step.
    positions = sorted(i for i, row in enumerate(stage1) if row.pk in set(kept))
    step = -(-len(stage1) // selectors.HISTORY_POINTS)
    assert max(b - a for a, b in zip(positions, positions[1:], strict=False)) <= step
    # Each gate and stage is sampled on its own; the page stays small.
    for rows, gate, stage in ((stage2, error_rate, 2), (other, latency, 1)):
        kept = kept_ids(history, gate, stage)
        assert rows[0].pk in kept and rows[-1].pk in kept
        assert len(kept) <= selectors.HISTORY_POINTS + 1
    assert len(history) < 700
    assert [e.at for e in history] == sorted((e.at for e in history), reverse=True)


def test_a_short_history_is_returned_whole(rollout):
    gate = rollout.gates.first()
    rows = evaluate(gate, 1, ["unknown", "pass", "pass", "fail"] * 10)

    history = selectors.gate_history(rollout)

    assert [e.pk for e in history] == [row.pk for row in reversed(rows)]


def test_a_flapping_gate_is_bounded_too(rollout):
    gate = rollout.gates.first()
    rows = evaluate(gate, 1, ["pass", "unknown"] * 2000)

    history = selectors.gate_history(rollout)

    assert len(history) <= 2 * (selectors.HISTORY_POINTS + 1)
    assert history[0].pk == rows[-1].pk


def test_the_history_is_one_query_however_long(rollout):
    gate = rollout.gates.first()

    def count():
        with CaptureQueriesContext(connection) as ctx:
            history = selectors.gate_history(rollout)
            assert {e.gate.name for e in history} <= {gate.name}  # select_related: no query
        return len(ctx)

    assert count() == 1
    evaluate(gate, 1, ["pass", "fail", "fail", "unknown"] * 1000)
    assert count() == 1


def test_the_rollout_page_takes_as_many_queries_with_a_long_history(client, reviewer, rollout):
    client.force_login(reviewer)

    def count():
        with CaptureQueriesContext(connection) as ctx:
            page = client.get(f"/rollouts/{rollout.pk}/")
            assert page.status_code == 200
        return len(ctx), page.content.decode()

    before, _ = count()
    for stage, gate in enumerate(rollout.gates.all(), start=1):
        evaluate(gate, stage, ["unknown"] * 10 + ["pass"] * 2000)
    after, html = count()

    assert after == before
    table = html.split('id="gate-history"', 1)[1].split("</table>", 1)[0]
    assert 3 * 2 <= table.count("<tr>") - 1 <= 3 * (selectors.HISTORY_POINTS + 2)
