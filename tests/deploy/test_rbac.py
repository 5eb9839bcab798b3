"""The console's Role allows exactly the API calls rollouts/k8s_adapter.py makes.

Two independent derivations of "the calls the adapter makes" must agree with the Role:
the requests the real client sends when every adapter method is driven against the
Kubernetes API stand-in (request log), and the client methods the adapter's source calls.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from rollouts import k8s_adapter
from rollouts.k8s_adapter import KubeAdapter, NotFound, api_client_for_host
from tests.standins.k8s_api import (
    KubeApiStandin,
    configmap,
    endpoint_slice,
    endpoints,
    httproute,
)

from .render import DEPLOY, one, render

NS = "ai-inference"
ROUTE = "llm-classifier"
SLOTS = ("llm-classifier-blue", "llm-classifier-green")

_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"/namespaces/(?P<ns>[^/]+)/(?P<resource>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$"
)
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def rbac_attributes(method: str, path: str, query: dict[str, str]) -> tuple[str, str, str, str]:
    """(apiGroup, resource, verb, name) of a request, as the API server's authorizer sees it."""
    match = _PATH.match(path)
    assert match, f"not a namespaced resource request: {method} {path}"
    assert match["ns"] == NS
    assert match["sub"] is None, f"subresource request {path}"
    name = match["name"] or ""
    if method == "GET":
        verb = "get" if name else ("watch" if query.get("watch") in ("1", "true") else "list")
    else:
        verb = _VERBS[method]
    return (match["group"] or "", match["resource"], verb, name)


def allowed(rules: list[dict], request: tuple[str, str, str, str]) -> list[int]:
    """Indexes of the rules that allow the request."""
    group, resource, verb, name = request
    hits = []
    for i, rule in enumerate(rules):
        names = rule.get("resourceNames") or []
        if (
            group in rule["apiGroups"]
            and resource in rule["resources"]
            and verb in rule["verbs"]
            and (not names or (name and name in names))
        ):
            hits.append(i)
    return hits


@pytest.fixture(scope="module")
def role():
    objects = render(DEPLOY / "overlays" / "production")
    return one(objects, "Role", "cascade-console")


@pytest.fixture(scope="module")
def recorded():
    """Every adapter method, driven against the stand-in; the requests it logged."""
    with KubeApiStandin() as k8s:
        k8s.put(httproute(NS, ROUTE, [[(SLOTS[0], 100), (SLOTS[1], 0)]]))
        for slot in SLOTS:
            k8s.put(configmap(NS, f"{slot}-config", {"config.json": "{}"}))
            k8s.put(endpoint_slice(NS, f"{slot}-x1", slot, [("10.0.0.1", True, f"{slot}-0")]))
            k8s.put(endpoints(NS, slot, ready=[("10.0.0.2", f"{slot}-0")]))
        with KubeAdapter(api_client_for_host(k8s.url, use_env_proxy=False)) as kube:
            for slot in SLOTS:
                name = f"{slot}-config"
                kube.read_configmap(NS, name)
                kube.apply_configmap(NS, name, {"config.json": '{"v": 8}'})  # update
                kube.apply_configmap(NS, name, {"config.json": '{"v": 8}'})  # unchanged
                k8s.remove("configmaps", NS, name)
                with pytest.raises(NotFound):  # refused after the read: never created
                    kube.apply_configmap(NS, name, {"config.json": '{"v": 8}'})
                assert kube.ready_pod_addresses(NS, slot)
            kube.read_httproute(NS, ROUTE)
            kube.set_weights(NS, ROUTE, 0, {SLOTS[0]: 90, SLOTS[1]: 10})
            k8s.disable("endpointslices")  # a cluster without discovery.k8s.io/v1
            for slot in SLOTS:
                assert kube.ready_pod_addresses(NS, slot)
        return [(r.method, r.path, dict(r.query), r.status) for r in k8s.requests()]


def test_the_role_allows_every_request_the_adapter_makes(role, recorded):
    refused = [
        (method, path)
        for method, path, query, _ in recorded
        if not allowed(role["rules"], rbac_attributes(method, path, query))
    ]
    assert refused == []


def test_every_verb_and_resource_name_of_the_role_is_used_by_the_adapter(role, recorded):
    requests = [rbac_attributes(m, p, q) for m, p, q, _ in recorded]
    unused = []
    for i, rule in enumerate(role["rules"]):
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    for name in rule.get("resourceNames") or [None]:
                        if not any(
                            (g, r, v) == (group, resource, verb)
                            and (name is None or n == name)
                            and i in allowed(role["rules"], (g, r, v, n))
                            for g, r, v, n in requests
                        ):
                            unused.append((group, resource, verb, name))
    assert unused == []


def test_the_role_creates_nothing_and_names_every_configmap_it_may_touch(role, recorded):
    # A create cannot be limited by resourceNames: granting it would allow any ConfigMap.
    assert [rule for rule in role["rules"] if "create" in rule["verbs"]] == []
    assert [method for method, *_ in recorded if method == "POST"] == []
    for rule in role["rules"]:
        if "configmaps" in rule["resources"]:
            assert rule.get("resourceNames"), rule


def test_the_kit_creates_every_configmap_the_role_names_marked_for_restore(role):
    # The console never creates them, so the kit must, and an operator restores a deleted one
    # with `kubectl apply -k <overlay> -l cascade.dev/seed-only=true,cascade.dev/slot=<slot>`.
    objects = render(DEPLOY / "overlays" / "production")
    named = {
        name
        for rule in role["rules"]
        if "configmaps" in rule["resources"]
        for name in rule["resourceNames"]
    }
    assert named == {f"{slot}-config" for slot in SLOTS}
    for slot in SLOTS:
        restored = [
            (o["kind"], o["metadata"]["name"])
            for o in objects
            if o["metadata"].get("labels", {}).get("cascade.dev/seed-only") == "true"
            and o["metadata"]["labels"].get("cascade.dev/slot") == slot.rsplit("-", 1)[1]
        ]
        assert restored == [("ConfigMap", f"{slot}-config")]


def test_the_guide_restores_a_deleted_slot_configmap_and_nothing_else():
    guide = (DEPLOY.parent / "docs" / "operator-guide.md").read_text(encoding="utf-8")
    (selector,) = re.findall(r"kubectl apply -k \S+ -l (\S*cascade\.dev/slot=\S+)", guide)
    wanted = dict(term.split("=", 1) for term in selector.split(","))
    objects = render(DEPLOY / "overlays" / "production")
    selected = [
        (o["kind"], o["metadata"]["name"])
        for o in objects
        if wanted.items() <= o["metadata"].get("labels", {}).items()
    ]
    assert selected == [("ConfigMap", "llm-classifier-green-config")]


def test_the_role_is_namespaced_and_nothing_is_cluster_wide():
    objects = render(DEPLOY / "overlays" / "production")
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
    binding = one(objects, "RoleBinding", "cascade-console")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "cascade-console",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "cascade-console", "namespace": NS}
    ]


# --- the same calls, read from the adapter's source -------------------------------------------

_CLIENT_ATTRS = {"_core": "", "_discovery": "discovery.k8s.io", "_custom": None}
_PREFIX_VERBS = {
    "read": "get",
    "get": "get",
    "list": "list",
    "create": "create",
    "replace": "update",
    "patch": "patch",
    "delete": "delete",
}
_CORE_RESOURCES = {"config_map": "configmaps", "endpoints": "endpoints"}
_DISCOVERY_RESOURCES = {"endpoint_slice": "endpointslices"}


def calls_in_adapter_source() -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of every ``self._core/_discovery/_custom.<method>(...)``."""
    source = Path(k8s_adapter.__file__).read_text(encoding="utf-8")
    found = set()
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        if not (
            isinstance(owner, ast.Attribute)
            and isinstance(owner.value, ast.Name)
            and owner.value.id == "self"
            and owner.attr in _CLIENT_ATTRS
        ):
            continue
        method = node.func.attr
        verb = _PREFIX_VERBS[method.split("_", 1)[0]]
        if owner.attr == "_custom":
            # (group, version, namespace, plural, ...): constants of the adapter module.
            group = getattr(k8s_adapter, node.args[0].id)
            resource = getattr(k8s_adapter, node.args[3].id)
        else:
            table = _CORE_RESOURCES if owner.attr == "_core" else _DISCOVERY_RESOURCES
            (resource,) = [r for suffix, r in table.items() if method.endswith(suffix)]
            group = _CLIENT_ATTRS[owner.attr]
        found.add((group, resource, verb))
    return found


def test_the_adapter_source_calls_exactly_what_the_recording_saw(recorded):
    seen = {rbac_attributes(m, p, q)[:3] for m, p, q, _ in recorded}
    assert calls_in_adapter_source() == seen


def test_the_roles_rules_match_the_adapter_source(role):
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == calls_in_adapter_source()
