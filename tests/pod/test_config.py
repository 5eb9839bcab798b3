"""Config: loaded from the exported file, hot-reloaded, pushed by admin, bad ones refused."""

from __future__ import annotations

import json

import pytest

from routing.engine import ConfigError
from routing.pod.config_store import ConfigStore
from tests.pod.podkit import chat, v7, wait_until, write_config

ADMIN = {"authorization": "Bearer admin-secret"}


def served(pod) -> dict:
    return pod.client.get("/config").json()


def test_config_reports_the_version_and_hash_it_serves(start_pod):
    document = v7()
    pod = start_pod(config=document)

    body = served(pod)

    assert body["version"] == "v7"
    assert body["sha256"] == document["sha256"]
    assert body["source"] == "file"
    assert pod.client.get("/readyz").status_code == 200


def test_a_changed_file_is_reloaded_and_routes_by_the_new_rules(start_pod, tmp_path, strong):
    path = tmp_path / "mounted.json"
    write_config(path, v7())
    pod = start_pod(config_path=path)
    assert pod.post(chat("please tidy this loop")).headers["x-cascade-tier"] == "weak"

    v8 = v7("v8", strong_keywords=["tidy", "정리"])
    write_config(path, v8)

    assert wait_until(lambda: served(pod)["version"] == "v8", timeout=3)
    response = pod.post(chat("please tidy this loop"))
    assert response.headers["x-cascade-tier"] == "strong"
    assert response.headers["x-cascade-version"] == "v8"
    assert served(pod)["sha256"] == v8["sha256"]
    assert pod.metric("cascade_pod_config_reloads_total", source="file") == 2
    assert pod.metric("cascade_pod_config_info", version="v8", sha256=v8["sha256"]) == 1
    assert pod.metric("cascade_pod_config_info", version="v7") == 0


INVALID_FILES = [
    ("broken json", '{"schema": "cascade-classifier/1", '),
    ("hash mismatch", json.dumps({**v7("v8"), "token_threshold": 9})),
    # A hand edit that kept the served config's own hash must not pass for "unchanged".
    ("edited, old hash kept", json.dumps({**v7(), "token_threshold": 9})),
    ("wrong schema", json.dumps({**v7("v8"), "schema": "other/1"})),
    ("bad field", json.dumps({**v7("v8"), "turn_threshold": -1})),
    ("not an object", "[]"),
]


@pytest.mark.parametrize(("name", "content"), INVALID_FILES, ids=[c[0] for c in INVALID_FILES])
def test_an_invalid_file_is_rejected_and_the_last_good_config_keeps_serving(
    start_pod, tmp_path, weak, name, content
):
    path = tmp_path / "mounted.json"
    write_config(path, v7())
    pod = start_pod(config_path=path)

    write_config(path, content)

    assert wait_until(
        lambda: pod.metric("cascade_pod_config_rejects_total", source="file") == 1, timeout=3
    )
    assert served(pod)["version"] == "v7"
    assert pod.post(chat("hello")).status_code == 200
    assert "rejected" in pod.log


def file_store(path):
    """A ConfigStore on ``path`` and the errors it reported (None for an accepted config)."""
    errors = []
    store = ConfigStore(path, on_change=lambda source, loaded, error: errors.append(error))
    return store, errors


def test_a_touched_file_with_the_same_bytes_is_not_reloaded(tmp_path):
    path = tmp_path / "mounted.json"
    write_config(path, v7())
    store, errors = file_store(path)
    first = store.load_file()

    write_config(path, v7())  # same bytes, new inode and mtime

    assert store.load_file() is None
    assert store.current is first and errors == [None]


def test_an_edit_that_keeps_the_old_hash_is_rejected_not_skipped(tmp_path):
    path = tmp_path / "mounted.json"
    write_config(path, v7())
    store, errors = file_store(path)
    first = store.load_file()

    write_config(path, json.dumps({**v7(), "token_threshold": 9}))

    assert store.load_file() is None
    assert isinstance(errors[-1], ConfigError) and "sha256" in str(errors[-1])
    assert store.current is first  # the last good config keeps serving
    assert store.current.classifier.config.token_threshold == 500


def test_a_pod_without_a_valid_config_is_not_ready_until_one_arrives(start_pod, tmp_path, weak):
    path = tmp_path / "later.json"
    pod = start_pod(config_path=path)  # the file does not exist yet

    assert pod.client.get("/readyz").status_code == 503
    assert pod.client.get("/healthz").status_code == 200
    refused = pod.post(chat("hi"))
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "not_ready"
    assert weak.requests == []

    write_config(path, v7())

    assert wait_until(lambda: pod.client.get("/readyz").status_code == 200, timeout=3)
    assert pod.post(chat("hi")).status_code == 200


def test_admin_put_replaces_the_config(start_pod):
    pod = start_pod("--admin-token", "admin-secret")
    v9 = v7("v9", strong_keywords=["benchmark"])

    response = pod.client.put("/admin/config", json=v9, headers=ADMIN)

    assert response.status_code == 200, response.text
    assert response.json()["version"] == "v9"
    assert response.json()["sha256"] == v9["sha256"]
    assert served(pod)["source"] == "admin"
    assert pod.post(chat("run the benchmark")).headers["x-cascade-tier"] == "strong"
    assert pod.metric("cascade_pod_config_reloads_total", source="admin") == 1


def test_admin_put_survives_an_untouched_file(start_pod):
    pod = start_pod("--admin-token", "admin-secret")
    pod.client.put("/admin/config", json=v7("v9"), headers=ADMIN)

    pod.client.get("/healthz")  # let a few reload polls (every 0.1 s) pass
    wait_until(lambda: False, timeout=0.4)

    assert served(pod)["version"] == "v9"


@pytest.mark.parametrize(
    "headers", [{}, {"authorization": "Bearer wrong"}, {"authorization": "admin-secret"}]
)
def test_admin_put_needs_the_token(start_pod, headers):
    pod = start_pod("--admin-token", "admin-secret")

    response = pod.client.put("/admin/config", json=v7("v9"), headers=headers)

    assert response.status_code == 401
    assert served(pod)["version"] == "v7"


def test_admin_put_is_disabled_without_a_token(start_pod):
    pod = start_pod()

    response = pod.client.put("/admin/config", json=v7("v9"), headers=ADMIN)

    assert response.status_code == 403
    assert served(pod)["version"] == "v7"


def test_admin_put_of_an_invalid_config_says_why_and_changes_nothing(start_pod):
    pod = start_pod("--admin-token", "admin-secret")
    tampered = {**v7("v9"), "strong_keywords": ["x", "X"]}

    response = pod.client.put("/admin/config", json=tampered, headers=ADMIN)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_config"
    assert "sha256" in error["fields"] or "strong_keywords" in error["fields"]
    assert served(pod)["version"] == "v7"
    assert pod.metric("cascade_pod_config_rejects_total", source="admin") == 1


def test_admin_put_of_broken_json_is_a_400(start_pod):
    pod = start_pod("--admin-token", "admin-secret")

    response = pod.client.put("/admin/config", content=b"{", headers=ADMIN)

    assert response.status_code == 400
    assert "Not valid JSON" in response.json()["error"]["message"]


def test_admin_put_of_absurdly_nested_json_is_a_400_and_changes_nothing(start_pod):
    pod = start_pod("--admin-token", "admin-secret")
    deep = b"[" * 100_000 + b"]" * 100_000

    response = pod.client.put("/admin/config", content=deep, headers=ADMIN)

    assert response.status_code == 400
    assert "Nested too deeply" in response.json()["error"]["message"]
    assert served(pod)["version"] == "v7"
