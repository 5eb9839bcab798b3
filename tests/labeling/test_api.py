"""Labeling API: who may do what, blind batches stay blind, exports stream."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from labeling import services
from labeling.models import Batch, Label, SyncRun

from .conftest import TRAFFIC_END

pytestmark = pytest.mark.django_db
BASE = "/api/v1"
PERIOD = {
    "period_start": (TRAFFIC_END - timedelta(days=3)).isoformat(),
    "period_end": TRAFFIC_END.isoformat(),
}


@pytest.fixture
def batch(synced, make_batch):
    return make_batch(size=10, seed=2)


def test_operator_draws_a_batch_through_the_api(api, synced, operator):
    response = api.as_(operator).post(
        f"{BASE}/batches/", {"kind": "headline", "size": 15, "seed": 9, **PERIOD}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["items"] == 15 and response.json()["seed"] == 9


def test_batch_validation_names_fields(api, synced, operator):
    response = api.as_(operator).post(
        f"{BASE}/batches/", {"kind": "headline", "size": 0, **PERIOD}, format="json"
    )
    assert response.status_code == 400 and "size" in response.json()


def test_reviewer_claims_and_labels_through_the_api(api, batch, reviewer):
    client = api.as_(reviewer)
    item = client.post(f"{BASE}/batches/{batch.pk}/next/").json()
    # Blind batch: nothing that tells the routing decision, directly or indirectly.
    assert set(item) == {"id", "position", "reviews_required", "trace", "labels"}
    assert not {"tier", "tags", "cost_usd", "ttft_s", "latency_s"} & set(item["trace"])
    response = client.post(
        f"{BASE}/labels/",
        {"item": item["id"], "value": "strong_needed", "reasons": ["multi-file"]},
        format="json",
    )
    assert response.status_code == 201
    assert Label.objects.get().reviewer == reviewer


def test_a_reviewer_undoes_their_last_label_through_the_api(api, batch, reviewer, make_user):
    client = api.as_(reviewer)
    item = client.post(f"{BASE}/batches/{batch.pk}/next/").json()
    label = client.post(
        f"{BASE}/labels/", {"item": item["id"], "value": "weak_sufficient"}, format="json"
    ).json()
    url = f"{BASE}/batches/{batch.pk}/undo/"
    assert api.as_(make_user("rob", "reviewer")).post(url).status_code == 409  # has none

    response = api.as_(reviewer).post(url, {"label": label["id"]}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == item["id"] and body["labels"] == []
    assert "tier" not in body["trace"]  # still blind
    assert not Label.objects.exists()
    again = client.post(url, {"label": label["id"]}, format="json")
    assert again.status_code == 409 and "undone already" in again.json()["detail"]
    assert client.post(f"{BASE}/batches/{batch.pk}/next/").json()["id"] == item["id"]


def test_operators_see_the_tier_in_blind_batches(api, batch, operator):
    items = api.as_(operator).get(f"{BASE}/batches/{batch.pk}/items/").json()["results"]
    assert "tier" in items[0]["trace"]


def test_reviewers_see_only_their_own_labels_and_cannot_export(api, batch, reviewer, make_user):
    other = make_user("rob", "reviewer")
    item = batch.items.first()
    services.label_submit(reviewer=other, item=item, value="strong_needed")
    client = api.as_(reviewer)
    assert client.get(f"{BASE}/labels/").json()["results"] == []
    items = client.get(f"{BASE}/batches/{batch.pk}/items/").json()["results"]
    assert all(i["labels"] == [] for i in items)
    assert client.get(f"{BASE}/batches/{batch.pk}/export/").status_code == 403


def test_label_export_as_csv_and_jsonl(api, batch, reviewer, operator):
    for item in batch.items.all()[:3]:
        services.label_submit(reviewer=reviewer, item=item, value="weak_sufficient")
    client = api.as_(operator)
    response = client.get(f"{BASE}/batches/{batch.pk}/export/", {"as": "jsonl"})
    rows = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    assert len(rows) == 3 and rows[0]["value"] == "weak_sufficient"
    response = client.get(f"{BASE}/batches/{batch.pk}/export/", {"as": "csv"})
    table = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["reviewer"] for r in table] == ["rita"] * 3
    assert client.get(f"{BASE}/batches/{batch.pk}/export/", {"as": "xls"}).status_code == 400


def test_csv_export_defuses_formulas(api, batch, reviewer, operator):
    item = batch.items.first()
    services.label_submit(
        reviewer=reviewer, item=item, value="weak_sufficient", comment="=HYPERLINK(1)"
    )
    response = api.as_(operator).get(f"{BASE}/batches/{batch.pk}/export/", {"as": "csv"})
    [row] = csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))
    assert row["comment"] == "'=HYPERLINK(1)"
    assert row["final_value"] == ""  # empty cells stay empty


def test_csv_export_defuses_tab_and_carriage_return_formulas(api, batch, reviewer, operator):
    item = batch.items.first()
    services.label_submit(reviewer=reviewer, item=item, value="weak_sufficient", comment="\t=1+1")
    response = api.as_(operator).get(f"{BASE}/batches/{batch.pk}/export/", {"as": "csv"})
    [row] = csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))
    assert row["comment"] == "'\t=1+1"


def test_sync_runs_are_started_by_operators(api, langfuse, operator, reviewer):
    assert api.as_(reviewer).post(f"{BASE}/sync-runs/", {}, format="json").status_code == 403
    response = api.as_(operator).post(
        f"{BASE}/sync-runs/",
        {"since": PERIOD["period_start"], "until": PERIOD["period_end"]},
        format="json",
    )
    assert response.status_code == 202
    assert SyncRun.objects.get().status == "running"  # the worker takes it from here
    assert api.as_(operator).post(f"{BASE}/sync-runs/", {}, format="json").status_code == 409


def test_trace_listing_is_for_operators_and_costs_fixed_queries(api, synced, operator, reviewer):
    assert api.as_(reviewer).get(f"{BASE}/traces/").status_code == 403
    client = api.as_(operator)
    client.get(f"{BASE}/traces/")
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"{BASE}/traces/", {"tier": "weak"})
    assert response.status_code == 200 and len(response.json()["results"]) == 50
    assert len(queries) <= 4


def test_adjudication_is_for_operators_and_disputed_items(
    api, batch, operator, reviewer, make_user
):
    item, undisputed = batch.items.all()[:2]
    batch.items.filter(pk=item.pk).update(reviews_required=2)
    services.label_submit(reviewer=reviewer, item=item, value="weak_sufficient")
    services.label_submit(reviewer=make_user("rob", "reviewer"), item=item, value="strong_needed")
    body = {"value": "strong_needed"}
    assert (
        api.as_(reviewer)
        .post(f"{BASE}/items/{item.pk}/adjudicate/", body, format="json")
        .status_code
        == 403
    )
    response = api.as_(operator).post(f"{BASE}/items/{item.pk}/adjudicate/", body, format="json")
    assert response.status_code == 200 and response.json()["final_value"] == "strong_needed"
    response = api.as_(operator).post(
        f"{BASE}/items/{undisputed.pk}/adjudicate/", body, format="json"
    )
    assert response.status_code == 409 and "not disputed" in response.json()["detail"]


@pytest.mark.parametrize(
    "options,field",
    [
        ({"char_margin": "x"}, "char_margin"),
        ({"min_cost_usd": "abc"}, "min_cost_usd"),
        ({"stratify_by_tier": "maybe"}, "stratify_by_tier"),
        ({"max_chars": 0}, "max_chars"),
        ({"min_cost": 0.5}, "min_cost"),  # a typo must not pass silently
    ],
)
def test_bad_batch_options_are_a_400_naming_the_option(api, synced, operator, options, field):
    response = api.as_(operator).post(
        f"{BASE}/batches/", {"kind": "fp", "size": 5, "options": options, **PERIOD}, format="json"
    )
    assert response.status_code == 400, response.content
    assert field in response.json()["options"]
    assert not Batch.objects.exists()


def test_batch_options_are_read_with_their_types(api, synced, operator):
    client = api.as_(operator)
    response = client.post(
        f"{BASE}/batches/",
        {"kind": "headline", "size": 20, "seed": 3, "options": {"stratify_by_tier": "false"}}
        | PERIOD,
        format="json",
    )
    assert response.status_code == 201, response.json()
    batch = Batch.objects.get()
    assert batch.strategy["options"] == {"stratify_by_tier": False}
    assert set(batch.items.values_list("stratum", flat=True)) == {""}  # not stratified
    response = client.post(
        f"{BASE}/batches/",
        {"kind": "fp", "size": 5, "options": {"min_cost_usd": "0.02", "max_chars": "300"}} | PERIOD,
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["strategy"]["options"] == {"min_cost_usd": 0.02, "max_chars": 300}


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", "/batches/"),
        ("get", "/labels/"),
        ("get", "/sync-runs/"),
        ("post", "/labels/"),
        ("post", "/batches/{id}/next/"),
        ("post", "/batches/{id}/undo/"),
    ],
)
def test_users_without_a_role_get_nothing(api, batch, nobody, method, path):
    response = getattr(api.as_(nobody), method)(BASE + path.format(id=batch.pk), {}, format="json")
    assert response.status_code == 403


def test_reviewers_cannot_draw_batches(api, synced, reviewer):
    response = api.as_(reviewer).post(
        f"{BASE}/batches/", {"kind": "headline", "size": 5, **PERIOD}, format="json"
    )
    assert response.status_code == 403
    assert not Batch.objects.exists()


def test_the_api_reveals_the_tier_of_a_blind_item_after_the_reviewers_own_judgement(
    api, batch, reviewer, make_user
):
    """The page's rule, from the one visibility selector: blind until you judged it."""
    client = api.as_(reviewer)
    first = client.post(f"{BASE}/batches/{batch.pk}/next/").json()
    assert "tier" not in first["trace"] and "weight" not in first
    client.post(f"{BASE}/labels/", {"item": first["id"], "value": "skipped"}, format="json")
    second = client.post(f"{BASE}/batches/{batch.pk}/next/").json()
    client.post(f"{BASE}/labels/", {"item": second["id"], "value": "strong_needed"},
                format="json")  # fmt: skip
    other = make_user("rob", "reviewer")
    services.label_submit(
        reviewer=other, item=batch.items.get(pk=first["id"]), value="weak_sufficient"
    )

    items = {i["id"]: i for i in client.get(f"{BASE}/batches/{batch.pk}/items/").json()["results"]}

    assert "tier" in items[second["id"]]["trace"] and "weight" in items[second["id"]]
    assert "tier" not in items[first["id"]]["trace"]  # a skip is no judgement
    assert [label["reviewer"] for label in items[first["id"]]["labels"]] == ["rita"]  # not rob's
    untouched = [i for i in items.values() if i["id"] not in (first["id"], second["id"])]
    assert untouched and all("tier" not in i["trace"] for i in untouched)


def test_the_batch_api_reports_progress_and_agreement(api, batch, reviewer, operator):
    client = api.as_(reviewer)
    item = client.post(f"{BASE}/batches/{batch.pk}/next/").json()
    client.post(f"{BASE}/labels/", {"item": item["id"], "value": "weak_sufficient"}, format="json")

    detail = client.get(f"{BASE}/batches/{batch.pk}/").json()
    listed = client.get(f"{BASE}/batches/").json()["results"][0]

    progress = detail["progress"]
    assert progress["items"] == batch.items.count() and progress["labels"] == 1
    assert progress["remaining"] == progress["items"] - progress["done"]
    assert listed["progress"] == progress
    assert set(detail["agreement"]) == {"pairs", "agreed", "kappa"}
