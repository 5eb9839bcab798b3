"""Password guessing is stopped: per username and per client address, on the login page and
the API's token endpoint alike, with a 429 and Retry-After, audited once, lifted by an admin."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.test import Client, RequestFactory
from django.utils import timezone

from accounts.client_ip import client_ip
from audit.models import AuditEvent

TOKEN = "/api/v1/auth/token/"
RIGHT = "pw-for-tests-only"


@pytest.fixture
def limit(settings):
    settings.AXES_FAILURE_LIMIT = 3
    return 3


def page_login(username, password, ip="127.0.0.1", **extra):
    return Client(REMOTE_ADDR=ip, **extra).post(
        "/login/", {"username": username, "password": password}
    )


def api_login(username, password, ip="127.0.0.1", **extra):
    return Client(REMOTE_ADDR=ip, **extra).post(
        TOKEN, {"username": username, "password": password}, content_type="application/json"
    )


def test_fifty_wrong_passwords_then_the_right_one_is_refused(operator, settings):
    assert settings.AXES_FAILURE_LIMIT == 10  # the shipped default
    answers = [page_login("otto", f"guess-{i}").status_code for i in range(50)]
    assert answers[:9] == [200] * 9  # the form again, with its error
    assert set(answers[9:]) == {429}
    locked = page_login("otto", RIGHT)
    assert locked.status_code == 429
    assert "_auth_user_id" not in locked.client.session
    assert b"Too many failed logins" in locked.content
    assert b'class="topbar"' in locked.content  # the styled page, not a bare message
    assert 0 < int(locked["Retry-After"]) <= 15 * 60


def test_the_api_token_endpoint_locks_out_too(operator, limit):
    for _ in range(limit - 1):
        assert api_login("otto", "wrong").status_code == 400
    locking = api_login("otto", "wrong")
    assert locking.status_code == 429
    assert "Too many failed logins" in locking.json()["detail"]
    refused = api_login("otto", RIGHT)
    assert refused.status_code == 429
    assert "token" not in refused.json()
    assert int(refused["Retry-After"]) > 0


def test_page_and_api_count_together_by_username(operator, limit):
    page_login("otto", "wrong", ip="10.0.0.1")
    api_login("otto", "wrong", ip="10.0.0.2")
    page_login("otto", "wrong", ip="10.0.0.3")
    # Three addresses, one username: the username is locked wherever the next try comes from.
    assert api_login("otto", RIGHT, ip="10.0.0.4").status_code == 429
    assert page_login("otto", RIGHT, ip="10.0.0.5").status_code == 429


def test_one_address_guessing_many_usernames_is_locked_out(operator, reviewer, limit):
    for name in ("alice", "bob", "carol"):
        page_login(name, "wrong", ip="203.0.113.9")
    assert page_login("rita", RIGHT, ip="203.0.113.9").status_code == 429
    # Someone else, elsewhere, is not affected.
    ok = page_login("rita", RIGHT, ip="198.51.100.1")
    assert ok.status_code == 302


def test_retry_after_counts_down_and_the_lockout_ends(operator, limit, settings):
    for _ in range(limit):
        page_login("otto", "wrong")
    # Ten minutes later, five of the fifteen remain.
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=10))
    refused = page_login("otto", RIGHT)
    assert refused.status_code == 429
    assert 4 * 60 < int(refused["Retry-After"]) <= 5 * 60
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert page_login("otto", RIGHT).status_code == 302


def test_each_lockout_is_audited_once(operator, limit):
    for _ in range(limit + 5):
        api_login("otto", "wrong", ip="192.0.2.7")
    page_login("otto", RIGHT, ip="192.0.2.7")
    events = AuditEvent.objects.filter(action="auth.lockout")
    assert events.count() == 1
    event = events.get()
    assert event.after["username"] == "otto"
    assert event.after["ip_address"] == "192.0.2.7"
    assert event.after["path"] == TOKEN
    assert event.after["failures"] == limit


def test_a_right_password_before_the_limit_is_let_in(operator, limit):
    for _ in range(limit - 1):
        page_login("otto", "wrong")
    assert page_login("otto", RIGHT).status_code == 302


def test_admins_unlock_a_username_or_an_address(operator, limit, capsys):
    for _ in range(limit):
        api_login("otto", "wrong", ip="192.0.2.8")
    call_command("unlock_login", "--list")
    listed = capsys.readouterr().out
    assert "otto" in listed and "192.0.2.8" in listed
    call_command("unlock_login", username="otto", ip="192.0.2.8")
    assert "Unlocked username 'otto' and address 192.0.2.8" in capsys.readouterr().out
    assert api_login("otto", RIGHT, ip="192.0.2.8").status_code == 200
    unlocked = AuditEvent.objects.get(action="auth.unlock")
    assert unlocked.actor_name == "cli"
    assert unlocked.before["attempts"][0]["failures"] == limit
    call_command("unlock_login", username="otto")
    assert "nothing to unlock" in capsys.readouterr().out


def test_unlock_needs_someone_to_unlock():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--username"):
        call_command("unlock_login")


def test_authenticate_without_a_request_is_not_counted(operator, limit):
    # e.g. a management command checking a password: no client, nothing to lock.
    for _ in range(limit + 1):
        assert authenticate(username="otto", password="wrong") is None
    assert authenticate(username="otto", password=RIGHT) == operator
    assert not AccessAttempt.objects.exists()


# --- client addresses behind a proxy ------------------------------------------------------


def _request(remote, forwarded=None):
    meta = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **meta)


def test_forwarded_for_is_ignored_without_trusted_proxies(settings):
    settings.TRUSTED_PROXIES = []
    assert client_ip(_request("198.51.100.4", "1.2.3.4")) == "198.51.100.4"


def test_forwarded_for_is_read_from_the_right_past_trusted_proxies(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "fd00::/8"]
    # The client wrote "6.6.6.6" itself; the ingress (10.2.0.5) appended the real peer.
    assert client_ip(_request("10.1.1.1", "6.6.6.6, 1.2.3.4, 10.2.0.5")) == "1.2.3.4"
    assert client_ip(_request("fd00::1", "2001:db8::7")) == "2001:db8::7"
    # A peer that is not a trusted proxy cannot claim another address.
    assert client_ip(_request("1.2.3.4", "9.9.9.9")) == "1.2.3.4"
    # Garbage after the proxy: the proxy is the best we know.
    assert client_ip(_request("10.1.1.1", "not-an-ip")) == "10.1.1.1"


def test_clients_behind_the_ingress_are_locked_out_one_by_one(operator, reviewer, limit, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    behind = {"REMOTE_ADDR": "10.0.0.2"}
    for name in ("alice", "bob", "carol"):
        Client(**behind, HTTP_X_FORWARDED_FOR="203.0.113.50").post(
            "/login/", {"username": name, "password": "wrong"}
        )
    guesser = Client(**behind, HTTP_X_FORWARDED_FOR="203.0.113.50")
    assert guesser.post("/login/", {"username": "rita", "password": RIGHT}).status_code == 429
    colleague = Client(**behind, HTTP_X_FORWARDED_FOR="203.0.113.51")
    assert colleague.post("/login/", {"username": "rita", "password": RIGHT}).status_code == 302
