"""Running the console outside Kubernetes: bin/serve, gunicorn's bind address, grant_role,
the API root, and a guide that names every environment variable the code reads."""

from __future__ import annotations

import os
import re
import runpy
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.urls import URLResolver, get_resolver, resolve
from rest_framework.routers import BaseRouter

from accounts.roles import OPERATOR, REVIEWER
from audit.models import AuditEvent

ROOT = Path(__file__).resolve().parent.parent
SERVE = ROOT / "bin" / "serve"
GUIDE = ROOT / "docs" / "operator-guide.md"
POD_README = ROOT / "routing" / "pod" / "README.md"
# Generous: the suite runs on busy 2-core machines.
START_TIMEOUT = 180


def clean_env(**settings) -> dict[str, str]:
    """A process environment with none of the test run's settings (no DATABASE_URL, ...)."""
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return {**base, **settings}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(env, *args, timeout=300):
    return subprocess.run(
        [str(SERVE), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


# --- bin/serve ------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [[], ["webb"], ["--help"]])
def test_serve_refuses_an_unknown_command_with_its_usage(args):
    out = serve(clean_env(), *args, timeout=30)
    assert out.returncode == 2
    assert "usage: bin/serve web|worker|beat|migrate" in out.stderr


@pytest.mark.parametrize("command", ["worker", "beat"])
def test_serve_refuses_worker_and_beat_without_a_broker(command, tmp_path):
    out = serve(clean_env(CASCADE_VAR_DIR=str(tmp_path)), command, timeout=30)
    assert out.returncode == 1
    assert "CELERY_BROKER_URL" in out.stderr


def production_env(tmp_path, **overrides):
    # Production settings (DATABASE_URL set: hashed static files, secure cookie defaults) on
    # a throwaway SQLite file, so the test needs no database of its own.
    return clean_env(
        DATABASE_URL=f"sqlite:///{tmp_path}/console.sqlite3",
        SECRET_KEY="run-it-yourself-test-key-" + "x" * 40,
        STATIC_ROOT=str(tmp_path / "static"),
        CASCADE_VAR_DIR=str(tmp_path / "var"),
        LOG_FORMAT="text",
        **overrides,
    )


def test_serve_web_refuses_an_unmigrated_database(tmp_path):
    out = serve(production_env(tmp_path), "web", timeout=120)
    assert out.returncode == 1
    assert "run bin/serve migrate first" in out.stderr
    assert not (tmp_path / "static").exists()  # stopped before collectstatic and gunicorn


def test_serve_migrate_then_web_serves_on_the_configured_address(tmp_path):
    port = free_port()
    # SECURE_COOKIES=false: the plain-HTTP local use the guide describes.
    env = production_env(tmp_path, PORT=str(port), WEB_CONCURRENCY="1", SECURE_COOKIES="false")
    migrated = serve(env, "migrate")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert (tmp_path / "static" / "staticfiles.json").exists()  # collectstatic ran

    # A user and a role from the command line, as an operator would.
    manage = [sys.executable, "manage.py"]
    create = (
        "from django.contrib.auth.models import User;"
        "User.objects.create_user('rita', password='pw-rita-1')"
    )
    for args in (["shell", "-c", create], ["grant_role", "rita", REVIEWER]):
        done = subprocess.run(
            manage + args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr

    log = tmp_path / "web.log"
    with open(log, "w") as sink:
        server = subprocess.Popen(
            [str(SERVE), "web"], cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        health = None
        while time.monotonic() < deadline:
            assert server.poll() is None, log.read_text()
            try:
                health = httpx.get(f"{base}/healthz", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.5)
        assert health is not None and health.status_code == 200, log.read_text()
        # bin/serve's default host: loopback only.
        assert f"Listening at: http://127.0.0.1:{port}" in log.read_text()

        with httpx.Client(base_url=base, timeout=15) as browser:
            page = browser.get("/login/")
            assert page.status_code == 200
            static = re.search(r'src="(/static/[^"]+\.js)"', page.text)[1]
            assert browser.get(static).status_code == 200  # the hashed, collected copy
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
            login = browser.post(
                "/login/",
                data={"username": "rita", "password": "pw-rita-1", "csrfmiddlewaretoken": token},
            )
            assert login.status_code == 302, login.text  # logged in over plain HTTP
            assert "secure" not in login.headers["set-cookie"].lower()
            root = browser.get("/api/v1/")
            assert root.status_code == 200
            assert root.json()["rollouts"] == f"{base}/api/v1/rollouts/"
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# --- gunicorn.conf.py -----------------------------------------------------------------------


def gunicorn_bind(monkeypatch, **env) -> list[str]:
    for name in ("WEB_HOST", "WEB_HOST_FILE", "PORT", "PORT_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))["bind"]


def test_gunicorn_binds_every_interface_by_default_as_the_container_needs(monkeypatch):
    # The Dockerfile sets PORT=8000 and nothing else; the probes reach the pod's address.
    assert gunicorn_bind(monkeypatch) == ["0.0.0.0:8000"]
    assert gunicorn_bind(monkeypatch, PORT="8000") == ["0.0.0.0:8000"]


@pytest.mark.parametrize(
    ("host", "port", "bind"),
    [
        ("127.0.0.1", "9001", "127.0.0.1:9001"),
        ("::1", "9001", "[::1]:9001"),
        ("localhost", "80", "localhost:80"),
        ("console.internal.example", "65535", "console.internal.example:65535"),
    ],
)
def test_gunicorn_binds_the_address_from_the_environment(monkeypatch, host, port, bind):
    assert gunicorn_bind(monkeypatch, WEB_HOST=host, PORT=port) == [bind]


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"PORT": "http"}, "PORT"),
        ({"PORT": "0"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"WEB_HOST": "127.0.0.1:8000"}, "WEB_HOST"),
        ({"WEB_HOST": "http://localhost"}, "WEB_HOST"),
        ({"WEB_HOST": "bad_host"}, "WEB_HOST"),
    ],
)
def test_gunicorn_refuses_a_bad_bind_naming_the_variable(monkeypatch, env, variable):
    with pytest.raises(ImproperlyConfigured, match=rf"^{variable}="):
        gunicorn_bind(monkeypatch, **env)


def test_gunicorn_does_not_start_with_a_bad_port():
    out = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"],
        cwd=ROOT,
        env=clean_env(PORT="eighty"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "PORT='eighty' is not an integer" in out.stderr


# --- grant_role -----------------------------------------------------------------------------


def grant_role(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("grant_role", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_grant_role_puts_a_user_in_the_role_and_audits_it(make_user):
    rita = make_user("rita")
    Group.objects.filter(name=OPERATOR).delete()  # created on demand

    assert "rita added to operator (effective role: operator)" in grant_role("rita", OPERATOR)

    assert list(rita.groups.values_list("name", flat=True)) == [OPERATOR]
    event = AuditEvent.objects.get(action="user.grant_role")
    assert (event.actor, event.actor_name) == (None, "cli")
    assert (event.object_type, event.object_id) == ("auth.user", str(rita.pk))
    assert (event.before, event.after, event.message) == (
        {"roles": []},
        {"roles": [OPERATOR]},
        OPERATOR,
    )


@pytest.mark.django_db
def test_grant_role_remove_takes_the_role_away_and_audits_it(make_user):
    rita = make_user("rita", REVIEWER)
    grant_role("rita", OPERATOR)

    assert "effective role: reviewer" in grant_role("rita", OPERATOR, "--remove")

    assert list(rita.groups.values_list("name", flat=True)) == [REVIEWER]
    event = AuditEvent.objects.get(action="user.revoke_role")
    assert event.before == {"roles": [OPERATOR, REVIEWER]}
    assert event.after == {"roles": [REVIEWER]}


@pytest.mark.django_db
def test_grant_role_changes_nothing_twice(make_user):
    make_user("rita", REVIEWER)
    assert "already has the role reviewer" in grant_role("rita", REVIEWER)
    assert "does not have the role operator" in grant_role("rita", OPERATOR, "--remove")
    assert not AuditEvent.objects.filter(action__startswith="user.").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody-here", REVIEWER], "No user 'nobody-here'"),
        (["rita", "superuser"], "Unknown role 'superuser': use one of reviewer, operator, admin"),
    ],
)
def test_grant_role_refuses_an_unknown_user_or_role(make_user, args, message):
    make_user("rita")
    with pytest.raises(CommandError, match=re.escape(message)):
        grant_role(*args)
    assert not AuditEvent.objects.filter(action__startswith="user.").exists()
    assert not Group.objects.filter(name="superuser").exists()


# --- the API root ---------------------------------------------------------------------------


def registered_router_prefixes() -> set[str]:
    """Every prefix registered on a router of a URLconf mounted at api/v1/."""
    prefixes = set()
    for pattern in get_resolver().url_patterns:
        if isinstance(pattern, URLResolver) and str(pattern.pattern) == "api/v1/":
            for value in vars(pattern.urlconf_module).values():
                if isinstance(value, BaseRouter):
                    prefixes |= {prefix for prefix, _viewset, _basename in value.registry}
    return prefixes


@pytest.mark.django_db
def test_the_api_root_lists_every_resource_of_every_router(api, reviewer, admin_user):
    response = api.as_(reviewer).get("/api/v1/")

    assert response.status_code == 200
    resources = response.json()
    assert set(resources) == registered_router_prefixes()
    # The list, so an empty discovery on both sides cannot pass.
    assert set(resources) >= {
        "versions", "keyword-sets", "traces", "sync-runs", "batches", "labels", "items",
        "label-imports", "metric-reports", "slo-targets", "tuning-jobs", "proposals", "slots",
        "routes", "publications", "rollouts",
    }  # fmt: skip
    api.as_(admin_user)  # some lists need more than a reviewer (traces: operators)
    for name, url in resources.items():
        path = urlsplit(url).path
        assert url.startswith("http://testserver/api/v1/")
        if "{" in path:  # no collection: the template of its route (items/{pk}/adjudicate/)
            assert resolve(re.sub(r"\{\w+\}", "1", path)).url_name.startswith(name[:-1])
        else:
            assert api.get(path).status_code == 200, name


@pytest.mark.django_db
def test_the_api_root_needs_a_role(api, nobody):
    assert api.get("/api/v1/").status_code in (401, 403)
    assert api.as_(nobody).get("/api/v1/").status_code == 403


# --- every environment variable is documented -----------------------------------------------

# What the console image holds (the Dockerfile's COPY lines), and bin/serve.
CONSOLE_CODE = ["cascade_admin", "accounts", "audit", "routing", "labeling", "tuning", "rollouts"]
# The classifier pod is a program of its own with its own reference: routing/pod/README.md.
# Its flags and variables are checked against that README below, not against the guide.
DOCUMENTED_ELSEWHERE = {ROOT / "routing" / "pod": POD_README}

_NAME = r"""["']([A-Z][A-Z0-9_]*)["']"""
ENV_READS = re.compile(
    rf"\benv_(?:str|int|bool|list|rate)\(\s*{_NAME}"  # cascade_admin/env.py's readers
    rf"|\b_env_value\(\s*\w+,\s*{_NAME}"  # labeling/langfuse_adapter/settings.py's wrapper
    rf"|\benv_value\(\s*{_NAME}"  # routing/envfile.py, the shared reader
    rf"|\b(?:environ|env)\.get\(\s*{_NAME}"  # os.environ.get / an injected env mapping
    rf"|\b(?:environ|env)\[\s*{_NAME}\s*\]"
    rf"|\bgetenv\(\s*{_NAME}"
)
SHELL_READS = re.compile(r"\$\{([A-Z][A-Z0-9_]*)")


def variables_read_by_the_console() -> dict[str, set[str]]:
    files = [ROOT / "gunicorn.conf.py", ROOT / "manage.py"]
    files += [f for package in CONSOLE_CODE for f in sorted((ROOT / package).rglob("*.py"))]
    found: dict[str, set[str]] = {}
    for path in files:
        if any(path.is_relative_to(elsewhere) for elsewhere in DOCUMENTED_ELSEWHERE):
            continue
        for match in ENV_READS.finditer(path.read_text()):
            name = next(group for group in match.groups() if group)
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    for match in SHELL_READS.finditer(SERVE.read_text()):
        found.setdefault(match[1], set()).add("bin/serve")
    return found


def documented(name: str, text: str) -> bool:
    """Named in code formatting: `NAME` or `NAME=value`."""
    return re.search(rf"`{name}(=[^`]*)?`", text) is not None


def test_the_scan_finds_the_variables_it_must():
    # Guards the regex: these are read in each of the ways the code reads variables.
    found = variables_read_by_the_console()
    for name in ("DATABASE_URL", "ROLLOUT_EVALUATE_INTERVAL", "WEB_HOST", "LANGFUSE_TIMEOUT",
                 "KUBECONFIG", "CASCADE_K8S_CONTEXT", "CELERY_BROKER_URL_FILE"):  # fmt: skip
        assert name in found, name


def test_the_operator_guide_documents_every_variable_the_console_reads():
    guide = GUIDE.read_text()
    missing = {
        name: sorted(where)
        for name, where in variables_read_by_the_console().items()
        if not documented(name, guide)
    }
    assert not missing, f"add these to docs/operator-guide.md, section 16: {missing}"


def test_the_pod_readme_documents_every_pod_variable_and_the_guide_links_it():
    # The pod's --help shows each flag's variable in brackets, e.g. [CASCADE_POD_PORT].
    out = subprocess.run(
        [sys.executable, "-m", "routing.pod", "--help"],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    names = set(re.findall(r"\[([A-Z][A-Z0-9_]*)(?:=true)?\]", out.stdout))
    assert {"CASCADE_POD_CONFIG", "CASCADE_POD_PORT", "LANGFUSE_PUBLIC_KEY"} <= names
    readme = POD_README.read_text()
    assert not [name for name in sorted(names) if not documented(name, readme)]
    assert "routing/pod/README.md" in GUIDE.read_text()


def test_the_pre_commit_hooks_are_the_suites_own_lint_steps():
    import yaml

    hooks = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"][0]["hooks"]
    suite = (ROOT / "bin" / "test").read_text()
    assert len(hooks) == 4
    for hook in hooks:
        command = hook["entry"].replace(" --force-exclude", "")
        assert command in suite, f"{hook['id']}: bin/test does not run {command!r}"
