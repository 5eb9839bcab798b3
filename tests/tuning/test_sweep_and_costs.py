"""Threshold sweep and calibration; cost summary; Prometheus rules checked by promtool."""

import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from labeling.models import Trace
from routing import services as routing_services
from tuning import costs
from tuning.models import CostSettings
from tuning.replay import replay_labeled, replay_traffic
from tuning.sweep import calibrate, pareto, sweep

from .conftest import PERIOD

pytestmark = pytest.mark.django_db


def test_each_sweep_point_equals_a_replay_with_those_thresholds(headline, draft, operator):
    result = sweep(draft, *PERIOD, token_grid=(300, 500, 800), turn_grid=(3, 5, 8))
    assert len(result["points"]) == 9
    point = next(
        p for p in result["points"] if (p["token_threshold"], p["turn_threshold"]) == (300, 8)
    )
    routing_services.version_update_draft(
        actor=operator, version=draft, token_threshold=300, turn_threshold=8
    )
    draft.refresh_from_db()
    traffic = replay_traffic(draft, *PERIOD)
    labels = replay_labeled(draft, *PERIOD)
    assert point["slm_usage"] == pytest.approx(traffic["predicted_slm_usage"]["value"])
    assert point["misroute"]["value"] == pytest.approx(
        labels["candidate_metrics"]["misroute"]["value"]
    )


def _point(token, turn, usage, misroute):
    return {
        "token_threshold": token,
        "turn_threshold": turn,
        "slm_usage": usage,
        "misroute": {"value": misroute},
    }


def test_the_pareto_front_drops_dominated_points():
    points = [
        _point(100, 1, 0.50, 0.02),
        _point(200, 2, 0.60, 0.03),
        _point(300, 3, 0.60, 0.05),  # dominated: same share, more misroute
        _point(400, 4, 0.55, 0.04),  # dominated: less share, more misroute than (200, 2)
        _point(500, 5, 0.70, 0.06),
    ]
    assert [p["token_threshold"] for p in pareto(points)] == [500, 200, 100]


def test_calibration_picks_the_lowest_misroute_inside_the_target_range():
    points = [_point(100, 1, 0.50, 0.01), _point(200, 2, 0.62, 0.04), _point(300, 3, 0.68, 0.03)]
    chosen = calibrate(points, (0.60, 0.70), {"token_threshold": 500, "turn_threshold": 5})
    assert chosen["token_threshold"] == 300
    assert calibrate(points, (0.9, 1.0), {"token_threshold": 500, "turn_threshold": 5}) is None


def test_daily_costs_add_up_trace_costs_and_busy_time_at_hourly_prices(synced):
    settings = CostSettings(strong_usd_per_hour=12, weak_usd_per_hour=0.3)
    days = costs.daily_costs(*PERIOD, settings)
    traces = Trace.objects.all()
    assert sum(d["requests"] for d in days) == traces.count()
    assert sum(d["trace_cost"] or 0 for d in days) == pytest.approx(
        sum(c for c in traces.values_list("cost_usd", flat=True) if c)
    )
    strong_s = sum(x or 0 for x in traces.filter(tier="strong").values_list("latency_s", flat=True))
    weak_s = sum(x or 0 for x in traces.filter(tier="weak").values_list("latency_s", flat=True))
    assert sum(d["hourly_price_cost"] for d in days) == pytest.approx(
        strong_s / 3600 * 12 + weak_s / 3600 * 0.3
    )


def _trace(at, cost, index):
    return Trace(
        langfuse_id=f"c{index}", started_at=at, messages=[], input_text="x", input_hash="h",
        char_count=1, turn_count=1, tier="strong", cost_usd=cost,
    )  # fmt: skip


def test_budget_warnings_and_week_over_week_drift(db):
    now = datetime(2026, 11, 20, 15, tzinfo=UTC)
    rows = [_trace(now - timedelta(hours=1), 85.0, 0)]  # today: 85% of $100
    rows += [_trace(now - timedelta(days=d), 10.0, d) for d in range(1, 8)]  # last 7 days
    rows += [_trace(now - timedelta(days=d), 5.0, d) for d in range(8, 15)]  # the 7 before
    Trace.objects.bulk_create(rows)
    summary = costs.summary(now, CostSettings())
    assert summary["today"]["status"] == costs.WARN and summary["today"]["cost"] == 85
    # Complete days only: today's $85 is in the daily budget, not in either week.
    assert summary["week"]["this_week"] == 70 and summary["week"]["last_week"] == 35
    assert (summary["week"]["first_day"], summary["week"]["last_day"]) == (
        "2026-11-13",
        "2026-11-19",
    )
    assert summary["week"]["drift"] == pytest.approx(1.0)
    assert summary["week"]["status"] == costs.WARN
    assert summary["month"]["cost"] == 85 + 70 + 35
    assert summary["month"]["status"] == costs.OK  # $190 of $3,000 is well under 90%


def test_a_real_rise_of_a_quarter_warns_just_after_midnight(db):
    """Counting today's five minutes as a day would show +3.5% here, under the +20% alert."""
    now = datetime(2026, 11, 20, 0, 5, tzinfo=UTC)
    today = now.replace(minute=0)
    rows, index = [], 0
    for days_ago, per_day in [(d, 100.0) for d in range(8, 15)] + [(d, 125.0) for d in range(1, 8)]:
        for hour in (0, 6, 12, 18):  # spread over the day
            at = today - timedelta(days=days_ago) + timedelta(hours=hour)
            rows.append(_trace(at, per_day / 4, index))
            index += 1
    rows.append(_trace(now - timedelta(minutes=4), 0.5, index))  # today so far
    Trace.objects.bulk_create(rows)
    week = costs.summary(now, CostSettings(drift_alert_share=0.2))["week"]
    assert week["this_week"] == pytest.approx(7 * 125) and week["last_week"] == pytest.approx(700)
    assert week["drift"] == pytest.approx(0.25)
    assert week["status"] == costs.WARN


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None, reason="Debian's prometheus package is not installed")
def test_generated_rules_pass_promtool_check_and_unit_tests(tmp_path):
    settings = CostSettings(strong_usd_per_hour=3.0, weak_usd_per_hour=0.5)
    rules = tmp_path / "rules.yaml"
    rules.write_text(costs.prometheus_rules(settings))
    assert "increase(cascade:" not in rules.read_text()  # gauges are averaged, not increased
    check = subprocess.run([PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    # One weak replica ($0.5/h) throughout; two strong ones ($6/h) join at 10 h. At 10 h a
    # day costs $12 (no alert); from 34 h on the last 24 h hold only $6.5/h: $156 > $80.
    # 1,200 requests an hour: $6.5 / 1,200 a request.
    (tmp_path / "test.yaml").write_text(
        f"""rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'up{{job="glm5-serving", instance="a"}}'
        values: '0x600 1x1800'
      - series: 'up{{job="glm5-serving", instance="b"}}'
        values: '0x600 1x1800'
      - series: 'up{{job="glm5-serving", instance="c"}}'
        values: '0x2400'
      - series: 'up{{job="qwen3-serving", instance="d"}}'
        values: '1x2400'
      - series: 'cascade_pod_requests_total{{tier="weak"}}'
        values: '0+10x2400'
      - series: 'cascade_pod_requests_total{{tier="strong"}}'
        values: '0+10x2400'
    promql_expr_test:
      - expr: cascade:total_cost_usd_per_hour
        eval_time: 5h
        exp_samples:
          - labels: 'cascade:total_cost_usd_per_hour'
            value: 0.5
      - expr: cascade:cost_usd:24h
        eval_time: 10h
        exp_samples:
          - labels: 'cascade:cost_usd:24h'
            value: 12
      - expr: cascade:cost_usd:24h
        eval_time: 36h
        exp_samples:
          - labels: 'cascade:cost_usd:24h'
            value: 156
      - expr: round(cascade:cost_per_request_usd:1h * 1200 * 1000)
        eval_time: 20h
        exp_samples:
          - value: 6500
    alert_rule_test:
      - alertname: CascadeDailyBudget
        eval_time: 10h
        exp_alerts: []
      - alertname: CascadeDailyBudget
        eval_time: 36h
        exp_alerts:
          - exp_labels:
              severity: warning
            exp_annotations:
              summary: "Cascade cost reached 80% of the daily budget"
              description: "Last 24 h: $156.00 of $100 a day."
      - alertname: CascadeCostDrift
        eval_time: 36h
        exp_alerts: []
"""
    )
    test = subprocess.run(
        [PROMTOOL, "test", "rules", str(tmp_path / "test.yaml")], capture_output=True, text=True
    )
    assert test.returncode == 0, test.stdout + test.stderr
