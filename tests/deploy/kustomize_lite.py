"""A small Kustomize renderer: only the features deploy/ uses, for machines without kubectl.

Handled (everything else raises ``Unsupported``, so a new feature cannot be ignored):
``resources`` (files, and folders holding a kustomization), ``components`` (folders with
``kind: Component``), ``namespace`` (namespaced objects, and RoleBinding subjects of kind
ServiceAccount), ``labels`` (``pairs`` on ``metadata.labels`` only), ``images`` (``newName``,
``newTag``, ``digest`` on containers and initContainers), ``configMapGenerator`` (``files``
with ``key=path``, ``options.labels``; ``options.disableNameSuffixHash: true`` is required:
hashed names are not reproduced) and ``patches`` (inline RFC 6902 JSON patches; targets by
``kind``, ``name`` and an equality ``labelSelector``). tests/deploy/test_manifests.py checks
that it renders exactly what ``kubectl kustomize`` renders wherever kubectl is installed.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonpatch
import yaml

KNOWN_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "components",
    "namespace",
    "labels",
    "images",
    "configMapGenerator",
    "patches",
}
# Kinds that live outside namespaces (of those a kustomization here could hold).
CLUSTER_KINDS = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


class Unsupported(Exception):
    """The kustomization uses a feature this renderer does not implement."""


def _load_kustomization(folder: Path) -> dict[str, Any]:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        if (folder / name).is_file():
            data = yaml.safe_load((folder / name).read_text(encoding="utf-8")) or {}
            unknown = set(data) - KNOWN_FIELDS
            if unknown:
                raise Unsupported(f"{folder}: fields {sorted(unknown)}")
            return data
    raise Unsupported(f"{folder}: no kustomization file")


def _load_documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def build(folder: str | Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize folder`` would print (order aside)."""
    folder = Path(folder)
    k = _load_kustomization(folder)
    objects: list[dict[str, Any]] = []
    for entry in k.get("resources", []):
        path = folder / entry
        objects.extend(build(path) if path.is_dir() else _load_documents(path))
    for generator in k.get("configMapGenerator", []):
        objects.append(_config_map(folder, generator))
    for entry in k.get("components", []):
        objects = _apply_component(folder / entry, objects)
    return _transform(k, objects)


def _apply_component(folder: Path, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    k = _load_kustomization(folder)
    if k.get("kind") != "Component":
        raise Unsupported(f"{folder} is not a Component")
    added: list[dict[str, Any]] = []
    for entry in k.get("resources", []):
        path = folder / entry
        added.extend(build(path) if path.is_dir() else _load_documents(path))
    return _transform(k, objects + added)


def _config_map(folder: Path, generator: dict[str, Any]) -> dict[str, Any]:
    if set(generator) - {"name", "files", "options"}:
        raise Unsupported(f"configMapGenerator fields {sorted(generator)}")
    options = generator.get("options", {})
    if options.get("disableNameSuffixHash") is not True or set(options) - {
        "disableNameSuffixHash",
        "labels",
    }:
        raise Unsupported("configMapGenerator needs options.disableNameSuffixHash: true")
    data = {}
    for item in generator.get("files", []):
        key, _, path = item.partition("=") if "=" in item else (Path(item).name, "", item)
        data[key] = (folder / path).read_text(encoding="utf-8")
    meta: dict[str, Any] = {"name": generator["name"]}
    if options.get("labels"):
        meta["labels"] = dict(options["labels"])
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def _transform(k: dict[str, Any], objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    objects = [copy.deepcopy(o) for o in objects]
    for spec in k.get("labels", []):
        if set(spec) - {"pairs"}:
            raise Unsupported(f"labels options {sorted(spec)}")
        for obj in objects:
            obj.setdefault("metadata", {}).setdefault("labels", {}).update(spec["pairs"])
    if "namespace" in k:
        for obj in objects:
            _set_namespace(obj, k["namespace"])
    for image in k.get("images", []):
        for obj in objects:
            _set_image(obj, image)
    for patch in k.get("patches", []):
        if set(patch) - {"target", "patch"}:
            raise Unsupported(f"patch fields {sorted(patch)}")
        ops = yaml.safe_load(patch["patch"])
        if not isinstance(ops, list):
            raise Unsupported("only RFC 6902 (JSON) patches")
        for obj in objects:
            if _matches(obj, patch["target"]):
                jsonpatch.apply_patch(obj, ops, in_place=True)
    return objects


def _set_namespace(obj: dict[str, Any], namespace: str) -> None:
    if obj["kind"] not in CLUSTER_KINDS:
        obj["metadata"]["namespace"] = namespace
    if obj["kind"] in ("RoleBinding", "ClusterRoleBinding"):
        for subject in obj.get("subjects", []):
            if subject.get("kind") == "ServiceAccount" and not subject.get("namespace"):
                subject["namespace"] = namespace


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        return spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
    return spec.get("template", {}).get("spec")


def _set_image(obj: dict[str, Any], image: dict[str, Any]) -> None:
    pod = _pod_spec(obj)
    if not pod:
        return
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        name, _, tag = container["image"].partition(":")
        if name != image["name"]:
            continue
        name = image.get("newName", name)
        if "digest" in image:
            container["image"] = f"{name}@{image['digest']}"
        else:
            tag = image.get("newTag", tag)
            container["image"] = f"{name}:{tag}" if tag else name


def _matches(obj: dict[str, Any], target: dict[str, Any]) -> bool:
    if set(target) - {"kind", "name", "labelSelector"}:
        raise Unsupported(f"patch target fields {sorted(target)}")
    meta = obj.get("metadata", {})
    if "kind" in target and obj["kind"] != target["kind"]:
        return False
    if "name" in target and meta.get("name") != target["name"]:
        return False
    if "labelSelector" in target:
        labels = meta.get("labels", {})
        for term in target["labelSelector"].split(","):
            key, sep, value = term.partition("=")
            if not sep or "!" in key:
                raise Unsupported(f"label selector {target['labelSelector']!r}")
            if labels.get(key.strip()) != value.strip():
                return False
    return True
