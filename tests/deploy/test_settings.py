"""Production settings: check --deploy is clean under the manifests' environment, the security
headers are sent, logs are JSON lines, and the embedded defaults still need nothing."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time

import httpx
import pytest
from django.conf import settings as django_settings

from cascade_admin.logging import JsonFormatter

from .render import DEPLOY, ROOT, one, render

PYTHON = sys.executable
# 50+ characters, as `python -c "import secrets; print(secrets.token_urlsafe(50))"` makes.
STRONG_KEY = "k3T9v0qLx8ZbN2wR5yH7pF4sJ6mC1dA0eG8uV3tQ9nB2xW5zK7rL4hY6jM1cP8oS0"


def production_env(tmp_path, **overrides) -> dict[str, str]:
    """The web container's environment from the rendered manifests, secrets as files."""
    web = one(render(DEPLOY / "overlays" / "production"), "Deployment", "cascade-console-web")
    (container,) = web["spec"]["template"]["spec"]["containers"]
    env = dict(
        one(render(DEPLOY / "overlays" / "production"), "ConfigMap", "cascade-console-env")["data"]
    )
    secrets = {
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/13",
        "SECRET_KEY": STRONG_KEY,
        "LANGFUSE_PUBLIC_KEY": "pk-lf-test",
        "LANGFUSE_SECRET_KEY": "sk-lf-test",
        "POD_ADMIN_TOKEN": "admin-token",
    }
    for item in container["env"]:
        if item["name"].endswith("_FILE"):
            path = tmp_path / item["value"].lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets[item["name"].removesuffix("_FILE")] + "\n")
            env[item["name"]] = str(path)
        elif "value" in item:
            env[item["name"]] = item["value"]
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return {**base, **env, "STATIC_ROOT": str(tmp_path / "static"), **overrides}


def manage(env, *args, timeout=120):
    return subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_check_deploy_is_clean_under_the_documented_production_environment(tmp_path):
    out = manage(production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    assert out.returncode == 0, out.stdout + out.stderr


def test_check_deploy_fails_when_https_redirects_are_switched_off(tmp_path):
    env = production_env(tmp_path, SECURE_SSL_REDIRECT="false")
    out = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert out.returncode != 0
    assert "security.W008" in out.stderr + out.stdout


@pytest.mark.parametrize(
    "name, value, says",
    [
        ("TRUSTED_PROXIES", "10.0.0.0/8,not-a-network", "TRUSTED_PROXIES"),
        ("API_THROTTLE_JOBS", "60 per hour", "API_THROTTLE_JOBS"),
        ("LOGIN_FAILURE_LIMIT", "0", "LOGIN_FAILURE_LIMIT"),
        ("LANGFUSE_TIMEOUT", "ten", "LANGFUSE_TIMEOUT"),
        ("LANGFUSE_LABEL_SCORE_NAME", "a/b", "LANGFUSE_LABEL_SCORE_NAME"),
        ("LANGFUSE_INGEST_LAG_SECONDS", "-1", "LANGFUSE_INGEST_LAG_SECONDS"),
        ("PROMETHEUS_TIMEOUT", "60", "PROMETHEUS_TIMEOUT"),
    ],
)
def test_a_malformed_setting_stops_start_up_naming_it(tmp_path, name, value, says):
    out = manage(production_env(tmp_path, **{name: value}), "check")
    assert out.returncode != 0
    assert says in out.stderr


def test_the_embedded_console_still_starts_with_no_environment_at_all(tmp_path):
    env = {"PATH": os.environ["PATH"], "CASCADE_VAR_DIR": str(tmp_path / "var")}
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'cascade_admin.settings';"
        "django.setup(); from django.conf import settings as s;"
        "print(s.EMBEDDED, s.SESSION_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, s.SECURE_SSL_REDIRECT,"
        " s.LOG_FORMAT)"
    )
    out = subprocess.run(
        [PYTHON, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False", "0", "False", "text"]
    assert manage(env, "check").returncode == 0


# --- headers (the test settings are production ones: DATABASE_URL is set, DEBUG is off) -------


@pytest.mark.django_db
def test_pages_carry_a_csp_without_inline_scripts_and_the_other_security_headers(client):
    response = client.get("/login/", secure=True)
    assert response.status_code == 200
    policy = dict(
        part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";")
    )
    assert policy["script-src"] == "'self'"
    assert policy["script-src-attr"] == "'none'"
    assert policy["style-src"] == "'self'"
    assert policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


@pytest.mark.django_db
def test_the_login_page_has_no_inline_script_the_policy_would_block(client):
    html = client.get("/login/", secure=True).content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"\son[a-z]+\s*=", html)


@pytest.mark.django_db
def test_plain_http_is_redirected_to_https_except_for_probes(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/login/")
    assert response.status_code == 301
    assert response["Location"].startswith("https://")
    assert client.get("/healthz").status_code != 301


def test_session_and_csrf_cookies_are_https_only_in_production():
    assert django_settings.SESSION_COOKIE_SECURE is True
    assert django_settings.CSRF_COOKIE_SECURE is True
    assert django_settings.SESSION_COOKIE_HTTPONLY is True


# --- logs -------------------------------------------------------------------------------------


def test_a_log_record_becomes_one_json_line_with_extras_and_traceback():
    logger = logging.getLogger("cascade.test")
    record = logger.makeRecord(
        "cascade.test",
        logging.ERROR,
        __file__,
        1,
        "sync %s failed: 한국어",
        ("run-7",),
        None,
        extra={"traces": 120, "when": object()},
    )
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line.strip() or line.count("\n") == line.count("\\n")
    entry = json.loads(line)
    assert entry["level"] == "ERROR"
    assert entry["logger"] == "cascade.test"
    assert entry["message"] == "sync run-7 failed: 한국어"
    assert entry["traces"] == 120
    assert entry["when"].startswith("<object object")
    assert "ValueError: boom" in entry["exc_info"]
    assert entry["time"].endswith("+00:00")


def test_gunicorn_serves_the_console_and_logs_json_access_lines(tmp_path):
    env = production_env(tmp_path, WEB_CONCURRENCY="1")
    assert manage(env, "collectstatic", "--noinput", "-v0").returncode == 0
    log = tmp_path / "gunicorn.log"
    with open(log, "w") as sink:
        server = subprocess.Popen(
            [PYTHON, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", "127.0.0.1:0"],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        port = None
        while port is None and time.monotonic() < deadline:
            match = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", log.read_text())
            port = match and int(match[1])
            time.sleep(0.1)
        assert port, log.read_text()
        base = f"http://127.0.0.1:{port}"
        headers = {"Host": "cascade-console", "X-Forwarded-Proto": "https", "X-Request-Id": "r-1"}
        for _ in range(50):  # workers boot after the master listens
            try:
                response = httpx.get(f"{base}/login/", headers=headers, timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert response.status_code == 200
        assert "Content-Security-Policy" in response.headers
        static = re.search(r'src="(/static/[^"]+\.js)"', response.text)[1]
        asset = httpx.get(base + static, headers=headers, timeout=5)
        assert asset.status_code == 200
        assert "max-age=315360000" in asset.headers["Cache-Control"]  # hashed: cached for good
    finally:
        server.terminate()
        server.wait(timeout=30)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert len(lines) == len(log.read_text().splitlines())  # every line is JSON
    access = [e for e in lines if e["logger"] == "gunicorn.access" and e.get("path") == "/login/"]
    assert access and access[0]["status"] == "200" and access[0]["request_id"] == "r-1"
    assert access[0]["duration_ms"] >= 0
