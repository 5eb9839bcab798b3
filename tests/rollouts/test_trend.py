"""Gate trends: SVG lines drawn on the server from the page's gate history."""

from datetime import UTC, datetime, timedelta

import pytest

from rollouts.models import Gate, GateEvaluation
from rollouts.trend import HEIGHT, PAD, WIDTH, gate_trends, trend

from .test_selectors import rollout  # noqa: F401 - the fixture

START = datetime(2026, 11, 9, tzinfo=UTC)


def evaluations(gate, values):
    return [
        GateEvaluation(
            gate=gate,
            pk=i + 1,
            stage=1,
            result="pass",
            value=v,
            at=START + i * timedelta(seconds=30),
        )
        for i, v in enumerate(values)
    ]


def coordinates(points: str) -> list[tuple[float, float]]:
    return [tuple(map(float, p.split(","))) for p in points.split()]


def test_a_trend_runs_oldest_to_newest_across_the_box_with_the_threshold_in_scale():
    gate = Gate(pk=1, name="error-rate", threshold=0.02)
    rows = evaluations(gate, [0.0, 0.01, 0.04])

    line = trend(gate, reversed(rows))  # the page's history is newest first

    xy = coordinates(line.points)
    assert [x for x, _ in xy] == [PAD, WIDTH / 2, WIDTH - PAD]
    # Higher values sit higher (smaller y); 0 at the bottom, the 0.04 peak at the top.
    assert xy[0][1] == HEIGHT - PAD and xy[2][1] == PAD
    assert xy[2][1] < line.threshold_y < xy[0][1]
    assert line.threshold_y == pytest.approx(HEIGHT / 2)  # 0.02 is half of 0.04
    assert line.count == 3


def test_values_all_under_the_threshold_keep_the_threshold_on_top():
    gate = Gate(pk=1, name="p99-latency", threshold=15.0)

    line = trend(gate, evaluations(gate, [1.0, 2.0, 1.5]))

    assert line.threshold_y == PAD
    assert all(y > PAD for _, y in coordinates(line.points))


def test_unknown_evaluations_leave_no_point_and_one_value_draws_nothing():
    gate = Gate(pk=1, name="weak-ttft-p95", threshold=3.0)

    assert trend(gate, evaluations(gate, [None, 1.0, None])) is None
    assert trend(gate, evaluations(gate, [None, 1.0, 2.0])).count == 2


@pytest.mark.django_db
def test_the_rollout_page_draws_a_trend_per_gate_with_values(client, reviewer, rollout):  # noqa: F811
    error_rate = rollout.gates.get(name="error-rate")
    GateEvaluation.objects.bulk_create(evaluations(error_rate, [0.001, 0.003, 0.002]))
    client.force_login(reviewer)

    html = client.get(f"/rollouts/{rollout.pk}/").content.decode()

    assert html.count('<svg class="trend"') == 1  # the other gates have no values yet
    assert 'aria-label="error-rate: 3 values' in html
    assert gate_trends(rollout.gates.all(), []) == {}
