"""Faults of the Kubernetes API stand-in, seen through the real ``kubernetes`` client.

Held answers, dropped answers and requests, writes behind the client's back, and the real
server's answers to a PUT of a missing ConfigMap and to an expired ``continue`` token. Timing
bounds are generous (a busy core must not fail them); holds that a test does not wait out are
ended by ``release()`` or by the stand-in stopping.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from rollouts.k8s_adapter import api_client_for_host, backend_weights
from tests.standins.k8s_api import KubeApiStandin, configmap, httproute

NS = "llm"
ROUTE = "llm-router"
STABLE = "llm-classifier-v7"
CANARY = "llm-classifier-v8"
GROUP, VERSION, PLURAL = "gateway.networking.k8s.io", "v1", "httproutes"
JSON_PATCH = "application/json-patch+json"


@pytest.fixture
def k8s():
    with KubeApiStandin() as api:
        api.put(httproute(NS, ROUTE, [[(STABLE, 90), (CANARY, 10)]]))
        yield api


@pytest.fixture
def api(k8s):
    api_client = api_client_for_host(k8s.url, use_env_proxy=False)
    yield api_client
    api_client.close()


@pytest.fixture
def custom(api):
    return client.CustomObjectsApi(api)


@pytest.fixture
def core(api):
    return client.CoreV1Api(api)


def weight_ops(stable: int, canary: int) -> list[dict]:
    base = "/spec/rules/0/backendRefs"
    return [
        {"op": "replace", "path": f"{base}/0/weight", "value": stable},
        {"op": "replace", "path": f"{base}/1/weight", "value": canary},
    ]


def patch_route(custom, ops, *, timeout=(2.0, 10.0), name=ROUTE):
    return custom.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, name, ops, _content_type=JSON_PATCH, _request_timeout=timeout
    )


def read_route(custom, name=ROUTE):
    return custom.get_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, name, _request_timeout=(2.0, 10.0)
    )


def weights(route) -> list[tuple[str, int]]:
    return backend_weights(route, 0)


def version(route) -> int:
    return int(route["metadata"]["resourceVersion"])


def status_body(caught) -> dict:
    return json.loads(caught.value.body)


# --- held answers ---------------------------------------------------------------------------


def test_a_held_answer_times_out_on_the_client_while_the_patch_has_landed(k8s, custom):
    before = read_route(custom)
    rule = k8s.faults.hold("PATCH", "httproutes", ROUTE, seconds=120, apply="before")

    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        patch_route(custom, weight_ops(50, 50), timeout=(2.0, 1.0))

    after = read_route(custom)  # the answer is still held: the change is already there
    assert weights(after) == [(STABLE, 50), (CANARY, 50)]
    assert version(after) > version(before)
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    (held,) = rule.requests
    assert (held.method, held.fault, held.outcome, held.status) == ("PATCH", rule, 200, 0)
    assert rule.in_flight == 1
    rule.release()
    assert rule.wait(timeout=10)
    assert held.status == 200  # sent, to a client that had gone


def test_a_held_answer_comes_late_to_a_client_that_waits(k8s, custom):
    rule = k8s.faults.hold("PATCH", "httproutes", ROUTE, seconds=2, apply="before")
    started = time.monotonic()

    answer = patch_route(custom, weight_ops(70, 30), timeout=(2.0, 60.0))

    assert time.monotonic() - started >= 1.5
    assert weights(answer) == [(STABLE, 70), (CANARY, 30)]
    assert rule.wait(timeout=10)
    assert rule.requests[0].status == 200


def test_a_request_held_before_it_is_applied_lands_when_the_hold_ends(k8s, custom):
    before = read_route(custom)
    rule = k8s.faults.hold("PATCH", "httproutes", ROUTE, seconds=4, apply="after")
    started = time.monotonic()

    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        patch_route(custom, weight_ops(50, 50), timeout=(2.0, 1.0))

    # The client gave up after 1 s; the hold has seconds to go.
    assert (
        read_route(custom)["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    )
    assert rule.requests[0].outcome == 0
    assert rule.wait(timeout=30)
    assert time.monotonic() - started >= 3.5
    assert weights(read_route(custom)) == [(STABLE, 50), (CANARY, 50)]
    assert rule.requests[0].outcome == 200


def test_release_lands_a_held_request_now(k8s, custom):
    rule = k8s.faults.hold("PATCH", "httproutes", ROUTE, seconds=600, apply="after")

    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        patch_route(custom, weight_ops(50, 50), timeout=(2.0, 1.0))
    assert weights(read_route(custom)) == [(STABLE, 90), (CANARY, 10)]

    rule.release()

    assert rule.wait(timeout=10)
    assert weights(read_route(custom)) == [(STABLE, 50), (CANARY, 50)]
    assert k8s.faults.wait_idle(timeout=1)


def test_stopping_the_standin_ends_holds_and_never_applies_a_held_request():
    with KubeApiStandin() as k8s:
        k8s.put(httproute(NS, ROUTE, [[(STABLE, 90), (CANARY, 10)]]))
        k8s.faults.hold("PATCH", "httproutes", ROUTE, seconds=600, apply="after")
        api_client = api_client_for_host(k8s.url, use_env_proxy=False)
        with pytest.raises(urllib3.exceptions.ReadTimeoutError):
            patch_route(client.CustomObjectsApi(api_client), weight_ops(0, 100), timeout=(2, 1))
        api_client.close()
        started = time.monotonic()
    assert time.monotonic() - started < 10  # stop() did not wait the hold out

    assert weights(k8s.get("httproutes", NS, ROUTE)) == [(STABLE, 90), (CANARY, 10)]
    assert k8s.faults.wait_idle(timeout=1)


# --- dropped answers and requests -----------------------------------------------------------


def test_a_dropped_answer_is_a_connection_error_with_the_change_applied(k8s, custom):
    before = read_route(custom)
    rule = k8s.faults.drop("PATCH", "httproutes", ROUTE, apply="before")

    with pytest.raises(urllib3.exceptions.ProtocolError):
        patch_route(custom, weight_ops(50, 50))

    after = read_route(custom)
    assert weights(after) == [(STABLE, 50), (CANARY, 50)]
    assert version(after) > version(before)
    assert [(r.status, r.outcome) for r in rule.requests] == [(0, 200)]


def test_a_dropped_request_changes_nothing(k8s, custom):
    before = read_route(custom)
    rule = k8s.faults.drop("PATCH", "httproutes", ROUTE, apply="never")

    with pytest.raises(urllib3.exceptions.ProtocolError):
        patch_route(custom, weight_ops(50, 50))

    after = read_route(custom)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert weights(after) == [(STABLE, 90), (CANARY, 10)]
    assert [(r.status, r.outcome) for r in rule.requests] == [(0, 0)]
    assert k8s.faults.rules() == []  # used up


def test_a_failure_answer_can_hide_a_write_that_landed(k8s, custom):
    k8s.faults.fail("PATCH", "httproutes", ROUTE, status=504, apply="before")

    with pytest.raises(ApiException) as caught:
        patch_route(custom, weight_ops(50, 50))

    assert caught.value.status == 504
    assert status_body(caught)["reason"] == "Timeout"
    assert weights(read_route(custom)) == [(STABLE, 50), (CANARY, 50)]
    assert k8s.requests("PATCH")[0].outcome == 200


def test_a_rule_takes_only_its_method_resource_and_name_for_its_times(k8s, custom):
    k8s.put(httproute(NS, "other", [[(STABLE, 100)]]))
    rule = k8s.faults.drop("PATCH", "HTTPRoute", ROUTE, apply="never", times=2)

    read_route(custom)  # a GET of the route
    patch_route(custom, weight_ops(1, 2)[:1], name="other")
    for _ in range(2):
        with pytest.raises(urllib3.exceptions.ProtocolError):
            patch_route(custom, weight_ops(50, 50))
    patch_route(custom, weight_ops(60, 40))  # the rule is used up

    assert [r.path.rsplit("/", 1)[1] for r in rule.requests] == [ROUTE, ROUTE]
    assert weights(read_route(custom)) == [(STABLE, 60), (CANARY, 40)]
    assert [r.status for r in k8s.requests("PATCH")] == [200, 0, 0, 200]


def test_concurrent_requests_each_take_a_distinct_use_of_a_rule(k8s):
    k8s.put(configmap(NS, "cm", {"a": "b"}))
    rule = k8s.faults.drop("GET", "configmaps", "cm", apply="never", times=3)
    threads, start = 8, threading.Barrier(8)
    outcomes: list[str] = []
    outcomes_lock = threading.Lock()

    def reader() -> None:
        api_client = api_client_for_host(k8s.url, use_env_proxy=False)
        try:
            start.wait(timeout=30)
            client.CoreV1Api(api_client).read_namespaced_config_map(
                "cm", NS, _request_timeout=(15.0, 30.0)
            )
            outcome = "answered"
        except urllib3.exceptions.HTTPError:
            outcome = "dropped"
        finally:
            api_client.close()
        with outcomes_lock:
            outcomes.append(outcome)

    workers = [threading.Thread(target=reader) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert sorted(outcomes) == ["answered"] * 5 + ["dropped"] * 3
    assert len(rule.requests) == 3 and rule.wait(timeout=1)


def test_clear_forgets_pending_faults_and_lands_held_requests(k8s, custom, core):
    k8s.put(configmap(NS, "cm", {"a": "b"}))
    held = k8s.faults.hold("PATCH", "httproutes", ROUTE, seconds=600, apply="after")
    k8s.faults.drop("GET", "configmaps", apply="never", times=3)
    k8s.fail_next(503, method="GET")
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        patch_route(custom, weight_ops(50, 50), timeout=(2.0, 1.0))

    k8s.faults.clear()

    assert held.wait(timeout=10)
    assert k8s.faults.rules() == []
    assert core.read_namespaced_config_map("cm", NS).data == {"a": "b"}  # no drop, no 503
    assert weights(read_route(custom)) == [(STABLE, 50), (CANARY, 50)]


@pytest.mark.parametrize(
    ("call", "kwargs"),
    [
        ("hold", {"method": "PATCH", "resource": "httproutes", "seconds": 1, "apply": "never"}),
        ("hold", {"method": "PATCH", "resource": "httproutes", "seconds": 0, "apply": "after"}),
        ("drop", {"method": "PATCH", "resource": "pods", "apply": "never"}),
        ("drop", {"method": "FETCH", "resource": "httproutes", "apply": "never"}),
        ("drop", {"method": "PATCH", "resource": "httproutes", "apply": "later"}),
        ("drop", {"method": "PATCH", "resource": "httproutes", "apply": "never", "times": 0}),
        ("fail", {"method": "PATCH", "resource": "httproutes", "status": 200}),
    ],
)
def test_a_malformed_rule_is_refused(k8s, call, kwargs):
    with pytest.raises(ValueError):
        getattr(k8s.faults, call)(**kwargs)
    assert k8s.faults.rules() == []


# --- writes behind the console's back -------------------------------------------------------


def test_a_weight_change_behind_the_back_bumps_version_and_generation(k8s, custom):
    route = httproute(NS, ROUTE, [[(STABLE, 90), (CANARY, 10)]])
    route["status"] = {"parents": [{"parentRef": {"name": "llm-gateway"}, "conditions": []}]}
    seen = k8s.put(route)

    edited = k8s.store.set_route_weights(NS, ROUTE, 0, {STABLE: 70, CANARY: 30})

    assert weights(edited) == [(STABLE, 70), (CANARY, 30)]
    assert version(edited) > version(seen)
    assert edited["metadata"]["generation"] == seen["metadata"]["generation"] + 1
    assert edited["metadata"]["uid"] == seen["metadata"]["uid"]
    assert edited["status"] == route["status"]
    assert k8s.requests() == []  # no HTTP: the client cannot have seen it
    assert read_route(custom) == edited


def test_a_patch_testing_the_old_weights_is_refused_after_a_change_behind_the_back(k8s, custom):
    seen = read_route(custom)
    k8s.store.set_route_weights(NS, ROUTE, 0, {STABLE: 70, CANARY: 30})
    base = "/spec/rules/0/backendRefs"
    on_old_weights = [
        {"op": "test", "path": f"{base}/0/weight", "value": 90},
        {"op": "test", "path": f"{base}/1/weight", "value": 10},
        *weight_ops(50, 50),
    ]
    old_version = seen["metadata"]["resourceVersion"]
    on_old_version = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": old_version},
        *weight_ops(50, 50),
    ]

    for ops in (on_old_weights, on_old_version):
        with pytest.raises(ApiException) as caught:
            patch_route(custom, ops)
        assert caught.value.status == 422
        assert status_body(caught)["reason"] == "Invalid"

    assert weights(read_route(custom)) == [(STABLE, 70), (CANARY, 30)]


def test_an_edit_that_changes_nothing_keeps_the_version(k8s):
    seen = k8s.get("httproutes", NS, ROUTE)

    same = k8s.store.set_route_weights(NS, ROUTE, 0, {STABLE: 90})

    assert same["metadata"]["resourceVersion"] == seen["metadata"]["resourceVersion"]
    assert same["metadata"]["generation"] == seen["metadata"]["generation"]


def test_a_weight_of_none_removes_the_field(k8s):
    edited = k8s.store.set_route_weights(NS, ROUTE, 0, {CANARY: None})

    assert "weight" not in edited["spec"]["rules"][0]["backendRefs"][1]
    assert weights(edited) == [(STABLE, 90), (CANARY, 1)]  # the Gateway API default


@pytest.mark.parametrize(
    ("name", "rule", "backend"),
    [("missing", 0, STABLE), (ROUTE, 1, STABLE), (ROUTE, 0, "llm-classifier-v9")],
)
def test_a_weight_change_of_something_missing_is_a_key_error(k8s, name, rule, backend):
    seen = k8s.get("httproutes", NS, ROUTE)

    with pytest.raises(KeyError):
        k8s.store.set_route_weights(NS, name, rule, {backend: 50})

    assert k8s.get("httproutes", NS, ROUTE) == seen


# --- real API server answers the stand-in lacked --------------------------------------------


def test_a_put_of_a_missing_configmap_is_not_found(k8s, core):
    body = configmap(NS, "nope", {"a": "b"})

    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_config_map("nope", NS, body)

    assert caught.value.status == 404
    assert status_body(caught)["reason"] == "NotFound"
    assert status_body(caught)["message"] == 'configmaps "nope" not found'
    assert k8s.get("configmaps", NS, "nope") is None


def test_the_old_put_creates_answer_is_behind_a_flag():
    with KubeApiStandin(put_creates_configmaps=True) as k8s:
        api_client = api_client_for_host(k8s.url, use_env_proxy=False)
        created = client.CoreV1Api(api_client).replace_namespaced_config_map(
            "made", NS, configmap(NS, "made", {"a": "b"})
        )
        api_client.close()

    assert created.data == {"a": "b"}
    assert k8s.requests("PUT")[0].status == 201
    assert k8s.get("configmaps", NS, "made")["data"] == {"a": "b"}


def test_an_expired_continue_token_is_gone(k8s, core):
    for name in ("a", "b", "c"):
        k8s.put(configmap(NS, name, {}))
    first = core.list_namespaced_config_map(NS, limit=2)
    token = first.metadata._continue

    assert k8s.store.expire_continue_tokens() == 1
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map(NS, limit=2, _continue=token)

    assert caught.value.status == 410
    body = status_body(caught)
    assert (body["reason"], body["code"]) == ("Expired", 410)
    assert "continue parameter is too old" in body["message"]
    inconsistent = body["metadata"]["continue"]
    assert inconsistent and inconsistent != token
    rest = core.list_namespaced_config_map(NS, limit=2, _continue=inconsistent)
    assert [item.metadata.name for item in rest.items] == ["c"]
    # A new list starts over and pages on as usual.
    again = core.list_namespaced_config_map(NS, limit=2)
    follow = core.list_namespaced_config_map(NS, limit=2, _continue=again.metadata._continue)
    assert [item.metadata.name for item in follow.items] == ["c"]


@pytest.mark.parametrize(
    "ops, status",
    [
        ([{"op": "frobnicate", "path": "/spec"}], 400),  # no such operation
        ([{"op": "replace", "path": "/spec/nothing/here", "value": 1}], 422),
        ([{"op": "test", "path": "/spec/rules/0/backendRefs/0/weight", "value": True}], 422),
    ],
)
def test_a_json_patch_that_cannot_apply_is_refused_as_the_server_does(k8s, custom, ops, status):
    before = read_route(custom)
    with pytest.raises(ApiException) as caught:
        patch_route(custom, ops)
    assert caught.value.status == status
    assert read_route(custom) == before
