"""Fixtures for rollouts: the Kubernetes API stand-in, a registered route, real pods."""

from __future__ import annotations

import pytest

from labeling.standin.fake_llm import FakeLLM
from rollouts.k8s_adapter import backend_weights
from rollouts.models import Route, Slot
from tests.pod.podkit import Pod, v7, write_config
from tests.standins.k8s_api import KubeApiStandin, configmap, endpoint_slice, httproute

NS = "llm"
HTTPROUTE = "llm-router"
STABLE = "llm-classifier-v7"
CANARY = "llm-classifier-v8"
POD_TOKEN = "pod-admin-token-for-tests"


def seed_slot_configmaps(k8s, slots=(STABLE, CANARY)) -> None:
    """The slots' ConfigMaps, as the deploy kit creates them (the console never does)."""
    for slot in slots:
        k8s.put(configmap(NS, f"{slot}-config", {"config.json": "{}"}))


@pytest.fixture
def k8s(settings):
    """The API stand-in, with the console pointed at it (CASCADE_K8S_HOST), holding the
    slots' ConfigMaps as an installed cluster does."""
    with KubeApiStandin() as api:
        seed_slot_configmaps(api)
        settings.CASCADE_K8S_TARGET = "host"
        settings.CASCADE_K8S_HOST = api.url
        settings.POD_ADMIN_TOKEN = POD_TOKEN
        settings.PUBLISH_TIMEOUT = 3
        settings.PUBLISH_POLL_INTERVAL = 50
        settings.PROMETHEUS_URL = ""
        settings.NOTIFY_WEBHOOK_URL = ""
        yield api


@pytest.fixture
def local_target(settings):
    """No cluster: the embedded local target."""
    settings.CASCADE_K8S_TARGET = "local"
    settings.PROMETHEUS_URL = ""
    settings.NOTIFY_WEBHOOK_URL = ""


def route_weights(k8s) -> list[tuple[str, int]]:
    return backend_weights(k8s.get("httproutes", NS, HTTPROUTE), 0)


@pytest.fixture
def slots(db):
    stable = Slot.objects.create(
        name=STABLE, namespace=NS, service=STABLE, deployment=STABLE, configmap=f"{STABLE}-config"
    )
    canary = Slot.objects.create(
        name=CANARY,
        namespace=NS,
        service=CANARY,
        deployment=CANARY,
        configmap=f"{CANARY}-config",
        admin_port_name="http",
    )
    return stable, canary


@pytest.fixture
def route(slots):
    stable, canary = slots
    return Route.objects.create(
        name="router",
        namespace=NS,
        httproute=HTTPROUTE,
        rule_index=0,
        stable_backend=STABLE,
        canary_backend=CANARY,
        stable_slot=stable,
        canary_slot=canary,
    )


@pytest.fixture
def cluster_route(k8s, route):
    """The route, also present in the stand-in as an HTTPRoute with stable 100 / canary 0."""
    k8s.put(httproute(NS, HTTPROUTE, [[(STABLE, 100), (CANARY, 0)]]))
    return route


@pytest.fixture
def v8(draft, operator):
    from routing import services

    return services.version_freeze(actor=operator, version=draft)


@pytest.fixture(scope="session")
def fake_backends():
    with FakeLLM("weak") as weak, FakeLLM("strong") as strong:
        yield weak, strong


@pytest.fixture(scope="module")
def pods(fake_backends, tmp_path_factory):
    """Two real classifier pods serving a v7 config, with the admin token set."""
    weak, strong = fake_backends
    started = []
    try:
        for i in range(2):
            path = tmp_path_factory.mktemp(f"pod{i}") / "config.json"
            write_config(path, v7())
            started.append(
                Pod(
                    [
                        "--config", str(path),
                        "--weak-url", weak.base_url,
                        "--strong-url", strong.base_url,
                        "--weak-model", "qwen3-4b",
                        "--strong-model", "glm-5",
                        "--first-byte-timeout", "0.5",
                        "--reload-interval", "0",
                    ],
                    {"CASCADE_POD_ADMIN_TOKEN": POD_TOKEN},
                )
            )  # fmt: skip
        yield started
    finally:
        for pod in started:
            pod.stop()


def port_of(pod) -> int:
    return int(pod.url.rsplit(":", 1)[1])


def register_pods(k8s, pods, service=CANARY, ready=True):
    """One EndpointSlice per pod (each listens on its own port on 127.0.0.1)."""
    for i, pod in enumerate(pods):
        k8s.put(
            endpoint_slice(
                NS,
                f"{service}-{i}",
                service,
                [("127.0.0.1", ready, f"{service}-pod-{i}")],
                port=port_of(pod),
            )
        )


@pytest.fixture
def fresh_pods(pods):
    """The shared pods, set back to the v7 config before the test."""
    import httpx

    for pod in pods:
        answer = httpx.put(
            f"{pod.url}/admin/config",
            json=v7(),
            headers={"Authorization": f"Bearer {POD_TOKEN}"},
            trust_env=False,
        )
        assert answer.status_code == 200, answer.text
    return pods


@pytest.fixture
def v9_scored(v8, operator):
    """A frozen scorer version (schema 2)."""
    from routing import services as routing_services
    from tests.pod.podkit import SCORER

    draft = routing_services.version_copy(actor=operator, source=v8, name="v9")
    draft = routing_services.version_update_draft(actor=operator, version=draft, scorer=SCORER)
    return routing_services.version_freeze(actor=operator, version=draft)
