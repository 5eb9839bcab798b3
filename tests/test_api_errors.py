"""The API's errors are JSON and documented: what schemathesis found, each pinned down."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(api, reviewer):
    response = api.as_(reviewer).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    return response.json()


def test_every_operation_documents_its_errors(schema):
    operations = [
        (path, method, op)
        for path, methods in schema["paths"].items()
        for method, op in methods.items()
    ]
    assert len(operations) > 70
    for path, method, op in operations:
        codes = set(op["responses"])
        assert "400" in codes, (method, path)
        if path != "/api/v1/auth/token/":
            assert {"401", "403"} <= codes, (method, path)
        if "{" in path:
            assert "404" in codes, (method, path)
        if method in ("post", "put", "patch", "delete"):
            assert "409" in codes, (method, path)
        if method in ("post", "put", "patch"):
            assert "415" in codes, (method, path)
    detail = schema["components"]["schemas"]["Error"]
    assert detail["required"] == ["detail"]
    throttled = schema["paths"]["/api/v1/classify/"]["post"]["responses"]
    assert "429" in throttled
    assert "429" not in schema["paths"]["/api/v1/versions/"]["get"]["responses"]


def test_the_classify_answer_is_documented_as_it_is(schema):
    ok = schema["paths"]["/api/v1/classify/"]["post"]["responses"]["200"]
    ref = ok["content"]["application/json"]["schema"]["$ref"]
    body = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(body["properties"]) == {"text", "results"}


def test_an_unknown_api_url_is_a_json_404(api, reviewer):
    response = api.as_(reviewer).get("/api/v1/versions/%C2%84/freeze/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    # Pages keep the console's own 404.
    page = Client()
    page.force_login(reviewer)
    assert b"Back to the console" in page.get("/no-such-page/").content


def test_options_on_adjudicate_describes_it(api, admin_user):
    response = api.as_(admin_user).options("/api/v1/items/1/adjudicate/")
    assert response.status_code == 200
    assert response.json()["name"] == "Adjudicate"


def test_a_time_offset_postgres_cannot_store_is_turned_to_utc(api, operator):
    # Python accepts -17:05; PostgreSQL refuses offsets past 15:59 (it was a 500).
    response = api.as_(operator).get(
        "/api/v1/traces/", {"since": "2026-03-08T17:47:01-17:05", "until": "3561-12-27T08:33:19Z"}
    )
    assert response.status_code == 200
    too_early = api.as_(operator).get("/api/v1/traces/", {"since": "0001-01-01T00:00:00+05:00"})
    assert too_early.status_code == 400
    assert "since" in too_early.json()


def test_a_value_the_database_refuses_is_a_400(api, operator):
    # A NUL character reached a slug lookup (it was a 500).
    response = api.as_(operator).post(
        "/api/v1/rollouts/", {"route": "a\x00b", "version": "v7"}, format="json"
    )
    assert response.status_code == 400
    assert "NUL" in response.json()["detail"]
