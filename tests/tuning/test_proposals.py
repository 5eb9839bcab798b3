"""Proposals on the database: every labeled request, the command, the API, pages, drafts."""

import json

import numpy as np
import pytest
from django.core.management import call_command
from django.urls import reverse

from audit.models import AuditEvent
from labeling.services import label_import_create
from routing.engine import build_classifier
from routing.models import ClassifierVersion, VersionStatus
from tuning import services
from tuning.models import Job, JobKind, JobStatus

from .conftest import PERIOD

pytestmark = pytest.mark.django_db

WINDOW = {"since": PERIOD[0].isoformat(), "until": PERIOD[1].isoformat()}


def proposal(operator, **params):
    job = services.job_start(
        actor=operator, kind=JobKind.PROPOSAL, params={"base": "v7", **WINDOW, **params}
    )
    return services.job_run(job.pk)


def test_a_proposal_counts_every_request_a_collapsed_item_stands_for(v7, operator, headline):
    job = proposal(operator, labels=["headline"])

    assert job.status == JobStatus.SUCCEEDED, job.error
    counts = job.result["labels"]["counts"]["headline"]
    assert counts["requests"] == 300  # the batch drew 300 requests
    assert counts["inputs"] == headline.items.count() < 300  # duplicates collapsed
    assert job.result["estimate"]["misroute"]["n"] > 0
    assert job.result["estimate"]["requests"] == 300


def test_a_proposal_searches_with_cross_validated_estimates_and_evidence(
    v7, operator, headline, discovery
):
    job = proposal(operator)

    result = job.result
    assert result["folds"] == 10 and len(result["fold_rules"]) == 10
    assert set(result["labels"]["counts"]) == {"headline", "discovery", "imported"}
    assert result["slm_source"] == "traffic" and result["traffic_requests"] > 0
    for key in ("misroute", "fn_rate", "fp_rate", "slm_share"):
        rate = result["estimate"][key]
        assert rate["low"] <= rate["value"] <= rate["high"]
    # In sample is never worse than out of sample: the search saw those labels.
    assert result["in_sample"]["misroute"]["value"] <= result["estimate"]["misroute"]["value"]
    for change in result["changes"]:
        assert change["op"] in ("add", "remove", "threshold")
        assert change["evidence"]["fixed_inputs"] >= 0
    assert result["beats_base"] == (
        result["mcnemar"]["p_mid"] is not None
        and result["mcnemar"]["p_mid"] < 0.05
        and result["estimate"]["misroute"]["value"] < result["base"]["misroute"]["value"]
        and bool(result["changes"])
    )


def test_pinned_keywords_stay_and_the_change_cap_holds(v7, operator, headline, discovery):
    job = proposal(operator, pinned=["debug", "설계", "design", "디버그"], max_changes=2)

    removed = {c["term"] for c in job.result["changes"] if c["op"] == "remove"}
    assert not removed & {"debug", "설계", "design", "디버그"}
    assert sum(c["op"] in ("add", "remove") for c in job.result["changes"]) <= 2


def test_imported_labels_are_learned_from(v7, operator):
    rows = []
    for i in range(30):
        rows.append({"messages": [{"role": "user", "content": f"교착상태 원인 {i}번"}],
                     "label": "strong", "id": f"s{i}"})  # fmt: skip
        rows.append({"messages": [{"role": "user", "content": f"리스트 뒤집기 {i}"}],
                     "label": "weak", "id": f"w{i}"})  # fmt: skip
    data = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode()
    label_import_create(actor=operator, data=data, filename="labels.jsonl")

    job = proposal(operator, labels=["imported"], slm_band=[0.3, 0.7])

    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result["slm_source"] == "labels (out of fold)"
    added = [c["term"] for c in job.result["changes"] if c["op"] == "add"]
    assert added and set(added) <= {"교착상태", "교착", "상태", "원인"}
    assert job.result["beats_base"] is True


def test_too_few_labels_fail_with_a_message_naming_the_sources(v7, operator):
    job = proposal(operator)

    assert job.status == JobStatus.FAILED
    assert "labels:" in job.error and "headline 0 inputs" in job.error


def test_the_command_prints_json_and_makes_the_draft_when_it_beats_the_base(
    v7, operator, headline, discovery, capsys
):
    call_command("propose_version", "--base", "v7", "--name", "v9", "--json",
                 "--since", WINDOW["since"], "--until", WINDOW["until"])  # fmt: skip

    out = json.loads(capsys.readouterr().out)
    assert {"base", "name", "changes", "estimate", "in_sample"} <= set(out)
    assert set(out["estimate"]["misroute"]) >= {"value", "low", "high", "n"}
    assert out["beats_base"] is True and out["draft"] == "v9"
    version = ClassifierVersion.objects.get(name="v9")
    assert version.status == VersionStatus.DRAFT and version.parent.name == "v7"
    assert Job.objects.get(pk=out["proposal"]).draft == version


def test_the_command_exits_3_when_nothing_beats_the_base(v7, headline):
    with pytest.raises(SystemExit) as exit_:
        call_command("propose_version", "--base", "v7", "--max-changes", "0", "--slm", "0-1",
                     "--since", WINDOW["since"], "--until", WINDOW["until"])  # fmt: skip

    assert exit_.value.code == 3


def test_the_command_refuses_bad_settings_naming_them(v7):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="base: No version named 'v99'"):
        call_command("propose_version", "--base", "v99")
    with pytest.raises(CommandError, match="slm"):
        call_command("propose_version", "--base", "v7", "--slm", "high")


def test_the_api_proposes_then_drafts_once(api, operator, headline, discovery):
    client = api.as_(operator)
    response = client.post("/api/v1/proposals/", {"base": "v7", **WINDOW}, format="json")
    assert response.status_code == 202
    job = services.job_run(response.json()["id"])  # what the worker does

    assert client.get(f"/api/v1/proposals/{job.pk}/").json()["result"]["changes"]
    made = client.post(f"/api/v1/proposals/{job.pk}/draft/", {"name": "v8"}, format="json")

    assert made.status_code == 201 and made.json() == {"version": "v8", "proposal": job.pk}
    version = ClassifierVersion.objects.get(name="v8")
    result = job.result
    assert version.token_threshold == result["rule"]["token_threshold"]
    keywords = set(version.keyword_set.keywords.values_list("normalized", flat=True))
    assert keywords == set(result["rule"]["keywords"])
    assert AuditEvent.objects.filter(action="proposal.draft", object_id=str(version.pk)).exists()
    again = client.post(f"/api/v1/proposals/{job.pk}/draft/", {"name": "v10"}, format="json")
    assert again.status_code == 409


def test_the_api_refuses_a_name_in_use_and_bad_settings(api, operator, v7):
    client = api.as_(operator)

    taken = client.post("/api/v1/proposals/", {"base": "v7", "name": "v7"}, format="json")
    bad = client.post("/api/v1/proposals/", {"base": "v7", "slm_low": 0.8, "slm_high": 0.6},
                      format="json")  # fmt: skip
    unknown = client.post("/api/v1/proposals/", {"base": "nope"}, format="json")

    assert taken.status_code == 400 and "name" in taken.json()
    assert bad.status_code == 400 and "slm_high" in bad.json()
    assert unknown.status_code == 400 and "base" in unknown.json()
    assert not Job.objects.exists()


def test_reviewers_read_proposals_but_cannot_propose_or_draft(api, reviewer, operator, headline):
    job = proposal(operator, labels=["headline"])
    client = api.as_(reviewer)

    assert client.get("/api/v1/proposals/").status_code == 200
    assert client.post("/api/v1/proposals/", {"base": "v7"}, format="json").status_code == 403
    assert client.post(f"/api/v1/proposals/{job.pk}/draft/", {"name": "x"}).status_code == 403


def test_the_pages_propose_show_and_draft(client, operator, headline, discovery):
    client.force_login(operator)
    form = client.get(reverse("tuning:proposals")).content.decode()
    assert "Propose next version" in form and 'name="labels"' in form

    response = client.post(reverse("tuning:proposals"), {
        "base": "v7", "name": "v8", "labels": ["headline", "discovery"],
        "since": PERIOD[0].date().isoformat(), "until": PERIOD[1].date().isoformat(),
    })  # fmt: skip
    job = Job.objects.get(kind=JobKind.PROPOSAL)
    assert response.status_code == 302 and job.params["labels"] == ["headline", "discovery"]
    services.job_run(job.pk)
    page = client.get(reverse("tuning:job", args=[job.pk])).content.decode()
    assert "out of sample" in page and "in sample" in page and "Create draft" in page
    assert "headline" in page and "request" in page  # the label sources are stated

    made = client.post(reverse("tuning:proposal-draft", args=[job.pk]), {"name": "v8"})
    assert made.status_code == 302
    version_page = client.get(made.url).content.decode()
    assert f"proposal #{job.pk}" in version_page.lower()


def test_a_reviewer_cannot_start_a_proposal_from_the_page(client, reviewer, v7):
    client.force_login(reviewer)

    assert client.get(reverse("tuning:proposals")).status_code == 200
    assert client.post(reverse("tuning:proposals"), {"base": "v7"}).status_code == 403
    assert not Job.objects.exists()


def test_a_hold_out_is_never_searched_and_is_scored_on_its_own(v7, operator, headline, discovery):
    job = proposal(operator, holdout=0.3, seed=5)

    result = job.result
    used, held = set(result["label_keys"]), set(result["holdout_keys"])
    assert used and held and not used & held
    total = sum(c["inputs"] for c in result["labels"]["counts"].values())
    assert len(used) + len(held) == total
    h = result["holdout"]
    assert h["proposal"]["inputs"] == len(held)
    assert h["mcnemar"]["b"] + h["mcnemar"]["c"] <= len(held)


def test_replaying_a_proposed_draft_warns_and_compares_on_unseen_labels(
    v7, operator, headline, discovery
):
    from tuning.replay import replay_labeled

    job = proposal(operator, labels=["headline"])
    draft = services.proposal_draft(actor=operator, job=job, name="v8")

    on_headline = replay_labeled(draft, *PERIOD, baseline=v7)
    on_discovery = replay_labeled(draft, *PERIOD, baseline=v7, sources=("discovery",))

    seen = on_headline["built_from"]["seen"]
    assert seen == on_headline["labels"]["headline"]["inputs"] > 0
    assert (
        "in sample" in on_headline["warning"]
        and "v8 was made by proposal" in on_headline["warning"]
    )
    assert on_headline["built_from"]["unseen_comparison"]["items"] == 0
    # The discovery labels were never searched on (but where a trace is in both batches).
    assert on_discovery["built_from"]["unseen"] > on_discovery["built_from"]["seen"]
    assert on_discovery["labels"]["discovery"]["inputs"] > 0


def test_a_proposal_that_does_not_beat_the_base_drafts_only_when_forced(api, operator, headline):
    job = proposal(operator, labels=["headline"], max_changes=1, slm_band=[0, 1])
    if job.result["beats_base"] or not job.result["changes"]:
        job.result = {**job.result, "beats_base": False}  # the case under test
        job.save(update_fields=["result"])
    client = api.as_(operator)

    refused = client.post(f"/api/v1/proposals/{job.pk}/draft/", {"name": "v8"}, format="json")
    forced = client.post(
        f"/api/v1/proposals/{job.pk}/draft/", {"name": "v8", "force": True}, format="json"
    )

    assert refused.status_code == 409 and "does not beat" in refused.json()["detail"]
    assert forced.status_code == 201
    assert AuditEvent.objects.get(action="proposal.draft").after["forced"] is True


def test_a_non_numeric_proposal_or_import_id_is_a_404(api, operator):
    client = api.as_(operator)

    assert client.post("/api/v1/proposals/abc/draft/", {}, format="json").status_code == 404
    assert client.get("/api/v1/proposals/abc/").status_code == 404
    assert client.post("/api/v1/label-imports/abc/undo/").status_code == 404


def test_a_scorer_proposal_trains_estimates_and_drafts_a_scorer_version(
    api, operator, headline, discovery
):
    client = api.as_(operator)
    response = client.post(
        "/api/v1/proposals/",
        {"kind": "scorer", "base": "v7", "folds": 4, "pinned": ["교착상태"], "holdout": 0.2,
         **WINDOW},
        format="json",
    )  # fmt: skip
    assert response.status_code == 202, response.content
    job = services.job_run(response.json()["id"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    result = job.result

    assert result["kind"] == "scorer" and result["rule"]["keywords"] == ["교착상태"]
    assert result["model"]["features"] == len(result["scorer"]["features"]) > 0
    assert result["changes"][0]["op"] == "scorer" and len(result["fold_rules"]) == 4
    assert result["labels"]["counts"]["headline"]["requests"] == 300
    assert result["holdout"]["proposal"]["inputs"] > 0  # decided by the engine, unseen
    made = client.post(f"/api/v1/proposals/{job.pk}/draft/", {"name": "v9", "force": True},
                       format="json")  # fmt: skip
    assert made.status_code == 201, made.content
    version = ClassifierVersion.objects.get(name="v9")
    assert version.scorer == result["scorer"] and version.config["schema"].endswith("/2")
    assert version.token_threshold == result["rule"]["token_threshold"]
    assert list(version.keyword_set.keywords.values_list("text", flat=True)) == ["교착상태"]
    assert f"proposal {job.pk}" in version.notes and "cross-validated" in version.notes
    event = AuditEvent.objects.get(action="proposal.draft", object_id=str(version.pk))
    assert event.after["kind"] == "scorer"


def test_the_command_proposes_a_scorer_and_prints_what_pushes_each_way(
    v7, operator, headline, discovery, capsys
):
    call_command("propose_version", "--base", "v7", "--kind", "scorer", "--folds", "3",
                 "--since", WINDOW["since"], "--until", WINDOW["until"])  # fmt: skip
    text = capsys.readouterr().out  # it beats v7 (exit status 0), as the API test's does

    assert "(scorer) from v7" in text and "weighted substrings" in text
    assert "pushes strong:" in text and "pushes weak:" in text
    assert "misroute  out of sample" in text


def test_a_keyword_proposal_from_a_scorer_base_is_refused_naming_the_base(api, operator, draft):
    from routing import services as routing_services

    routing_services.version_update_draft(
        actor=operator,
        version=draft,
        scorer={"bias": 0.0, "threshold": 1.0, "features": [["race", 2.0]]},
    )
    client = api.as_(operator)

    response = client.post("/api/v1/proposals/", {"base": "v8"}, format="json")
    bad_kind = client.post("/api/v1/proposals/", {"base": "v7", "kind": "neural"}, format="json")

    assert response.status_code == 400 and "has a scorer" in str(response.json()["base"])
    assert bad_kind.status_code == 400 and "kind" in bad_kind.json()


def test_the_pages_propose_a_scorer_and_show_its_features(client, operator, headline, discovery):
    client.force_login(operator)
    form = client.get(reverse("tuning:proposals")).content.decode()
    assert 'name="kind" value="scorer"' in form

    client.post(reverse("tuning:proposals"), {
        "kind": "scorer", "base": "v7", "labels": ["headline", "discovery"], "folds": "3",
        "since": PERIOD[0].date().isoformat(), "until": PERIOD[1].date().isoformat(),
    })  # fmt: skip
    job = Job.objects.get(kind=JobKind.PROPOSAL)
    assert job.params["kind"] == "scorer"
    job = services.job_run(job.pk)
    page = client.get(reverse("tuning:job", args=[job.pk])).content.decode()

    assert "Scorer proposal" in page and "Pushes strong" in page and "Pushes weak" in page
    top = job.result["model"]["top_strong"][0][0]
    from django.utils.html import escape

    assert f"<code>{escape(top)}</code>" in page
    assert "scorer of" in page and "cap" in page


def test_a_scorer_retrained_from_a_scorer_base_is_compared_with_the_base_as_it_decides(
    v7, operator, headline, discovery
):
    from routing import services as routing_services
    from tuning.proposals import labels_from
    from tuning.selectors import training_rows

    first = proposal(operator, kind="scorer", folds=3)
    v8 = services.proposal_draft(actor=operator, job=first, name="v8", force=True)
    v8 = routing_services.version_freeze(actor=operator, version=v8)

    again = proposal(operator, kind="scorer", folds=3, base="v8")

    assert again.status == JobStatus.SUCCEEDED, again.error
    rows, _ = training_rows(*PERIOD)
    classifier = build_classifier(v8.config)
    labels = labels_from(rows, None)
    wrong = [
        (classifier.classify_text(r.text, r.turn_count).tier == "strong") != bool(y)
        for r, y in zip(rows, labels.needed, strict=True)
    ]
    expected = float(np.dot(wrong, labels.weight) / labels.weight.sum())
    assert again.result["base"]["misroute"]["value"] == pytest.approx(expected)
    assert again.result["base_version"] == "v8"
