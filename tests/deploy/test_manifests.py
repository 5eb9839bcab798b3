"""deploy/: the rendered manifests validate and hold what the operator's guide promises."""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from routing.baseline import v7_config
from routing.engine import verify_canonical

from . import kustomize_lite
from .render import DEPLOY, KUBECTL, by_kind, kubectl_kustomize, one, render

PRODUCTION = DEPLOY / "overlays" / "production"
K8S_VERSION = "1.33.0"  # schemas to validate against; the manifests need 1.30+ (preStop sleep)
WORKLOADS = ("Deployment", "Job")
SLOTS = ("llm-classifier-blue", "llm-classifier-green")


@pytest.fixture(scope="module")
def objects():
    return render(PRODUCTION)


def pod_specs(objects):
    for obj in objects:
        if obj["kind"] in WORKLOADS:
            yield obj, obj["spec"]["template"]["spec"]


def containers(objects):
    for obj, pod in pod_specs(objects):
        for container in pod.get("initContainers", []) + pod["containers"]:
            yield obj, pod, container


def test_every_object_of_a_kind_kubernetes_knows_validates_against_its_schema(objects):
    validated, unknown = [], []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            unknown.append(obj["kind"])
            continue
        validated.append(obj["kind"])
    # Only the Gateway API's HTTPRoute is outside the core schemas (checked below by hand).
    assert set(unknown) == {"HTTPRoute"}
    assert {"Deployment", "Service", "Job", "Role", "PodDisruptionBudget"} <= set(validated)


def test_a_schema_violation_is_caught(objects):
    broken = copy.deepcopy(one(objects, "Deployment", "cascade-console-beat"))
    broken["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
@pytest.mark.parametrize("folder", ["base", "overlays/production"])
def test_the_small_renderer_renders_what_kubectl_renders(folder):
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    ours = {key(o): o for o in kustomize_lite.build(DEPLOY / folder)}
    theirs = {key(o): o for o in kubectl_kustomize(DEPLOY / folder)}
    assert ours == theirs


def test_the_prometheus_operator_component_renders_a_pod_monitor_for_the_slots(tmp_path):
    overlay = tmp_path / "overlay"
    shutil.copytree(PRODUCTION, overlay)
    k = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    # kustomize takes relative paths only.
    k["resources"] = [os.path.relpath(DEPLOY / "base", overlay)]
    k["components"] = [os.path.relpath(DEPLOY / "components" / "servicemonitor", overlay)]
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(k))
    rendered = kubectl_kustomize(overlay) if KUBECTL else kustomize_lite.build(overlay)
    monitor = one(rendered, "PodMonitor", "llm-classifier")
    assert monitor["metadata"]["namespace"] == "ai-inference"
    selector = monitor["spec"]["selector"]["matchLabels"]
    for slot in SLOTS:
        labels = one(rendered, "Deployment", slot)["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()


def test_every_container_runs_as_non_root_on_a_read_only_root_without_escalation(objects):
    for obj, pod, container in containers(objects):
        where = f"{obj['kind']} {obj['metadata']['name']} / {container['name']}"
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["runAsUser"] > 0, where
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True, where
        assert sc["allowPrivilegeEscalation"] is False, where
        assert sc["capabilities"] == {"drop": ["ALL"]}, where
        writable = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/tmp" in writable, where  # noqa: S108 (an emptyDir, the only writable path)


def test_every_container_has_requests_and_limits(objects):
    for obj, _, container in containers(objects):
        resources = container["resources"]
        for part in ("requests", "limits"):
            assert set(resources[part]) == {"cpu", "memory"}, (obj["metadata"]["name"], part)


def test_only_the_web_and_worker_pods_get_an_api_token(objects):
    with_token = {
        obj["metadata"]["name"]: pod.get("serviceAccountName")
        for obj, pod in pod_specs(objects)
        if pod.get("automountServiceAccountToken") is not False
    }
    assert with_token == {
        "cascade-console-web": "cascade-console",
        "cascade-console-worker": "cascade-console",
    }


def test_secrets_are_referenced_never_inlined(objects):
    assert by_kind(objects, "Secret") == {}
    secretish = ("SECRET", "TOKEN", "PASSWORD", "API_KEY", "DATABASE_URL", "BROKER_URL")
    for obj, _, container in containers(objects):
        for env in container.get("env", []):
            if any(word in env["name"] for word in secretish):
                # Either a file path in a mounted Secret, or a reference to a Secret's key.
                assert env["name"].endswith("_FILE") or "secretKeyRef" in env.get(
                    "valueFrom", {}
                ), (obj["metadata"]["name"], env)
                if env["name"].endswith("_FILE"):
                    assert env["value"].startswith("/run/secrets/")
    for cm in by_kind(objects, "ConfigMap").values():
        for key in cm["data"]:
            assert not any(word in key for word in secretish), (cm["metadata"]["name"], key)


def test_every_referenced_configmap_and_secret_key_is_consistent(objects):
    configmaps = by_kind(objects, "ConfigMap")
    secrets_used = set()
    for _obj, pod in pod_specs(objects):
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps
            if "secret" in volume:
                secrets_used.add(volume["secret"]["secretName"])
        for container in pod.get("initContainers", []) + pod["containers"]:
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in configmaps
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            for env in container.get("env", []):
                if env["name"].endswith("_FILE"):
                    assert str(Path(env["value"]).parent) in mounts, env
    # The Secrets the operator's guide tells them to create, and no others.
    assert secrets_used == {
        "cascade-console",
        "cascade-langfuse",
        "llm-classifier-admin",
        "llm-classifier-backends",
    }


def test_beat_runs_exactly_one_replica_and_never_two_during_a_rollout(objects):
    beat = one(objects, "Deployment", "cascade-console-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    assert "cascade-console-beat" not in by_kind(objects, "PodDisruptionBudget")


def test_long_running_http_containers_have_health_and_readiness_probes(objects):
    for name in ("cascade-console-web", *SLOTS):
        (container,) = one(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_every_pod_disruption_budget_and_service_selects_a_workload(objects):
    templates = [
        o["spec"]["template"]["metadata"]["labels"] for o in objects if o["kind"] == "Deployment"
    ]
    for pdb in by_kind(objects, "PodDisruptionBudget").values():
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert sum(selector.items() <= t.items() for t in templates) == 1, pdb["metadata"]
    for service in by_kind(objects, "Service").values():
        selector = service["spec"]["selector"]
        assert sum(selector.items() <= t.items() for t in templates) == 1, service["metadata"]


def test_the_classifier_route_lists_both_slots_with_all_traffic_on_one(objects):
    route = one(objects, "HTTPRoute", "llm-classifier")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    (rule,) = route["spec"]["rules"]
    refs = rule["backendRefs"]
    assert [r["name"] for r in refs] == list(SLOTS)
    assert sorted(r["weight"] for r in refs) == [0, 100]
    services = by_kind(objects, "Service")
    for ref in refs:
        ports = [p["port"] for p in services[ref["name"]]["spec"]["ports"]]
        assert ref["port"] in ports
    for route in by_kind(objects, "HTTPRoute").values():
        assert route["spec"]["parentRefs"], route["metadata"]["name"]


def test_the_slot_configs_are_the_canonical_v7_config_mounted_as_a_watched_file(objects):
    expected = v7_config()
    for slot in SLOTS:
        cm = one(objects, "ConfigMap", f"{slot}-config")
        config = json.loads(cm["data"]["config.json"])
        verify_canonical(config)
        assert config == expected
        pod = one(objects, "Deployment", slot)["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "config"]
        assert "subPath" not in mount  # a subPath mount never sees the ConfigMap change
        assert env["CASCADE_POD_CONFIG"] == f"{mount['mountPath']}/config.json"
        (volume,) = [v for v in pod["volumes"] if v["name"] == "config"]
        assert volume["configMap"]["name"] == f"{slot}-config"


def test_the_slot_pods_are_scraped_by_prometheus(objects):
    for slot in SLOTS:
        template = one(objects, "Deployment", slot)["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        (container,) = template["spec"]["containers"]
        assert int(annotations["prometheus.io/port"]) == container["ports"][0]["containerPort"]


def test_objects_the_console_changes_at_run_time_are_marked_seed_only(objects):
    seed_only = {
        (o["kind"], o["metadata"]["name"])
        for o in objects
        if o["metadata"].get("labels", {}).get("cascade.dev/seed-only") == "true"
    }
    assert seed_only == {
        ("ConfigMap", "llm-classifier-blue-config"),
        ("ConfigMap", "llm-classifier-green-config"),
        ("HTTPRoute", "llm-classifier"),
    }


def test_the_overlay_pins_both_images(objects):
    images = {c["image"] for _, _, c in containers(objects)}
    assert images == {
        "registry.example.com/cascade/cascade-console:0.1.0",
        "registry.example.com/cascade/cascade-pod:0.1.0",
    }
