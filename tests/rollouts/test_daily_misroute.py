"""The daily misroute check: yesterday's headline labels of the canary version's traces roll a
rollout back above the threshold; a permanent refusal by the cluster fails the rollout."""

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from celery.schedules import crontab
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from cascade_admin.errors import Conflict
from labeling.models import Batch, BatchItem, Label, Trace
from rollouts import services
from rollouts.models import (
    DailyMisrouteCheck,
    Publication,
    PublicationState,
    Rollout,
    RolloutState,
)
from tests.standins.k8s_api import httproute
from tuning.stats import proportion

from .conftest import CANARY, HTTPROUTE, NS, STABLE, route_weights
from .test_services import published, start

pytestmark = pytest.mark.django_db

DAY = date(2026, 11, 9)  # the day judged (passed explicitly: the checks run "now")
_ids = itertools.count(1)


def labeled(reviewer, *, version, right, wrong, kind="headline", day=DAY):
    """A batch of ``kind`` with ``right`` well routed and ``wrong`` misrouted traces that
    ``version`` routed on ``day`` (half of the misroutes FN, half FP)."""
    start_of_day = datetime(day.year, day.month, day.day, tzinfo=UTC)
    batch = Batch.objects.create(
        name=f"{kind}-{next(_ids)}", kind=kind, strategy={}, seed=1,
        period_start=start_of_day, period_end=start_of_day + timedelta(days=1),
        population=right + wrong,
    )  # fmt: skip
    cases = [("weak", "weak_sufficient")] * right + [
        ("weak", "strong_needed") if i % 2 == 0 else ("strong", "weak_sufficient")
        for i in range(wrong)
    ]
    for position, (tier, truth) in enumerate(cases, start=1):
        n = next(_ids)
        trace = Trace.objects.create(
            langfuse_id=f"t-{n}", started_at=start_of_day + timedelta(minutes=7 * position),
            messages=[{"role": "user", "content": f"q{n}"}], input_text=f"q{n}",
            input_hash=f"h{n}", char_count=3, turn_count=1, tier=tier,
            classifier_version=version,
        )  # fmt: skip
        item = BatchItem.objects.create(batch=batch, trace=trace, position=position)
        Label.objects.create(item=item, reviewer=reviewer, value=truth)
    return batch


@pytest.fixture
def canary(cluster_route, v8, v7, operator):
    """v8 at 10% on the stand-in's HTTPRoute, v7 confirmed on the stable slot."""
    published(v7, cluster_route.stable_slot)
    return start(operator, cluster_route, v8)


def check(rollout, day=DAY):
    return services.rollout_daily_check(rollout_id=rollout.pk, day=day)


def test_a_misroute_above_8_percent_with_enough_labels_rolls_back_to_stable(
    canary, k8s, reviewer, v7
):
    labeled(reviewer, version="v8", right=42, wrong=8)  # 16% of 50

    result = check(canary)

    rate = proportion(8, 50)
    low, high = f"{100 * rate.low:.1f}", f"{100 * rate.high:.1f}"
    assert (result.result, result.action, result.labeled, result.n) == ("fail", "rollback", 50, 50)
    assert result.misroute == pytest.approx(0.16)
    assert route_weights(k8s) == [(STABLE, 100), (CANARY, 0)]
    canary.refresh_from_db()
    assert (canary.state, canary.canary_weight, canary.stable_weight) == ("rolled_back", 0, 100)
    last = canary.transitions.last()
    assert (last.action, last.actor_name) == ("rollback", "automation")
    assert last.reason.startswith(f"daily misroute 16% > 8% (n=50, 95% CI {low}-{high}%)")
    assert AuditEvent.objects.filter(action="rollout.rollback", object_id=str(canary.pk)).exists()
    # "Restore v7": the stable config goes back onto the canary slot too.
    restore = Publication.objects.get(slot=canary.route.canary_slot, state=PublicationState.PENDING)
    assert restore.version == v7


def test_a_misroute_below_the_threshold_passes_and_changes_nothing(canary, k8s, reviewer):
    labeled(reviewer, version="v8", right=48, wrong=2)  # 4%

    result = check(canary)

    assert (result.result, result.action) == ("pass", "")
    assert result.detail.startswith("daily misroute 4% <= 8% (n=50, 95% CI")
    assert route_weights(k8s) == [(STABLE, 90), (CANARY, 10)]
    canary.refresh_from_db()
    assert (canary.state, canary.stage) == (RolloutState.STAGE, 1)


def test_too_few_labels_is_unknown_and_holds_even_when_all_are_misroutes(canary, k8s, reviewer):
    labeled(reviewer, version="v8", right=0, wrong=12)

    result = check(canary)

    assert (result.result, result.action, result.labeled) == ("unknown", "", 12)
    assert "too few labels" in result.detail and "< 30" in result.detail
    assert route_weights(k8s) == [(STABLE, 90), (CANARY, 10)]
    canary.refresh_from_db()
    assert canary.state == RolloutState.STAGE
    assert [t.action for t in canary.transitions.all()] == ["start"]


def test_a_day_without_labels_is_unknown_too(canary, k8s):
    result = check(canary)

    assert (result.result, result.misroute, result.labeled) == ("unknown", None, 0)
    assert route_weights(k8s) == [(STABLE, 90), (CANARY, 10)]


def test_discovery_batches_do_not_feed_the_estimate(canary, k8s, reviewer):
    labeled(reviewer, version="v8", right=47, wrong=3)  # headline: 6%
    labeled(reviewer, version="v8", right=0, wrong=40, kind="fn")  # a queue of found misroutes
    labeled(reviewer, version="v8", right=5, wrong=30, kind="fp")

    result = check(canary)

    assert (result.result, result.labeled) == ("pass", 50)
    assert result.misroute == pytest.approx(0.06)
    assert route_weights(k8s) == [(STABLE, 90), (CANARY, 10)]


def test_only_the_canary_versions_traces_of_that_day_count(canary, k8s, reviewer):
    labeled(reviewer, version="v8", right=40, wrong=0)
    labeled(reviewer, version="v7", right=0, wrong=60)  # the stable version's misroutes
    labeled(reviewer, version="v8", right=0, wrong=60, day=DAY - timedelta(days=1))
    labeled(reviewer, version="v8", right=0, wrong=60, day=DAY + timedelta(days=1))

    result = check(canary)

    assert (result.result, result.labeled, result.misroute) == ("pass", 40, 0.0)
    assert route_weights(k8s) == [(STABLE, 90), (CANARY, 10)]


def test_a_paused_rollout_is_checked_and_rolled_back_too(canary, k8s, reviewer, operator):
    services.rollout_pause(actor=operator, rollout=canary)
    labeled(reviewer, version="v8", right=40, wrong=10)

    assert check(canary).action == "rollback"
    canary.refresh_from_db()
    assert canary.state == RolloutState.ROLLED_BACK
    assert route_weights(k8s) == [(STABLE, 100), (CANARY, 0)]
    assert check(canary) is None  # ended rollouts are not checked again


def test_the_threshold_and_minimum_are_per_rollout(canary, k8s, reviewer, operator):
    labeled(reviewer, version="v8", right=18, wrong=2)  # 10% of 20
    assert check(canary).result == "unknown"

    services.rollout_set_misroute_check(
        actor=operator, rollout=canary, threshold=0.12, min_labels=20
    )
    again = check(canary)

    assert (again.result, again.threshold, again.min_labels) == ("pass", 0.12, 20)
    assert DailyMisrouteCheck.objects.filter(rollout=canary).count() == 1  # the day's record
    assert AuditEvent.objects.filter(
        action="rollout.misroute_check", object_id=str(canary.pk)
    ).exists()
    with pytest.raises(ValidationError, match="between 0 and 1"):
        services.rollout_set_misroute_check(actor=operator, rollout=canary, threshold=8)


def test_the_check_defaults_to_the_previous_utc_day(canary, reviewer):
    now = datetime(2026, 11, 10, 0, 30, tzinfo=timezone.get_fixed_timezone(120))  # 22:30 UTC
    labeled(reviewer, version="v8", right=40, wrong=0, day=date(2026, 11, 8))

    result = services.rollout_daily_check(rollout_id=canary.pk, now=now)

    assert (result.day, result.labeled) == (date(2026, 11, 8), 40)


# --- failed: the cluster refuses an automatic action for good -------------------------------


def _reorder_before_next_patch(k8s):
    reordered = httproute(NS, HTTPROUTE, [[(CANARY, 10), (STABLE, 90)]])
    k8s.before_next(lambda: k8s.put(reordered), method="PATCH")


def test_a_daily_rollback_the_cluster_refuses_for_good_fails_the_rollout(
    canary, k8s, reviewer, operator, v8
):
    labeled(reviewer, version="v8", right=40, wrong=10)
    # The canary's backend renamed by hand: no retry of the rollback can find it.
    renamed = httproute(NS, HTTPROUTE, [[(STABLE, 90), ("llm-classifier-renamed", 10)]])
    k8s.before_next(lambda: k8s.put(renamed), method="PATCH")

    result = check(canary)

    assert result.action == "failed"
    canary.refresh_from_db()
    assert (canary.state, canary.canary_weight) == (RolloutState.FAILED, 10)
    assert canary.finished_at is not None
    assert "automatic rollback refused by the cluster" in canary.status_note
    last = canary.transitions.last()
    assert (last.action, last.to_state) == ("fail", "failed")
    assert AuditEvent.objects.filter(action="rollout.fail", object_id=str(canary.pk)).exists()
    assert route_weights(k8s) == [(STABLE, 90), ("llm-classifier-renamed", 10)]  # untouched
    assert check(canary) is None
    # The canary still has traffic: the route stays taken until someone rolls it back.
    with pytest.raises(Conflict, match="failed one"):
        services.rollout_start(actor=operator, route=canary.route, version=v8)

    k8s.put(httproute(NS, HTTPROUTE, [[(STABLE, 90), (CANARY, 10)]]))  # someone fixes it
    services.rollout_rollback(actor=operator, rollout=canary, reason="after the fix")

    canary.refresh_from_db()
    assert canary.state == RolloutState.ROLLED_BACK
    assert route_weights(k8s) == [(STABLE, 100), (CANARY, 0)]
    assert services.rollout_start(actor=operator, route=canary.route, version=v8).stage == 1


def test_an_automatic_advance_refused_for_good_fails_the_rollout(cluster_route, k8s, v8, operator):
    rollout = start(operator, cluster_route, v8, gate_specs=[], window_seconds=1)
    Rollout.objects.filter(pk=rollout.pk).update(
        stage_started_at=rollout.stage_started_at - timedelta(seconds=5)
    )
    _reorder_before_next_patch(k8s)

    services.rollout_evaluate(rollout_id=rollout.pk)

    rollout.refresh_from_db()
    assert (rollout.state, rollout.stage, rollout.canary_weight) == ("failed", 1, 10)
    assert "automatic advance refused by the cluster" in rollout.status_note
    assert [t.action for t in rollout.transitions.all()] == ["start", "fail"]
    assert route_weights(k8s) == [(CANARY, 10), (STABLE, 90)]


def test_a_retryable_refusal_only_holds_and_is_tried_again(canary, k8s, reviewer):
    labeled(reviewer, version="v8", right=40, wrong=10)
    k8s.fail_next(503, method="PATCH")
    # Already held by a gate: the failed rollback must still reach a human.
    Rollout.objects.filter(pk=canary.pk).update(held_since=canary.stage_started_at)

    first = check(canary)

    assert first.action == "retry"
    canary.refresh_from_db()
    assert (canary.state, canary.canary_weight) == (RolloutState.STAGE, 10)
    assert "automatic rollback failed" in canary.status_note
    assert AuditEvent.objects.filter(
        action="rollout.rollback_failed", object_id=str(canary.pk)
    ).exists()
    assert route_weights(k8s) == [(STABLE, 90), (CANARY, 10)]

    second = check(canary)  # the task's retry, once the API server is back

    assert second.action == "rollback"
    assert route_weights(k8s) == [(STABLE, 100), (CANARY, 0)]


# --- schedule, API, page --------------------------------------------------------------------


def test_the_daily_check_runs_once_a_day_at_the_configured_utc_hour():
    import importlib

    from django.test import override_settings

    from rollouts import schedule

    with override_settings(ROLLOUT_DAILY_CHECK_HOUR=4):
        entry = importlib.reload(schedule).BEAT_SCHEDULE["rollouts-daily-misroute"]
    importlib.reload(schedule)

    assert entry["task"] == "rollouts.tasks.daily_misroute_checks"
    assert entry["schedule"] == crontab(hour=4, minute=0)


@pytest.fixture
def local_rollout(local_target, route, v8, operator):
    published(v8, route.canary_slot)
    return services.rollout_start(actor=operator, route=route, version=v8)


def test_operators_change_the_check_and_run_it_through_the_api(
    api, operator, reviewer, local_rollout
):
    url = f"/api/v1/rollouts/{local_rollout.pk}"
    denied = api.as_(reviewer).patch(f"{url}/misroute-check/", {"misroute_threshold": 0.1})
    assert denied.status_code == 403
    assert api.as_(reviewer).post(f"{url}/daily-check/", {}).status_code == 403

    changed = api.as_(operator).patch(
        f"{url}/misroute-check/",
        {"misroute_threshold": 0.05, "misroute_min_labels": 10},
        format="json",
    )
    assert changed.status_code == 200, changed.json()
    assert (changed.json()["misroute_threshold"], changed.json()["misroute_min_labels"]) == (
        0.05,
        10,
    )
    bad = api.as_(operator).patch(f"{url}/misroute-check/", {"misroute_threshold": 1})
    assert bad.status_code == 400

    ran = api.as_(operator).post(f"{url}/daily-check/", {"day": "2026-11-09"}, format="json")
    assert ran.status_code == 200, ran.json()
    (daily,) = ran.json()["daily_checks"]
    assert (daily["day"], daily["result"], daily["threshold"]) == ("2026-11-09", "unknown", 0.05)
    assert api.as_(reviewer).get(f"{url}/").json()["daily_checks"][0]["result"] == "unknown"

    services.rollout_rollback(actor=operator, rollout=local_rollout)
    assert api.as_(operator).post(f"{url}/daily-check/", {}).status_code == 409


def test_the_rollout_page_shows_the_daily_checks(client, reviewer, operator, local_rollout):
    for offset, (right, wrong) in enumerate([(40, 2), (10, 1), (45, 5)]):
        day = DAY - timedelta(days=offset)
        labeled(reviewer, version="v8", right=right, wrong=wrong, day=day)
        if offset < 2:
            services.rollout_daily_check(rollout_id=local_rollout.pk, day=day)
    client.force_login(reviewer)

    with CaptureQueriesContext(connection) as ctx:
        page = client.get(f"/rollouts/{local_rollout.pk}/")

    html = page.content.decode()
    assert page.status_code == 200
    assert 'id="daily-checks"' in html
    assert "2026-11-09" in html and "4.8%" in html and "pass" in html
    assert "2026-11-08" in html and "unknown" in html
    assert "above 8% with at least 30 labels" in html
    assert 'id="daily-settings"' not in html  # reviewers see it, operators change it
    assert len(ctx.captured_queries) <= 20

    client.force_login(operator)
    assert 'id="daily-settings"' in client.get(f"/rollouts/{local_rollout.pk}/").content.decode()


def test_the_page_forms_change_the_check_and_run_it_for_operators_only(
    client, reviewer, operator, local_rollout
):
    labeled(reviewer, version="v8", right=45, wrong=5)  # 10%
    url = f"/rollouts/{local_rollout.pk}"
    client.force_login(reviewer)
    assert client.post(f"{url}/misroute-check/", {"threshold_percent": 20}).status_code == 403
    assert client.post(f"{url}/daily-check/").status_code == 403

    client.force_login(operator)
    client.post(f"{url}/misroute-check/", {"threshold_percent": "12.5", "min_labels": "40"})
    local_rollout.refresh_from_db()
    assert (local_rollout.misroute_threshold, local_rollout.misroute_min_labels) == (0.125, 40)

    services.rollout_daily_check(rollout_id=local_rollout.pk, day=DAY)
    local_rollout.refresh_from_db()
    assert local_rollout.state == RolloutState.STAGE  # 10% <= 12.5%
    page = client.post(f"{url}/daily-check/", follow=True)
    assert "Misroute check of" in page.content.decode()
    assert local_rollout.daily_checks.count() == 2  # DAY, and yesterday by the clock


@pytest.mark.django_db(transaction=True)
def test_the_beat_task_checks_every_active_rollout_on_a_real_worker(
    local_target, route, v8, operator, reviewer
):
    from rollouts.tasks import daily_misroute_checks
    from tests.celery_worker import running_worker

    from .test_tasks import wait_for

    published(v8, route.canary_slot)
    rollout = services.rollout_start(actor=operator, route=route, version=v8)
    yesterday = (timezone.now() - timedelta(days=1)).date()
    labeled(reviewer, version="v8", right=30, wrong=10, day=yesterday)  # 25%

    with running_worker():
        daily_misroute_checks.delay()
        assert wait_for(lambda: DailyMisrouteCheck.objects.filter(rollout=rollout).exists())

    daily = DailyMisrouteCheck.objects.get(rollout=rollout)
    assert (daily.day, daily.result, daily.action) == (yesterday, "fail", "rollback")
    route.refresh_from_db()
    assert (route.stable_weight, route.canary_weight) == (100, 0)
