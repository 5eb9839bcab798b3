"""Keyword health on the version page: hits by source, precision, proposed removals."""

import json

import pytest
from django.urls import reverse

from labeling.services import label_import_create
from tuning.health import keyword_health

pytestmark = pytest.mark.django_db


def import_labels(operator, rows):
    data = "\n".join(
        json.dumps({"messages": [{"role": "user", "content": t}], "label": label},
                   ensure_ascii=False)
        for t, label in rows
    ).encode()  # fmt: skip
    label_import_create(actor=operator, data=data, filename="health.jsonl")


def test_a_keyword_wrong_on_its_hits_is_proposed_for_removal(v7, operator):
    import_labels(
        operator,
        [(f"turn on debug logging in lib {i}", "weak") for i in range(10)]
        + [("debug this deadlock in the scheduler", "strong")]
        + [(f"analyze the {i} heap dump for leaks", "strong") for i in range(4)],
    )

    health = {k["keyword"]: k for k in keyword_health(v7)["keywords"]}

    debug = health["debug"]
    assert debug["hits"]["imported"] == {"inputs": 11, "requests": 11}
    assert debug["precision"]["value"] == pytest.approx(1 / 11)
    assert debug["removal_fixes"]["inputs"] == 10 and debug["removal_breaks"]["inputs"] == 1
    assert debug["propose_removal"] is True
    analyze = health["analyze"]
    assert analyze["precision"]["value"] == 1.0 and analyze["propose_removal"] is False
    assert health["security"]["hits"]["imported"]["inputs"] == 0
    assert health["security"]["propose_removal"] is False


def test_keyword_health_counts_headline_requests_and_traffic(v7, headline, discovery):
    from tuning import health as module

    result = keyword_health(v7, now=module.timezone.now().replace(year=2026, month=11, day=20))

    assert result["labels"]["headline"]["requests"] == 300
    assert result["traffic_requests"] > 0
    shares = [k["traffic_share"] for k in result["keywords"]]
    assert all(0 <= s <= 1 for s in shares) and any(s > 0 for s in shares)
    for k in result["keywords"]:
        assert k["traffic_lone_share"] <= k["traffic_share"]
        if k["propose_removal"]:
            assert k["precision"]["high"] < 0.5


def test_the_version_page_loads_keyword_health_for_reviewers(client, reviewer, v7):
    client.force_login(reviewer)

    page = client.get(reverse("routing:version-detail", args=["v7"])).content.decode()
    fragment = client.get(reverse("tuning:keyword-health", args=["v7"]))

    assert reverse("tuning:keyword-health", args=["v7"]) in page
    assert fragment.status_code == 200 and "Keyword health" in fragment.content.decode()
    assert client.get(reverse("tuning:keyword-health", args=["nope"])).status_code == 404


def test_keyword_health_needs_a_role(client, nobody, v7):
    client.force_login(nobody)
    assert client.get(reverse("tuning:keyword-health", args=["v7"])).status_code == 403


def test_a_pinned_keyword_of_a_scorer_is_alone_only_where_the_score_would_not_send_strong(
    v7, draft, operator
):
    from routing import services as routing_services

    scored = routing_services.version_update_draft(
        actor=operator,
        version=draft,
        keywords=["debug"],
        scorer={"bias": -1.0, "threshold": 0.0, "features": [["deadlock", 3.0]]},
    )
    import_labels(
        operator,
        [(f"turn on debug logging in lib {i}", "weak") for i in range(14)]
        + [(f"debug this deadlock in worker {i}", "strong") for i in range(3)],
    )

    [debug] = keyword_health(scored)["keywords"]

    assert debug["hits"]["imported"]["inputs"] == 17
    # The deadlock requests are strong by their score: removing "debug" breaks none.
    assert debug["removal_fixes"]["inputs"] == 14 and debug["removal_breaks"]["inputs"] == 0
    assert debug["propose_removal"] is True
