# ruff: noqa: E501 - the rule-file template reads best one rule per line
"""Cost monitoring: daily and weekly cost, budget use, week-over-week drift, Prometheus rules.

Two views of cost, side by side: what the traces say they cost (``cost_usd``), and the
*attributed cost*: each tier's busy time (sum of request latencies) x its hourly price.
The attributed cost is not the bill: GPU nodes bill per replica-hour whatever the load (idle
time is missed) and concurrent requests overlap on one replica (their time counts twice),
so it is neither a lower nor an upper bound. The billed estimate, replica-hours x $/h, is
what the Prometheus rules below compute from the serving jobs' ``up`` series; the console
stores no replica counts. Budgets and drift use the trace cost when traces carry it, the
attributed cost otherwise.

The generated Prometheus rules fix the spec's PromQL: ``cascade:*_cost_usd_per_hour`` are
gauges, so cost over a window is ``avg_over_time(gauge[w]) * hours(w)``, never
``increase()`` (which is for counters).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate

from labeling.models import Trace

from .models import CostSettings

OK, WARN, OVER = "ok", "warning", "over budget"


def daily_costs(start: datetime, end: datetime, settings: CostSettings) -> list[dict]:
    """One row per UTC day in [start, end) with traffic.

    ``hourly_price_cost`` (the key kept for API clients) is the attributed cost: busy time
    x hourly price, not replica-hours billed (see the module docstring).
    """
    rows = (
        Trace.objects.filter(started_at__gte=start, started_at__lt=end)
        .annotate(day=TruncDate("started_at"))
        .values("day")
        .annotate(
            requests=Count("id"),
            weak=Count("id", filter=Q(tier="weak")),
            strong=Count("id", filter=Q(tier="strong")),
            trace_cost=Sum("cost_usd"),
            weak_seconds=Sum("latency_s", filter=Q(tier="weak")),
            strong_seconds=Sum("latency_s", filter=Q(tier="strong")),
        )
        .order_by("day")
    )
    out = []
    for row in rows:
        hourly = (row["weak_seconds"] or 0) / 3600 * settings.weak_usd_per_hour + (
            row["strong_seconds"] or 0
        ) / 3600 * settings.strong_usd_per_hour
        trace_cost = row["trace_cost"]
        out.append(
            {
                "day": row["day"].isoformat(),
                "requests": row["requests"],
                "weak": row["weak"],
                "strong": row["strong"],
                "trace_cost": trace_cost,
                "hourly_price_cost": hourly,
                "cost": trace_cost if trace_cost is not None else hourly,
            }
        )
    return out


def _status(used: float, budget: float, alert_share: float) -> str:
    if used >= budget:
        return OVER
    return WARN if used >= alert_share * budget else OK


def summary(now: datetime, settings: CostSettings) -> dict:
    """Today, month to date, budgets, and the last 7 complete days against the 7 before.

    The weeks are whole UTC days ending yesterday: counting today's few hours as a day would
    pull "this week" down by up to a seventh and hide real drift just after midnight.
    """
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month_start = today.replace(day=1)
    start = min(month_start, today - timedelta(days=14))
    days = {row["day"]: row for row in daily_costs(start, today + timedelta(days=1), settings)}

    def total(first: date, last: date) -> float:
        return sum(
            row["cost"] for day, row in days.items() if first.isoformat() <= day <= last.isoformat()
        )

    today_cost = total(today.date(), today.date())
    month_cost = total(month_start.date(), today.date())
    this_week = total((today - timedelta(days=7)).date(), (today - timedelta(days=1)).date())
    last_week = total((today - timedelta(days=14)).date(), (today - timedelta(days=8)).date())
    drift = (this_week - last_week) / last_week if last_week else None
    return {
        "today": {
            "cost": today_cost,
            "budget": settings.daily_budget_usd,
            "share": today_cost / settings.daily_budget_usd,
            "alert_at": settings.daily_alert_share,
            "status": _status(today_cost, settings.daily_budget_usd, settings.daily_alert_share),
        },
        "month": {
            "cost": month_cost,
            "budget": settings.monthly_budget_usd,
            "share": month_cost / settings.monthly_budget_usd,
            "alert_at": settings.monthly_alert_share,
            "status": _status(
                month_cost, settings.monthly_budget_usd, settings.monthly_alert_share
            ),
        },
        "week": {
            "first_day": (today - timedelta(days=7)).date().isoformat(),
            "last_day": (today - timedelta(days=1)).date().isoformat(),
            "this_week": this_week,
            "last_week": last_week,
            "drift": drift,
            "alert_at": settings.drift_alert_share,
            "status": WARN if drift is not None and drift > settings.drift_alert_share else OK,
        },
        "days": [days[d] for d in sorted(days)],
    }


def _num(value: float) -> str:
    return f"{value:g}"


def prometheus_rules(settings: CostSettings) -> str:
    """Recording and alerting rules (Prometheus rule-file YAML) for cost, budget and drift."""
    strong_job = settings.strong_job.replace("\\", "\\\\").replace('"', '\\"')
    weak_job = settings.weak_job.replace("\\", "\\\\").replace('"', '\\"')
    total = "cascade:total_cost_usd_per_hour"
    daily_limit = settings.daily_alert_share * settings.daily_budget_usd
    monthly_limit = settings.monthly_alert_share * settings.monthly_budget_usd
    return f"""# Generated by Cascade Console from its cost settings. Cost gauges are USD per hour;
# cost over a window is avg_over_time(gauge[window]) * hours(window), never increase().
groups:
  - name: cascade_cost
    interval: 60s
    rules:
      - record: cascade:strong_cost_usd_per_hour
        expr: {_num(settings.strong_usd_per_hour)} * (count(up{{job="{strong_job}"}} == 1) or vector(0))
      - record: cascade:weak_cost_usd_per_hour
        expr: {_num(settings.weak_usd_per_hour)} * (count(up{{job="{weak_job}"}} == 1) or vector(0))
      - record: {total}
        expr: cascade:strong_cost_usd_per_hour + cascade:weak_cost_usd_per_hour
      - record: cascade:cost_usd:24h
        expr: avg_over_time({total}[24h]) * 24
      - record: cascade:cost_per_request_usd:1h
        expr: |
          avg_over_time({total}[1h]) * 1
            / on() (sum(increase(cascade_pod_requests_total[1h])) > 0)
  - name: cascade_budget
    rules:
      - alert: CascadeDailyBudget
        expr: avg_over_time({total}[24h]) * 24 > {_num(daily_limit)}
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: "Cascade cost reached {settings.daily_alert_share:.0%} of the daily budget"
          description: "Last 24 h: ${{{{ $value | printf \\"%.2f\\" }}}} of ${_num(settings.daily_budget_usd)} a day."
      - alert: CascadeMonthlyBudget
        expr: avg_over_time({total}[30d]) * 720 > {_num(monthly_limit)}
        for: 1h
        labels:
          severity: critical
        annotations:
          summary: "Cascade cost reached {settings.monthly_alert_share:.0%} of the monthly budget"
          description: "Last 30 days: ${{{{ $value | printf \\"%.2f\\" }}}} of ${_num(settings.monthly_budget_usd)} a month."
      - alert: CascadeCostDrift
        expr: |
          avg_over_time({total}[7d])
            / (avg_over_time({total}[7d] offset 7d) > 0)
            - 1 > {_num(settings.drift_alert_share)}
        for: 1h
        labels:
          severity: warning
        annotations:
          summary: "Weekly cost up more than {settings.drift_alert_share:.0%} on the week before"
          description: "Week over week: +{{{{ $value | humanizePercentage }}}}."
"""
