"""The Kubernetes adapter, driven through the real ``kubernetes`` client against the stand-in."""

import socket
import threading
import time

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from rollouts.k8s_adapter import (
    InvalidWeights,
    KubeAdapter,
    KubeConfigError,
    KubeError,
    NotFound,
    PodAddress,
    RouteChanged,
    api_client_for_host,
    api_client_from_environment,
    backend_weights,
    retry_on_conflict,
)
from tests.standins.k8s_api import (
    KubeApiStandin,
    configmap,
    endpoint_slice,
    endpoints,
    httproute,
)

NS = "llm"
ROUTE = "llm-router"
STABLE = "llm-classifier-v7"
CANARY = "llm-classifier-v8"


def no_sleep(_seconds: float) -> None:
    pass


@pytest.fixture
def k8s():
    with KubeApiStandin() as api:
        yield api


@pytest.fixture
def kube(k8s):
    api_client = api_client_for_host(k8s.url, use_env_proxy=False)
    with KubeAdapter(api_client, request_timeout=(1.0, 2.0)) as adapter:
        yield adapter


@pytest.fixture
def raw(k8s):
    """The bare client, for checking what the stand-in answers to calls the adapter avoids."""
    api_client = api_client_for_host(k8s.url, use_env_proxy=False)
    yield api_client
    api_client.close()


def seed_route(k8s, backends=((STABLE, 90), (CANARY, 10))):
    return k8s.put(httproute(NS, ROUTE, [list(backends)]))


def stored_weights(k8s):
    return backend_weights(k8s.get("httproutes", NS, ROUTE), 0)


# --- ConfigMaps -----------------------------------------------------------------------------


def test_a_missing_configmap_is_refused_not_created(k8s, kube):
    with pytest.raises(NotFound) as caught:
        kube.apply_configmap(NS, "classifier-v8", {"config.json": '{"v": 1}'})

    assert not caught.value.retryable
    assert caught.value.status == 404
    message = str(caught.value)
    assert f"ConfigMap {NS}/classifier-v8 of the slot is missing" in message
    assert "kubectl apply -k" in message
    assert [r.method for r in k8s.requests()] == ["GET"]  # no POST: the Role has no create
    assert k8s.get("configmaps", NS, "classifier-v8") is None


def test_a_missing_configmap_is_not_retried_on_conflict(k8s, kube):
    with pytest.raises(NotFound):
        retry_on_conflict(lambda: kube.apply_configmap(NS, "x", {"a": "b"}), sleep=no_sleep)

    assert len(k8s.requests()) == 1


def test_apply_configmap_updates_with_the_read_resource_version(k8s, kube):
    seeded = k8s.put(configmap(NS, "classifier-v8", {"config.json": '{"v": 1}'}, {"app": "c"}))

    first = kube.apply_configmap(NS, "classifier-v8", {"config.json": '{"v": 2}'}, {"ver": "8"})
    second = kube.apply_configmap(NS, "classifier-v8", {"config.json": '{"v": 3}'}, {"ver": "9"})

    assert (first.outcome, second.outcome) == ("updated", "updated")
    assert k8s.requests("POST") == []
    puts = k8s.requests("PUT")
    assert [r.status for r in puts] == [200, 200]
    assert puts[0].body["metadata"]["resourceVersion"] == seeded["metadata"]["resourceVersion"]
    assert puts[1].body["metadata"]["resourceVersion"] == first.configmap.resource_version
    assert int(second.configmap.resource_version) > int(first.configmap.resource_version)
    stored = kube.read_configmap(NS, "classifier-v8")
    assert stored.data == {"config.json": '{"v": 3}'}
    assert stored.labels == {"app": "c", "ver": "9"}


def test_apply_configmap_keeps_what_others_put_on_the_object(k8s, kube):
    seeded = configmap(NS, "classifier-v8", {"config.json": "old"}, {"team": "ml"})
    seeded["metadata"]["annotations"] = {"owner": "platform"}
    seeded["binaryData"] = {"blob": "AAE="}
    k8s.put(seeded)

    kube.apply_configmap(NS, "classifier-v8", {"config.json": "new"}, {"app": "c"})

    stored = k8s.get("configmaps", NS, "classifier-v8")
    assert stored["data"] == {"config.json": "new"}
    assert stored["metadata"]["labels"] == {"team": "ml", "app": "c"}
    assert stored["metadata"]["annotations"] == {"owner": "platform"}
    assert stored["binaryData"] == {"blob": "AAE="}


def test_apply_configmap_writes_nothing_when_it_already_matches(k8s, kube):
    k8s.put(configmap(NS, "classifier-v8", {"config.json": "same"}, {"app": "c", "x": "y"}))

    result = kube.apply_configmap(NS, "classifier-v8", {"config.json": "same"}, {"app": "c"})

    assert result.outcome == "unchanged"
    assert [r.method for r in k8s.requests()] == ["GET"]


def test_a_write_between_read_and_update_is_a_retryable_conflict(k8s, kube):
    k8s.put(configmap(NS, "classifier-v8", {"config.json": "v1"}))
    other_writer = configmap(NS, "classifier-v8", {"config.json": "someone else"})
    k8s.before_next(lambda: k8s.put(other_writer), method="PUT")

    with pytest.raises(KubeError) as caught:
        kube.apply_configmap(NS, "classifier-v8", {"config.json": "mine"})

    assert (caught.value.status, caught.value.reason) == (409, "Conflict")
    assert caught.value.retryable
    assert k8s.get("configmaps", NS, "classifier-v8")["data"] == {"config.json": "someone else"}


def test_retry_on_conflict_rereads_and_writes_on_top_of_the_other_write(k8s, kube):
    k8s.put(configmap(NS, "classifier-v8", {"config.json": "v1"}))
    other_writer = configmap(NS, "classifier-v8", {"config.json": "someone else"})
    k8s.before_next(lambda: k8s.put(other_writer), method="PUT")

    result = retry_on_conflict(
        lambda: kube.apply_configmap(NS, "classifier-v8", {"config.json": "mine"}),
        sleep=no_sleep,
    )

    assert result.outcome == "updated"
    assert [r.status for r in k8s.requests("PUT")] == [409, 200]
    assert len(k8s.requests("GET")) == 2
    assert k8s.get("configmaps", NS, "classifier-v8")["data"] == {"config.json": "mine"}


def test_retry_on_conflict_gives_up_after_its_attempts(k8s, kube):
    k8s.put(configmap(NS, "classifier-v8", {"config.json": "v1"}))
    rivals = iter(range(10))
    k8s.before_next(
        lambda: k8s.put(configmap(NS, "classifier-v8", {"config.json": f"rival {next(rivals)}"})),
        method="PUT",
        times=3,
    )

    with pytest.raises(KubeError) as caught:
        retry_on_conflict(
            lambda: kube.apply_configmap(NS, "classifier-v8", {"config.json": "mine"}),
            attempts=3,
            sleep=no_sleep,
        )

    assert caught.value.status == 409 and caught.value.retryable
    assert [r.status for r in k8s.requests("PUT")] == [409, 409, 409]


def test_retry_on_conflict_does_not_repeat_a_permanent_error(k8s, kube):
    k8s.fail_next(403, method="GET")

    with pytest.raises(KubeError) as caught:
        retry_on_conflict(lambda: kube.apply_configmap(NS, "x", {"a": "b"}), sleep=no_sleep)

    assert caught.value.status == 403
    assert len(k8s.requests()) == 1


def test_configmap_values_must_be_strings(k8s, kube):
    with pytest.raises(TypeError):
        kube.apply_configmap(NS, "classifier-v8", {"config.json": {"not": "a string"}})
    assert k8s.requests() == []


# --- HTTPRoute weights ----------------------------------------------------------------------


def test_set_weights_sends_a_json_patch_guarded_by_names_and_resource_version(k8s, kube):
    seeded = seed_route(k8s)

    route = kube.set_weights(NS, ROUTE, 0, {STABLE: 50, CANARY: 50})

    assert backend_weights(route, 0) == [(STABLE, 50), (CANARY, 50)]
    assert stored_weights(k8s) == [(STABLE, 50), (CANARY, 50)]
    (patch,) = k8s.requests("PATCH")
    assert patch.content_type == "application/json-patch+json"
    assert patch.body == [
        {"op": "test", "path": "/spec/rules/0/backendRefs/0/name", "value": STABLE},
        {"op": "test", "path": "/spec/rules/0/backendRefs/1/name", "value": CANARY},
        {
            "op": "test",
            "path": "/metadata/resourceVersion",
            "value": seeded["metadata"]["resourceVersion"],
        },
        {"op": "replace", "path": "/spec/rules/0/backendRefs/0/weight", "value": 50},
        {"op": "replace", "path": "/spec/rules/0/backendRefs/1/weight", "value": 50},
    ]


def test_weights_go_to_backends_by_name_whatever_their_order(k8s, kube):
    seed_route(k8s, backends=((CANARY, 10), (STABLE, 90)))

    kube.set_weights(NS, ROUTE, 0, {STABLE: 100, CANARY: 0})

    assert stored_weights(k8s) == [(CANARY, 0), (STABLE, 100)]


def test_a_route_reordered_after_the_read_is_refused_and_left_untouched(k8s, kube):
    seed_route(k8s, backends=((STABLE, 90), (CANARY, 10)))
    reordered = httproute(NS, ROUTE, [[(CANARY, 10), (STABLE, 90)]])
    k8s.before_next(lambda: k8s.put(reordered), method="PATCH")

    with pytest.raises(RouteChanged) as caught:
        kube.set_weights(NS, ROUTE, 0, {STABLE: 0, CANARY: 100})

    assert not caught.value.retryable
    assert caught.value.status == 422
    # An index-addressed patch would now have given the stable backend 100%.
    assert stored_weights(k8s) == [(CANARY, 10), (STABLE, 90)]
    assert [r.status for r in k8s.requests("PATCH")] == [422]


def test_a_concurrent_weight_edit_is_caught_by_the_resource_version_test(k8s, kube):
    seed_route(k8s)
    # Same order, so only the resourceVersion test can notice the other operator.
    other_operator = httproute(NS, ROUTE, [[(STABLE, 70), (CANARY, 30)]])
    k8s.before_next(lambda: k8s.put(other_operator), method="PATCH")

    with pytest.raises(RouteChanged):
        kube.set_weights(NS, ROUTE, 0, {STABLE: 50, CANARY: 50})

    assert stored_weights(k8s) == [(STABLE, 70), (CANARY, 30)]


def test_a_stale_expected_resource_version_is_refused_without_a_write(k8s, kube):
    seen = seed_route(k8s)
    k8s.put(httproute(NS, ROUTE, [[(STABLE, 80), (CANARY, 20)]]))

    with pytest.raises(RouteChanged):
        kube.set_weights(
            NS,
            ROUTE,
            0,
            {STABLE: 0, CANARY: 100},
            expected_resource_version=seen["metadata"]["resourceVersion"],
        )

    assert k8s.requests("PATCH") == []
    assert stored_weights(k8s) == [(STABLE, 80), (CANARY, 20)]


def test_a_current_expected_resource_version_is_accepted(k8s, kube):
    seen = seed_route(k8s)

    kube.set_weights(
        NS,
        ROUTE,
        0,
        {CANARY: 50, STABLE: 50},
        expected_resource_version=seen["metadata"]["resourceVersion"],
    )

    assert stored_weights(k8s) == [(STABLE, 50), (CANARY, 50)]


@pytest.mark.parametrize("weight", [-1, 101, 50.0, True, "50", None])
def test_weights_outside_0_to_100_are_refused_before_any_request(k8s, kube, weight):
    seed_route(k8s)

    with pytest.raises(InvalidWeights) as caught:
        kube.set_weights(NS, ROUTE, 0, {STABLE: weight, CANARY: 50})

    assert not caught.value.retryable
    assert k8s.requests() == []


def test_all_weights_zero_is_refused(k8s, kube):
    seed_route(k8s)

    with pytest.raises(InvalidWeights):
        kube.set_weights(NS, ROUTE, 0, {STABLE: 0, CANARY: 0})

    assert k8s.requests("PATCH") == []


def test_an_unknown_backend_is_refused(k8s, kube):
    seed_route(k8s)

    with pytest.raises(RouteChanged, match="llm-classifier-v9"):
        kube.set_weights(NS, ROUTE, 0, {"llm-classifier-v9": 10})

    assert k8s.requests("PATCH") == []


def test_a_missing_rule_is_refused(k8s, kube):
    seed_route(k8s)

    with pytest.raises(RouteChanged, match="rule 3"):
        kube.set_weights(NS, ROUTE, 3, {STABLE: 10})


def test_a_backend_without_a_weight_counts_as_one_and_gets_one(k8s, kube):
    seed_route(k8s, backends=((STABLE, None), (CANARY, 0)))
    assert backend_weights(kube.read_httproute(NS, ROUTE), 0) == [(STABLE, 1), (CANARY, 0)]

    kube.set_weights(NS, ROUTE, 0, {STABLE: 90, CANARY: 10})

    assert stored_weights(k8s) == [(STABLE, 90), (CANARY, 10)]
    (patch,) = k8s.requests("PATCH")
    assert {"op": "add", "path": "/spec/rules/0/backendRefs/0/weight", "value": 90} in patch.body


def test_weights_only_change_the_spec_not_the_route_status(k8s, kube):
    route = httproute(NS, ROUTE, [[(STABLE, 90), (CANARY, 10)]])
    route["status"] = {"parents": [{"parentRef": {"name": "llm-gateway"}, "conditions": []}]}
    k8s.put(route)

    kube.set_weights(NS, ROUTE, 0, {STABLE: 50, CANARY: 50})

    stored = k8s.get("httproutes", NS, ROUTE)
    assert stored["status"] == route["status"]
    assert stored["metadata"]["generation"] == 2


# --- errors ---------------------------------------------------------------------------------


def test_a_missing_object_is_a_permanent_not_found(kube):
    with pytest.raises(NotFound) as caught:
        kube.read_configmap(NS, "nope")
    assert (caught.value.status, caught.value.reason) == (404, "NotFound")
    assert not caught.value.retryable
    assert 'configmaps "nope" not found' in str(caught.value)

    with pytest.raises(NotFound):
        kube.read_httproute(NS, "nope")


def test_forbidden_is_permanent(k8s, kube):
    k8s.fail_next(403)

    with pytest.raises(KubeError) as caught:
        kube.read_configmap(NS, "classifier-v8")

    assert (caught.value.status, caught.value.reason) == (403, "Forbidden")
    assert not caught.value.retryable
    assert "cannot get resource" in str(caught.value)


@pytest.mark.parametrize("status", [429, 500, 503, 504])
def test_server_side_failures_are_retryable(k8s, kube, status):
    seed_route(k8s)
    k8s.fail_next(status, method="PATCH")

    with pytest.raises(KubeError) as caught:
        kube.set_weights(NS, ROUTE, 0, {STABLE: 50, CANARY: 50})

    assert caught.value.status == status
    assert caught.value.retryable
    assert not isinstance(caught.value, RouteChanged)
    assert stored_weights(k8s) == [(STABLE, 90), (CANARY, 10)]


def test_a_slow_server_is_a_retryable_timeout(k8s):
    k8s.delay_next(5.0)
    api_client = api_client_for_host(k8s.url, use_env_proxy=False)
    with (
        KubeAdapter(api_client, request_timeout=(1.0, 0.3)) as kube,
        pytest.raises(KubeError) as caught,
    ):
        kube.read_configmap(NS, "classifier-v8")

    assert (caught.value.reason, caught.value.status) == ("Timeout", None)
    assert caught.value.retryable


def test_a_dropped_connection_is_retryable(k8s, kube):
    k8s.drop_next()

    with pytest.raises(KubeError) as caught:
        kube.read_configmap(NS, "classifier-v8")

    assert caught.value.reason == "ConnectionError"
    assert caught.value.retryable


def test_an_unreachable_server_is_a_retryable_connection_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    api_client = api_client_for_host(f"http://127.0.0.1:{port}", use_env_proxy=False)

    with (
        KubeAdapter(api_client, request_timeout=(1.0, 1.0)) as kube,
        pytest.raises(KubeError) as caught,
    ):
        kube.read_httproute(NS, ROUTE)

    assert caught.value.reason == "ConnectionError"
    assert caught.value.retryable


# --- pod addresses --------------------------------------------------------------------------


def test_ready_pod_addresses_come_from_the_service_endpoint_slices(k8s, kube):
    k8s.put(
        endpoint_slice(
            NS,
            f"{CANARY}-abcde",
            CANARY,
            [
                ("10.0.0.1", True, "pod-a"),
                ("10.0.0.2", False, "pod-b"),
                ("10.0.0.3", None, "pod-c"),
            ],
        )
    )
    k8s.put(
        endpoint_slice(
            NS,
            f"{CANARY}-fghij",
            CANARY,
            [("10.0.0.4", False, "pod-d"), ("10.0.0.1", True, "pod-a")],
            terminating=["10.0.0.4"],
        )
    )
    k8s.put(endpoint_slice(NS, f"{STABLE}-klmno", STABLE, [("10.0.1.1", True, "pod-z")]))

    addresses = kube.ready_pod_addresses(NS, CANARY)

    assert addresses == [
        PodAddress("10.0.0.1", 8080, "pod-a", "http"),
        PodAddress("10.0.0.3", 8080, "pod-c", "http"),
    ]
    assert addresses[0].base_url == "http://10.0.0.1:8080"
    (listing,) = k8s.requests("GET", "/endpointslices")
    assert listing.path == f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"
    assert listing.query["labelSelector"] == f"kubernetes.io/service-name={CANARY}"


def test_ready_pod_addresses_keep_only_the_named_port(k8s, kube):
    piece = endpoint_slice(NS, f"{CANARY}-abcde", CANARY, [("10.0.0.1", True, "pod-a")])
    piece["ports"].append({"name": "metrics", "port": 9090, "protocol": "TCP"})
    k8s.put(piece)

    assert [a.port for a in kube.ready_pod_addresses(NS, CANARY)] == [8080, 9090]
    assert kube.ready_pod_addresses(NS, CANARY, port_name="http") == [
        PodAddress("10.0.0.1", 8080, "pod-a", "http")
    ]


def test_ready_pod_addresses_page_through_the_slices(k8s):
    for i in range(3):
        k8s.put(endpoint_slice(NS, f"{CANARY}-{i}", CANARY, [(f"10.0.0.{i}", True, f"p{i}")]))
    api_client = api_client_for_host(k8s.url, use_env_proxy=False)

    with KubeAdapter(api_client, list_page_size=2) as kube:
        addresses = kube.ready_pod_addresses(NS, CANARY)

    assert [a.ip for a in addresses] == ["10.0.0.0", "10.0.0.1", "10.0.0.2"]
    assert len(k8s.requests("GET", "/endpointslices")) == 2


def test_an_expired_continue_token_lists_again_from_the_start(k8s):
    for i in range(3):
        k8s.put(endpoint_slice(NS, f"{CANARY}-{i}", CANARY, [(f"10.0.0.{i}", True, f"p{i}")]))
    # The first page is answered late; meanwhile etcd compacts: its token is stale at once.
    first_page = k8s.faults.hold("GET", "endpointslices", seconds=10, apply="before")

    def compact():
        deadline = time.monotonic() + 10
        while first_page.in_flight == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert k8s.store.expire_continue_tokens() == 1
        first_page.release()

    compactor = threading.Thread(target=compact)
    compactor.start()
    api_client = api_client_for_host(k8s.url, use_env_proxy=False)
    with KubeAdapter(api_client, list_page_size=2) as kube:
        addresses = kube.ready_pod_addresses(NS, CANARY)
    compactor.join()

    assert [a.ip for a in addresses] == ["10.0.0.0", "10.0.0.1", "10.0.0.2"]
    listings = k8s.requests("GET", "/endpointslices")
    assert [r.status for r in listings] == [200, 410, 200, 200]
    assert "continue" not in listings[2].query  # from the top, not the inconsistent remainder


def test_weights_are_not_set_on_a_rule_with_a_third_backend(k8s, kube):
    seed_route(k8s, backends=((STABLE, 80), (CANARY, 10), ("legacy", 10)))

    with pytest.raises(RouteChanged) as caught:
        kube.set_weights(NS, ROUTE, 0, {STABLE: 50, CANARY: 50})

    assert "backendRefs ['legacy'] besides" in str(caught.value)
    assert not caught.value.retryable
    assert stored_weights(k8s) == [(STABLE, 80), (CANARY, 10), ("legacy", 10)]
    assert k8s.requests("PATCH") == []


def test_a_service_without_slices_has_no_ready_pods(kube):
    assert kube.ready_pod_addresses(NS, CANARY) == []


def test_ready_pod_addresses_fall_back_to_endpoints_without_endpoint_slices(k8s, kube):
    k8s.disable("endpointslices")
    k8s.put(endpoints(NS, CANARY, ready=[("10.0.0.1", "pod-a")], not_ready=[("10.0.0.2", "pod-b")]))

    addresses = kube.ready_pod_addresses(NS, CANARY)

    assert addresses == [PodAddress("10.0.0.1", 8080, "pod-a", "http")]
    assert [r.status for r in k8s.requests("GET")] == [404, 200]
    assert k8s.requests("GET")[0].path.startswith("/apis/discovery.k8s.io/v1/")
    assert k8s.requests("GET")[1].path == f"/api/v1/namespaces/{NS}/endpoints/{CANARY}"


# --- configuration from the environment -----------------------------------------------------


def test_a_kubeconfig_context_from_the_environment_picks_cluster_and_credentials(
    k8s, tmp_path, monkeypatch
):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        f"""
apiVersion: v1
kind: Config
clusters:
- name: elsewhere
  cluster: {{server: "http://127.0.0.1:9"}}
- name: standin
  cluster: {{server: "{k8s.url}"}}
users:
- name: someone
  user: {{token: token-someone}}
- name: console
  user: {{token: token-console}}
contexts:
- name: prod
  context: {{cluster: elsewhere, user: someone}}
- name: test
  context: {{cluster: standin, user: console, namespace: {NS}}}
current-context: prod
"""
    )
    environ = {"KUBECONFIG": str(kubeconfig), "CASCADE_K8S_CONTEXT": "test"}
    k8s.put(configmap(NS, "classifier-v8", {"config.json": "old"}))

    with KubeAdapter(api_client_from_environment(environ)) as kube:
        kube.apply_configmap(NS, "classifier-v8", {"config.json": "{}"})

    assert k8s.get("configmaps", NS, "classifier-v8")["data"] == {"config.json": "{}"}
    assert {r.headers.get("authorization") for r in k8s.requests()} == {"Bearer token-console"}


def test_no_cluster_configuration_fails_loudly():
    with pytest.raises(KubeConfigError) as caught:
        api_client_from_environment({})
    assert not caught.value.retryable


def test_a_context_without_a_kubeconfig_is_refused():
    with pytest.raises(KubeConfigError, match="CASCADE_K8S_CONTEXT"):
        api_client_from_environment(
            {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "CASCADE_K8S_CONTEXT": "prod"}
        )


def test_a_missing_kubeconfig_file_fails_loudly(tmp_path):
    with pytest.raises(KubeConfigError):
        api_client_from_environment({"KUBECONFIG": str(tmp_path / "missing")})


# --- the stand-in answers like an API server where the client can tell ----------------------


def test_standin_custom_object_create_is_201_and_a_duplicate_409(k8s, raw):
    custom = client.CustomObjectsApi(raw)
    route = httproute(NS, ROUTE, [[(STABLE, 100)]])

    created = custom.create_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", NS, "httproutes", route
    )
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", NS, "httproutes", route
        )

    assert created["metadata"]["resourceVersion"]
    assert k8s.requests("POST")[0].status == 201
    assert caught.value.status == 409
    assert '"reason": "AlreadyExists"' in caught.value.body.replace('":"', '": "')


def test_standin_refuses_a_custom_resource_put_without_resource_version(k8s, raw):
    seed_route(k8s)
    custom = client.CustomObjectsApi(raw)
    body = httproute(NS, ROUTE, [[(STABLE, 100)]])

    with pytest.raises(ApiException) as caught:
        custom.replace_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", NS, "httproutes", ROUTE, body
        )

    assert caught.value.status == 422
    assert stored_weights(k8s) == [(STABLE, 90), (CANARY, 10)]


def test_standin_takes_a_dict_patch_as_merge_patch_as_the_client_sends_it(k8s, raw):
    seed_route(k8s)
    custom = client.CustomObjectsApi(raw)

    custom.patch_namespaced_custom_object(
        "gateway.networking.k8s.io",
        "v1",
        NS,
        "httproutes",
        ROUTE,
        {"metadata": {"labels": {"stage": "canary"}}},
    )

    (patch,) = k8s.requests("PATCH")
    assert patch.content_type == "application/merge-patch+json"
    assert k8s.get("httproutes", NS, ROUTE)["metadata"]["labels"] == {"stage": "canary"}


def test_standin_refuses_strategic_merge_on_a_custom_resource(k8s, raw):
    seed_route(k8s)
    custom = client.CustomObjectsApi(raw)

    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object(
            "gateway.networking.k8s.io",
            "v1",
            NS,
            "httproutes",
            ROUTE,
            {"metadata": {"labels": {"stage": "canary"}}},
            _content_type="application/strategic-merge-patch+json",
        )

    assert caught.value.status == 415


def test_standin_filters_lists_by_label_selector(k8s, raw):
    k8s.put(configmap(NS, "a", {}, {"app": "router", "slot": "v7"}))
    k8s.put(configmap(NS, "b", {}, {"app": "router", "slot": "v8"}))
    k8s.put(configmap(NS, "c", {}, {"app": "other"}))
    k8s.put(configmap("elsewhere", "d", {}, {"app": "router", "slot": "v8"}))
    core = client.CoreV1Api(raw)

    def names(selector):
        listed = core.list_namespaced_config_map(NS, label_selector=selector)
        return [item.metadata.name for item in listed.items]

    assert names("app=router") == ["a", "b"]
    assert names("app=router,slot!=v7") == ["b"]
    assert names("slot in (v7, v8)") == ["a", "b"]
    assert names("app,!slot") == ["c"]
    with pytest.raises(ApiException) as caught:
        names("app in v7")
    assert caught.value.status == 400
