"""The versions API: behaviour, validation, conflicts, and who may do what."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from routing import services
from routing.models import ClassifierVersion, VersionStatus

pytestmark = pytest.mark.django_db

BASE = "/api/v1"


def test_listing_versions_shows_status_and_reported_figures(api, reviewer, v7):
    response = api.as_(reviewer).get(f"{BASE}/versions/")
    assert response.status_code == 200
    [row] = [r for r in response.json()["results"] if r["name"] == "v7"]
    assert row["status"] == "frozen"
    assert row["reported"]["misroute_rate"] == "4.20"
    assert len(row["keywords"]) == 17


def test_listing_versions_costs_a_fixed_number_of_queries(api, reviewer, v7, operator):
    for i in range(5):
        services.version_copy(actor=operator, source=v7, name=f"d{i}")
    client = api.as_(reviewer)
    client.get(f"{BASE}/versions/")  # warm up the session/user queries
    with CaptureQueriesContext(connection) as queries:
        assert client.get(f"{BASE}/versions/").status_code == 200
    assert len(queries) <= 5


def test_filtering_versions_by_status(api, reviewer, draft):
    response = api.as_(reviewer).get(f"{BASE}/versions/", {"status": "draft"})
    assert [r["name"] for r in response.json()["results"]] == ["v8"]


def test_operator_drafts_edits_diffs_and_freezes_a_version(api, operator, v7):
    client = api.as_(operator)
    response = client.post(f"{BASE}/versions/v7/copy/", {"name": "v8"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["parent"] == "v7"

    response = client.post(
        f"{BASE}/versions/v8/keywords/",
        {"text": "benchmark", "rationale": "perf comparisons"},
        format="json",
    )
    assert response.status_code == 201
    complex_id = next(
        k["id"]
        for k in client.get(f"{BASE}/versions/v8/").json()["keywords"]
        if k["text"] == "complex"
    )
    assert client.delete(f"{BASE}/versions/v8/keywords/{complex_id}/").status_code == 204
    response = client.patch(
        f"{BASE}/versions/v8/", {"token_threshold": 450, "byte_threshold": 600}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["byte_threshold"] == 600

    diff = client.get(f"{BASE}/versions/v8/diff/", {"against": "v7"}).json()
    assert [k["text"] for k in diff["keywords_added"]] == ["benchmark"]
    assert [k["text"] for k in diff["keywords_removed"]] == ["complex"]
    assert {"field": "token_threshold", "old": 500, "new": 450} in diff["thresholds_changed"]
    assert "`benchmark`" in diff["markdown"]

    response = client.post(f"{BASE}/versions/v8/freeze/")
    assert response.status_code == 200
    assert response.json()["status"] == "frozen"
    config = client.get(f"{BASE}/versions/v8/config/").json()
    assert config["version"] == "v8" and config["sha256"] == response.json()["config_sha256"]


def test_creating_a_draft_from_scratch(api, operator):
    response = api.as_(operator).post(
        f"{BASE}/versions/",
        {
            "name": "tiny",
            "keywords": [{"text": "설계"}, {"text": "design", "language": "en"}],
            "token_threshold": 300,
            "turn_threshold": 4,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "draft"
    assert [(k["text"], k["language"]) for k in body["keywords"]] == [
        ("설계", "ko"),
        ("design", "en"),
    ]


def test_invalid_drafts_get_field_level_errors(api, operator):
    response = api.as_(operator).post(
        f"{BASE}/versions/",
        {
            "name": "bad",
            "keywords": [{"text": "x"}, {"text": "X"}],
            "token_threshold": 0,
            "turn_threshold": 5,
        },
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert "duplicates" in " ".join(body["keywords"])
    assert "positive integer" in " ".join(body["token_threshold"])
    assert not ClassifierVersion.objects.filter(name="bad").exists()


def test_editing_a_frozen_version_is_a_conflict(api, operator, v7):
    client = api.as_(operator)
    response = client.patch(f"{BASE}/versions/v7/", {"token_threshold": 1}, format="json")
    assert response.status_code == 409
    assert "frozen" in response.json()["detail"]
    assert (
        client.post(f"{BASE}/versions/v7/keywords/", {"text": "x"}, format="json").status_code
        == 409
    )
    assert client.post(f"{BASE}/versions/v7/freeze/").status_code == 409
    assert client.delete(f"{BASE}/versions/v7/").status_code == 409


def test_a_duplicate_name_is_refused(api, operator, v7):
    response = api.as_(operator).post(f"{BASE}/versions/v7/copy/", {"name": "v7"}, format="json")
    assert response.status_code == 400
    assert "already exists" in response.json()["name"][0]


def test_retire_then_retire_again_is_a_conflict(api, operator, v7):
    client = api.as_(operator)
    assert (
        client.post(f"{BASE}/versions/v7/retire/", {"reason": "old"}, format="json").json()[
            "status"
        ]
        == "retired"
    )
    assert client.post(f"{BASE}/versions/v7/retire/").status_code == 409


def test_classify_against_several_versions(api, reviewer, v7, draft, operator):
    services.keyword_add(actor=operator, version=draft, text="리뷰")
    response = api.as_(reviewer).post(
        f"{BASE}/classify/",
        {"messages": [{"role": "user", "content": "이 PR 리뷰 부탁해"}], "versions": ["v7", "v8"]},
        format="json",
    )
    assert response.status_code == 200
    results = {r["version"]: r for r in response.json()["results"]}
    assert results["v7"]["tier"] == "weak"
    assert results["v8"]["tier"] == "strong"
    assert results["v8"]["matched_keywords"] == ["리뷰"]
    span = results["v8"]["spans"][0]
    assert response.json()["text"][span["start"] : span["end"]] == "리뷰"


def test_classify_defaults_to_every_version_not_retired(api, reviewer, v7, draft):
    response = api.as_(reviewer).post(
        f"{BASE}/classify/", {"messages": [{"role": "user", "content": "hi"}]}, format="json"
    )
    assert sorted(r["version"] for r in response.json()["results"]) == ["v7", "v8"]


@pytest.mark.parametrize(
    "body,field",
    [
        ({"messages": "hello"}, "messages"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages"),
        ({"messages": [], "versions": ["nope"]}, "versions"),
        ({}, "messages"),
    ],
)
def test_classify_rejects_bad_input_naming_the_field(api, reviewer, v7, body, field):
    response = api.as_(reviewer).post(f"{BASE}/classify/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_classify_rejects_a_lone_surrogate_with_a_400(api, reviewer, v7):
    # JSON's \ud800 escape decodes to a lone surrogate, which no UTF-8 matcher can read.
    body = b'{"messages": [{"role": "user", "content": "a\\ud800b"}]}'
    response = api.as_(reviewer).post(
        f"{BASE}/classify/", data=body, content_type="application/json"
    )
    assert response.status_code == 400
    assert "lone surrogate" in response.json()["messages"][0]


def test_keyword_sets_are_readable(api, reviewer, v7):
    response = api.as_(reviewer).get(f"{BASE}/keyword-sets/{v7.keyword_set_id}/")
    assert response.json()["frozen"] is True
    assert response.json()["version"] == "v7"


def test_token_auth_works_for_automation(api, operator, v7):
    response = api.post(
        f"{BASE}/auth/token/", {"username": "otto", "password": "pw-for-tests-only"}, format="json"
    )
    token = response.json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.post(f"{BASE}/versions/v7/copy/", {"name": "v9"}, format="json").status_code == 201


def test_session_auth_needs_csrf_for_writes(client, operator, v7):
    from rest_framework.test import APIClient

    strict = APIClient(enforce_csrf_checks=True)
    strict.login(username="otto", password="pw-for-tests-only")
    response = strict.post(f"{BASE}/versions/v7/copy/", {"name": "v9"}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_openapi_schema_and_docs(api, reviewer):
    client = api.as_(reviewer)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/versions/{name}/freeze/" in paths
    assert "/api/v1/classify/" in paths
    client.force_login(reviewer)  # the docs are a page: a browser session, not a token
    assert client.get("/api/docs/").status_code == 200


def test_openapi_schema_and_docs_need_a_login(api):
    assert api.get("/api/schema/").status_code in (401, 403)
    docs = api.get("/api/docs/")  # a person is sent to log in, not shown a bare 403
    assert docs.status_code == 302 and docs.url.startswith("/login/")


# --- permissions: every endpoint, allowed and denied -------------------------------------

READS = [
    ("get", "/versions/"),
    ("get", "/versions/v7/"),
    ("get", "/versions/v7/config/"),
    ("get", "/versions/v8/diff/?against=v7"),
    ("get", "/keyword-sets/"),
    ("get", "/keyword-sets/{ks}/"),
    ("post", "/classify/"),
]
WRITES = [
    ("post", "/versions/", 201),
    ("post", "/versions/v7/copy/", 201),
    ("patch", "/versions/v8/", 200),
    ("post", "/versions/v8/keywords/", 201),
    ("delete", "/versions/v8/keywords/{kw}/", 204),
    ("post", "/versions/v8/freeze/", 200),
    ("post", "/versions/v7/retire/", 200),
    ("delete", "/versions/v8/", 204),
]
BODIES = {
    "/versions/": {"name": "new", "keywords": [], "token_threshold": 9, "turn_threshold": 9},
    "/versions/v7/copy/": {"name": "v9"},
    "/versions/v8/": {"notes": "n"},
    "/versions/v8/keywords/": {"text": "zeta"},
    "/classify/": {"messages": [{"role": "user", "content": "hi"}]},
}


def _call(client, method, path, draft):
    path = path.replace("{kw}", str(draft.keyword_set.keywords.first().pk))
    path = path.replace("{ks}", str(draft.keyword_set_id))
    return getattr(client, method)(BASE + path, BODIES.get(path.split("?")[0]), format="json")


@pytest.mark.parametrize("method,path", READS)
@pytest.mark.parametrize("who", ["reviewer", "operator", "admin_user"])
def test_every_role_can_read(request, api, draft, method, path, who):
    response = _call(api.as_(request.getfixturevalue(who)), method, path, draft)
    assert response.status_code == 200


@pytest.mark.parametrize("method,path", READS)
def test_reading_needs_a_role(api, nobody, draft, method, path):
    assert _call(api.as_(nobody), method, path, draft).status_code == 403


@pytest.mark.parametrize("method,path", READS + [(m, p) for m, p, _ in WRITES])
def test_anonymous_requests_are_refused(api, draft, method, path):
    assert _call(api, method, path, draft).status_code in (401, 403)


@pytest.mark.parametrize("method,path,code", WRITES)
@pytest.mark.parametrize("who", ["operator", "admin_user"])
def test_operators_and_admins_can_write(request, api, draft, method, path, code, who):
    response = _call(api.as_(request.getfixturevalue(who)), method, path, draft)
    assert response.status_code == code, response.content


@pytest.mark.parametrize("method,path,code", WRITES)
def test_reviewers_cannot_write(api, reviewer, draft, method, path, code):
    assert _call(api.as_(reviewer), method, path, draft).status_code == 403
    draft.refresh_from_db()
    assert draft.status == VersionStatus.DRAFT


def test_the_schema_says_which_version_fields_may_be_null():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    version = schema["components"]["schemas"]["Version"]["properties"]
    assert all(version[f].get("nullable") for f in ("parent", "created_by", "frozen_by"))
    items = schema["paths"]["/api/v1/batches/{id}/items/"]["get"]["parameters"]
    assert "kind" not in {p["name"] for p in items}  # not offered, then ignored


def test_a_scorer_is_set_shown_and_refused_through_the_api(api, operator, draft):
    client = api.as_(operator)
    scorer = {"bias": -1.0, "threshold": 0.0, "features": [["race", 2.0]]}

    response = client.patch(f"{BASE}/versions/v8/", {"scorer": scorer}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["scorer"] == scorer
    bad = {**scorer, "features": [["race", 1], ["RACE", 2]]}
    response = client.patch(f"{BASE}/versions/v8/", {"scorer": bad}, format="json")
    assert response.status_code == 400
    assert "duplicates" in str(response.json())
    assert "scorer.features" in str(response.json())

    answer = client.post(
        f"{BASE}/classify/",
        {"messages": [{"role": "user", "content": "a race"}], "versions": ["v8", "v7"]},
        format="json",
    ).json()["results"]
    assert answer[0]["score"] == 1.0 and answer[0]["top_features"] == [["race", 2.0]]
    assert answer[0]["reasons"] == ["score:1>=0"]
    assert "score" not in answer[1]
