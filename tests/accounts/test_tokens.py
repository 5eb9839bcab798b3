"""Named API tokens that expire, listed and revoked by their owner and by admins; request
rates on the token endpoint and the expensive endpoints."""

import hashlib
import importlib
from datetime import timedelta

import pytest
from django.apps import apps as global_apps
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from audit.models import AuditEvent

TOKEN = "/api/v1/auth/token/"
TOKENS = "/api/v1/auth/tokens/"
RIGHT = "pw-for-tests-only"


def obtain(username="otto", **extra):
    response = APIClient().post(
        TOKEN, {"username": username, "password": RIGHT, **extra}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def with_token(secret):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
    return client


def test_a_token_is_named_expires_and_works(operator, v7):
    body = obtain(name="nightly-eval", expires_in_days=7)
    assert body["token"].startswith("cc_")
    assert body["name"] == "nightly-eval"
    assert body["user"] == "otto"
    expiry = ApiToken.objects.get(pk=body["id"]).expiry
    assert timedelta(days=6, hours=23) < expiry - timezone.now() <= timedelta(days=7)
    client = with_token(body["token"])
    copied = client.post("/api/v1/versions/v7/copy/", {"name": "v9"}, format="json")
    assert copied.status_code == 201
    assert copied.json()["created_by"] == "otto"
    # Only the hash is stored.
    assert not ApiToken.objects.filter(digest__contains=body["token"]).exists()
    assert not ApiToken.objects.filter(token_key=body["token"]).exists()


def test_the_default_lifetime_comes_from_the_settings(operator, settings):
    body = obtain()
    assert body["name"] == "api"
    left = ApiToken.objects.get(pk=body["id"]).expiry - timezone.now()
    assert timedelta(days=89) < left <= timedelta(days=90)


def test_an_expired_token_is_refused(operator):
    body = obtain()
    ApiToken.objects.filter(pk=body["id"]).update(expiry=timezone.now() - timedelta(seconds=1))
    response = with_token(body["token"]).get("/api/v1/versions/")
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid token."


def test_too_long_a_lifetime_is_refused_naming_the_field(operator, settings):
    response = APIClient().post(
        TOKEN,
        {"username": "otto", "password": RIGHT, "expires_in_days": 366},
        format="json",
    )
    assert response.status_code == 400
    assert "expires_in_days" in response.json()


def test_wrong_password_gets_no_token(operator):
    response = APIClient().post(TOKEN, {"username": "otto", "password": "nope"}, format="json")
    assert response.status_code == 400
    assert not ApiToken.objects.exists()


def test_several_tokens_are_listed_to_their_owner_only(operator, reviewer):
    first = obtain(name="ci")
    second = obtain(name="notebook")
    obtain("rita", name="ritas")
    listed = with_token(first["token"]).get(TOKENS).json()
    names = {row["name"]: row for row in listed["results"]}
    assert set(names) == {"ci", "notebook"}
    assert names["ci"]["current"] is True
    assert names["notebook"]["current"] is False
    assert names["notebook"]["key"] == second["token"][:15]
    assert "token" not in names["ci"]
    assert names["ci"]["last_used_at"] is not None  # set by this very request


def test_an_owner_revokes_a_token_and_it_stops_working(operator):
    keep = obtain(name="keep")
    drop = obtain(name="drop")
    response = with_token(keep["token"]).delete(f"{TOKENS}{drop['id']}/")
    assert response.status_code == 204
    assert with_token(drop["token"]).get("/api/v1/versions/").status_code == 401
    assert with_token(keep["token"]).get("/api/v1/versions/").status_code == 200
    revoked = AuditEvent.objects.get(action="token.revoke")
    assert revoked.actor_name == "otto"
    assert revoked.before["name"] == "drop"
    assert AuditEvent.objects.filter(action="token.create").count() == 2


def test_others_tokens_are_invisible_and_cannot_be_revoked(operator, reviewer):
    mine = obtain("rita")
    theirs = obtain("otto")
    response = with_token(mine["token"]).delete(f"{TOKENS}{theirs['id']}/")
    assert response.status_code == 404
    assert with_token(theirs["token"]).get("/api/v1/versions/").status_code == 200


def test_admins_see_and_revoke_everyones_tokens(operator, admin_user):
    theirs = obtain("otto", name="otto-ci")
    admin = with_token(obtain("ada")["token"])
    listed = admin.get(TOKENS, {"user": "otto"}).json()["results"]
    assert [row["name"] for row in listed] == ["otto-ci"]
    assert admin.delete(f"{TOKENS}{theirs['id']}/").status_code == 204
    assert AuditEvent.objects.get(action="token.revoke").actor_name == "ada"


def test_tokens_per_user_are_capped(operator, settings):
    settings.API_TOKENS_PER_USER = 2
    obtain()
    obtain()
    response = APIClient().post(TOKEN, {"username": "otto", "password": RIGHT}, format="json")
    assert response.status_code == 409
    assert "revoke one" in response.json()["detail"]


def test_the_tokens_page_shows_a_new_secret_once_and_revokes(operator):
    page = Client()
    page.force_login(operator)
    made = page.post("/account/tokens/", {"name": "laptop", "expires_in_days": "30"})
    assert made.status_code == 200
    secret = made.context["secret"]
    assert secret.startswith("cc_")
    assert secret in made.content.decode()
    again = page.get("/account/tokens/")
    assert secret not in again.content.decode()
    assert "laptop" in again.content.decode()
    token = ApiToken.objects.get(name="laptop")
    assert with_token(secret).get("/api/v1/versions/").status_code == 200
    revoked = page.post(f"/account/tokens/{token.pk}/revoke/")
    assert revoked.status_code == 302
    assert with_token(secret).get("/api/v1/versions/").status_code == 401


def test_the_tokens_page_keeps_input_and_names_a_bad_field(operator):
    page = Client()
    page.force_login(operator)
    response = page.post("/account/tokens/", {"name": "laptop", "expires_in_days": "9999"})
    assert response.status_code == 400
    assert 'value="laptop"' in response.content.decode()
    assert "less than or equal to 365" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_the_tokens_page_needs_a_role(nobody):
    page = Client()
    page.force_login(nobody)
    assert page.get("/account/tokens/").status_code == 403


def test_tokens_from_before_expiry_are_carried_over_and_their_table_dropped(operator):
    legacy = "0123456789abcdef0123456789abcdef01234567"
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, "
            "created timestamptz NOT NULL, user_id bigint NOT NULL)"
        )
        cursor.execute(
            "INSERT INTO authtoken_token VALUES (%s, %s, %s)",
            [legacy, timezone.now() - timedelta(days=400), operator.pk],
        )
    migration = importlib.import_module("accounts.migrations.0003_legacy_tokens")
    with connection.schema_editor() as editor:
        migration.forwards(global_apps, editor)
    assert "authtoken_token" not in connection.introspection.table_names()
    carried = ApiToken.objects.get(user=operator)
    assert carried.digest == hashlib.sha512(legacy.encode()).hexdigest()
    assert timedelta(days=89) < carried.expiry - timezone.now() <= timedelta(days=90)
    assert with_token(legacy).get("/api/v1/versions/").status_code == 200


# --- request rates -------------------------------------------------------------------------


def _rates(settings, **rates):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            **rates,
        },
    }


def test_token_requests_are_rate_limited_per_address(operator, settings):
    _rates(settings, login="3/minute")
    here = APIClient(REMOTE_ADDR="192.0.2.1")
    answers = [
        here.post(TOKEN, {"username": "otto", "password": RIGHT}, format="json") for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert 0 < int(answers[-1]["Retry-After"]) <= 60
    elsewhere = APIClient(REMOTE_ADDR="192.0.2.2")
    ok = elsewhere.post(TOKEN, {"username": "otto", "password": RIGHT}, format="json")
    assert ok.status_code == 200


def test_classify_is_rate_limited_per_user(api, reviewer, operator, v7, settings):
    _rates(settings, classify="2/minute")
    body = {"messages": [{"role": "user", "content": "hi"}]}
    rita = [api.as_(reviewer).post("/api/v1/classify/", body, format="json") for _ in range(3)]
    assert [r.status_code for r in rita] == [200, 200, 429]
    assert int(rita[-1]["Retry-After"]) > 0
    assert api.as_(operator).post("/api/v1/classify/", body, format="json").status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/tuning-jobs/replay/", "/api/v1/proposals/"])
def test_starting_jobs_is_rate_limited_reading_them_is_not(api, operator, v7, settings, path):
    _rates(settings, jobs="1/hour")
    client = api.as_(operator)
    client.post(path, {}, format="json")  # counted even when refused for its input
    second = client.post(path, {}, format="json")
    assert second.status_code == 429
    assert int(second["Retry-After"]) > 60
    for _ in range(3):
        assert client.get(path.rsplit("replay/", 1)[0]).status_code == 200
