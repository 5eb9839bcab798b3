"""Rendering deploy/ for the tests: ``kubectl kustomize`` when kubectl is installed, else the
small renderer in kustomize_lite.py (which the tests compare with kubectl where both exist)."""

from __future__ import annotations

import copy
import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from . import kustomize_lite

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBECTL = shutil.which("kubectl")


def kubectl_kustomize(folder: Path) -> list[dict[str, Any]]:
    assert KUBECTL is not None
    out = subprocess.run(
        [KUBECTL, "kustomize", str(folder)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@functools.cache
def _render(folder: str) -> tuple[dict[str, Any], ...]:
    path = Path(folder)
    objects = kubectl_kustomize(path) if KUBECTL else kustomize_lite.build(path)
    return tuple(objects)


def render(folder: Path | str) -> list[dict[str, Any]]:
    """The rendered objects of a kustomization (a fresh copy each call)."""
    return copy.deepcopy(list(_render(str(folder))))


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert name in found, f"no {kind} {name} among {sorted(found)}"
    return found[name]
