"""What-if replay: the engine on stored traffic and labels, flips and McNemar."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from labeling.models import Trace
from routing import services as routing_services
from routing.selectors import classifier_for
from tuning.replay import replay_labeled, replay_traffic
from tuning.selectors import cost_settings

from .conftest import PERIOD

pytestmark = pytest.mark.django_db


def test_replaying_the_live_version_reproduces_every_live_decision(synced, v7):
    traffic = replay_traffic(v7, *PERIOD, chunk_size=97)  # odd chunks: boundaries must not matter
    live = Trace.objects.exclude(tier="")
    assert traffic["requests"] == Trace.objects.count() > 0
    assert traffic["moved_to_strong"] == traffic["moved_to_weak"] == 0
    assert traffic["predicted_slm_usage"]["value"] == pytest.approx(
        live.filter(tier="weak").count() / live.count()
    )
    assert traffic["predicted_cost_per_1k"] == pytest.approx(traffic["live_cost_per_1k"])


def test_replay_decisions_equal_the_engine_on_the_stored_messages(synced, v7):
    classify = classifier_for(v7).classify
    traces = list(Trace.objects.exclude(tier="").order_by("id")[:200])
    assert len(traces) == 200
    assert {t.tier for t in traces} == {"weak", "strong"}  # both kinds of decision are checked
    for trace in traces:
        assert classify(trace.messages).tier == trace.tier


def test_a_draft_with_a_new_keyword_flips_labeled_items_and_is_tested_against_the_baseline(
    headline, traffic, draft, operator, v7
):
    routing_services.keyword_add(actor=operator, version=draft, text="왜", rationale="test")
    draft.refresh_from_db()
    result = replay_labeled(draft, *PERIOD, baseline=v7)
    flips = result["flips"]
    assert flips and all(f["old_tier"] == "weak" and f["new_tier"] == "strong" for f in flips)
    assert all("왜" in f["reasons"][0] for f in flips)
    # Weak -> strong fixes exactly the flips whose ground truth needs the strong tier.
    fixed = sum(traffic.truth[f["trace"]] == "strong_needed" for f in flips)
    assert all(
        f["effect"] == ("fixed" if traffic.truth[f["trace"]] == "strong_needed" else "broken")
        for f in flips
    )
    assert result["mcnemar"]["c"] == fixed and result["mcnemar"]["b"] == len(flips) - fixed
    assert result["flip_count"] == len(flips)
    new, old = result["candidate_metrics"]["matrix"], result["baseline_metrics"]["matrix"]
    assert new["fn"] == old["fn"] - fixed and new["fp"] == old["fp"] + len(flips) - fixed


def test_the_live_baseline_equals_replaying_the_live_version(headline, v7):
    live = replay_labeled(v7, *PERIOD)
    assert live["items"] > 0
    assert live["baseline"] == "live" and live["flip_count"] == 0
    assert live["candidate_metrics"]["matrix"] == live["baseline_metrics"]["matrix"]


def test_a_lower_length_threshold_predicts_less_slm_usage_and_more_cost(
    synced, draft, operator, v7
):
    routing_services.version_update_draft(actor=operator, version=draft, token_threshold=100)
    draft.refresh_from_db()
    base = replay_traffic(v7, *PERIOD, costs=cost_settings())
    lower = replay_traffic(draft, *PERIOD, costs=cost_settings())
    assert lower["predicted_slm_usage"]["value"] < base["predicted_slm_usage"]["value"]
    assert lower["moved_to_strong"] > 0 and lower["moved_to_weak"] == 0
    assert lower["predicted_cost_per_1k"] > base["predicted_cost_per_1k"]
    assert lower["predicted_cost_per_1k_hourly"] > base["predicted_cost_per_1k_hourly"]


def test_the_replay_command_prints_a_summary_and_json(headline, v7):
    out = StringIO()
    call_command(
        "replay", "--version", "v7", "--since", PERIOD[0].isoformat(), "--until",
        PERIOD[1].isoformat(), stdout=out,
    )  # fmt: skip
    assert "v7 vs live" in out.getvalue() and "McNemar" in out.getvalue()
    out = StringIO()
    call_command(
        "replay", "--version", "v7", "--since", PERIOD[0].isoformat(), "--until",
        PERIOD[1].isoformat(), "--json", stdout=out,
    )  # fmt: skip
    assert json.loads(out.getvalue())["traffic"]["requests"] == Trace.objects.count()


def test_the_replay_command_names_a_bad_argument(v7):
    with pytest.raises(CommandError, match="since"):
        call_command(
            "replay", "--version", "v7", "--since", "yesterday", "--until", "2026-11-20T00:00Z"
        )
    with pytest.raises(CommandError, match="No version"):
        call_command(
            "replay",
            "--version",
            "v99",
            "--since",
            "2026-11-19T00:00Z",
            "--until",
            "2026-11-20T00:00Z",
        )
