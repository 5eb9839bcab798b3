"""Threshold sweep and calibration; cost summary; Prometheus rules checked by promtool."""

import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from labeling.models import Trace
from routing import services as routing_services
from tuning import costs
from tuning.models import CostSettings
from tuning.replay import replay_labeled, replay_traffic
from tuning.sweep import sweep

from .conftest import PERIOD

pytestmark = pytest.mark.django_db


def test_each_sweep_point_equals_a_replay_with_those_thresholds(headline, draft, operator):
    result = sweep(
        draft, *PERIOD, token_grid=(300, 500, 800), turn_grid=(3, 5, 8), sources=("headline",)
    )
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


def test_the_sweep_searches_the_data_breakpoints_and_tables_its_recommended_point(
    headline, discovery, v7
):
    result = sweep(v7, *PERIOD)

    lengths = sorted({p["token_threshold"] for p in result["points"]})
    assert len(lengths) > 15 and lengths[0] < 150  # not the old fixed grid from 150
    assert result["labels"]["headline"]["requests"] == 300
    assert result["label_sources"] == ["headline", "discovery", "imported"]
    calibrated = result["calibrated"]
    assert calibrated is not None and 0.60 <= calibrated["slm_usage"] <= 0.70
    table = {(p["token_threshold"], p["turn_threshold"]) for p in result["table"]}
    assert (calibrated["token_threshold"], calibrated["turn_threshold"]) in table
    assert (500, 5) in table  # the version's own setting, for comparison
    front = result["pareto"]
    for a, b in zip(front, front[1:], strict=False):  # down the front: less SLM, less misroute
        assert a["slm_usage"] >= b["slm_usage"]
        assert a["misroute"]["value"] > b["misroute"]["value"]


def test_a_sweep_point_can_be_applied_to_a_draft(client, operator, draft, headline):
    from tuning import services as tuning_services

    job = tuning_services.job_start(
        actor=operator, kind="sweep",
        params={"version": "v8", "since": PERIOD[0].isoformat(), "until": PERIOD[1].isoformat()},
    )  # fmt: skip
    job = tuning_services.job_run(job.pk)
    point = job.result["calibrated"]
    client.force_login(operator)

    response = client.post(
        reverse("tuning:sweep-apply", args=[job.pk]),
        {"draft": "v8", "token_threshold": point["token_threshold"],
         "turn_threshold": point["turn_threshold"]},
    )  # fmt: skip

    assert response.status_code == 302
    draft.refresh_from_db()
    assert (draft.token_threshold, draft.turn_threshold) == (
        point["token_threshold"], point["turn_threshold"],
    )  # fmt: skip
    bogus = client.post(
        reverse("tuning:sweep-apply", args=[job.pk]),
        {"draft": "v8", "token_threshold": 123457, "turn_threshold": 3},
    )
    assert bogus.status_code == 302
    draft.refresh_from_db()
    assert draft.token_threshold == point["token_threshold"]  # not a point of this sweep


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


def test_the_api_applies_a_sweep_point_and_refuses_others(api, operator, reviewer, draft, headline):
    from tuning import services as tuning_services

    job = tuning_services.job_start(
        actor=operator, kind="sweep",
        params={"version": "v8", "since": PERIOD[0].isoformat(), "until": PERIOD[1].isoformat()},
    )  # fmt: skip
    point = tuning_services.job_run(job.pk).result["table"][0]
    body = {"draft": "v8", "token_threshold": point["token_threshold"],
            "turn_threshold": point["turn_threshold"]}  # fmt: skip

    assert api.as_(reviewer).post(f"/api/v1/tuning-jobs/{job.pk}/apply/", body).status_code == 403
    ok = api.as_(operator).post(f"/api/v1/tuning-jobs/{job.pk}/apply/", body, format="json")
    frozen = api.as_(operator).post(
        f"/api/v1/tuning-jobs/{job.pk}/apply/", {**body, "draft": "v7"}, format="json"
    )
    off_grid = api.as_(operator).post(
        f"/api/v1/tuning-jobs/{job.pk}/apply/", {**body, "token_threshold": 99999}, format="json"
    )

    assert ok.status_code == 200 and ok.json()["version"] == "v8"
    assert frozen.status_code == 409
    assert off_grid.status_code == 400 and "token_threshold" in off_grid.json()


SCORER = {
    "bias": -1.0,
    "threshold": 0.0,
    "features": [["bug", 1.0], ["설계", 1.5], ["why", 0.75], ["error", 1.25], ["list", -0.5]],
}


def test_a_scorer_version_is_swept_over_its_cut_and_a_point_is_a_replay(
    headline, draft, operator, client
):
    from tuning import services as tuning_services

    routing_services.version_update_draft(actor=operator, version=draft, scorer=SCORER)
    job = tuning_services.job_start(
        actor=operator, kind="sweep",
        params={"version": "v8", "since": PERIOD[0].isoformat(), "until": PERIOD[1].isoformat(),
                "labels": ["headline"]},
    )  # fmt: skip
    job = tuning_services.job_run(job.pk)
    result = job.result
    assert result["kind"] == "cut" and result["current"] == {"cut": 0.0}
    cuts = [p["cut"] for p in result["points"]]
    assert cuts == sorted(cuts) and len(cuts) > 5
    shares = [p["slm_usage"] for p in result["points"]]
    assert shares == sorted(shares)  # a higher cut sends more weak
    point = next(p for p in result["points"] if 0.2 < p["slm_usage"] < 0.9)

    client.force_login(operator)
    page = client.get(reverse("tuning:job", args=[job.pk])).content.decode()
    assert "Score cut sweep" in page and 'name="cut"' in page
    response = client.post(
        reverse("tuning:sweep-apply", args=[job.pk]), {"draft": "v8", "cut": repr(point["cut"])}
    )
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.scorer["threshold"] == point["cut"] and draft.scorer["bias"] == -1.0

    traffic = replay_traffic(draft, *PERIOD)  # the engine, request by request
    labels = replay_labeled(draft, *PERIOD)
    assert point["slm_usage"] == pytest.approx(traffic["predicted_slm_usage"]["value"])
    assert point["misroute"]["value"] == pytest.approx(
        labels["candidate_metrics"]["misroute"]["value"]
    )


def cut_sweep_of_v8(draft, operator):
    """The draft v8 given SCORER, swept over its cut on the headline period."""
    from tuning import services as tuning_services

    routing_services.version_update_draft(actor=operator, version=draft, scorer=SCORER)
    job = tuning_services.job_start(
        actor=operator, kind="sweep",
        params={"version": "v8", "since": PERIOD[0].isoformat(), "until": PERIOD[1].isoformat()},
    )  # fmt: skip
    return tuning_services.job_run(job.pk)


def test_a_cut_goes_only_into_a_draft_with_the_same_weights(api, headline, draft, operator):
    job = cut_sweep_of_v8(draft, operator)
    other = routing_services.version_copy(actor=operator, source=draft, name="v9")
    routing_services.version_update_draft(
        actor=operator, version=other, scorer={**SCORER, "bias": -2.0}
    )
    cut = job.result["points"][1]["cut"]
    client = api.as_(operator)

    refused = client.post(
        f"/api/v1/tuning-jobs/{job.pk}/apply/", {"draft": "v9", "cut": cut}, format="json"
    )
    unknown = client.post(
        f"/api/v1/tuning-jobs/{job.pk}/apply/", {"draft": "v8", "cut": 123.25}, format="json"
    )
    applied = client.post(
        f"/api/v1/tuning-jobs/{job.pk}/apply/", {"draft": "v8", "cut": cut}, format="json"
    )

    assert refused.status_code == 409 and "same weights" in refused.json()["detail"]
    assert unknown.status_code == 400 and "cut" in unknown.json()
    assert applied.status_code == 200
    draft.refresh_from_db()
    assert draft.scorer["threshold"] == cut


def test_a_cut_of_a_draft_whose_scorer_was_taken_off_is_a_conflict(api, headline, draft, operator):
    job = cut_sweep_of_v8(draft, operator)
    routing_services.version_update_draft(actor=operator, version=draft, scorer=None)

    response = api.as_(operator).post(
        f"/api/v1/tuning-jobs/{job.pk}/apply/",
        {"draft": "v8", "cut": job.result["points"][1]["cut"]},
        format="json",
    )

    assert response.status_code == 409  # was a 500
    assert "no scorer any more" in response.json()["detail"]
