"""The two images: hadolint-clean, multi-stage, non-root, and the pod image without Django."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from .render import ROOT

HADOLINT = Path(sys.executable).parent / "hadolint"
DOCKERFILES = ["Dockerfile", "Dockerfile.pod"]


def instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (ROOT / name).read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def stages(name: str) -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions(name):
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_finds_nothing_not_even_style(name):
    out = subprocess.run(
        [str(HADOLINT), "--failure-threshold", "style", "--no-color", str(ROOT / name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_does_complain_about_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install -y gcc\nRUN cd /src\n")
    out = subprocess.run(
        [str(HADOLINT), "--no-color", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0
    assert "DL3007" in out.stdout


@pytest.mark.parametrize("name", DOCKERFILES)
def test_the_base_images_are_pinned_to_a_release(name):
    args = dict(
        rest.split("=", 1) for word, rest in instructions(name) if word == "ARG" and "=" in rest
    )
    images = [v for k, v in args.items() if k.endswith("_IMAGE")]
    assert images
    for image in images:
        if image.startswith("gcr.io/distroless/"):
            # Distroless publishes moving tags only; the Dockerfile says to pin the digest.
            assert "--build-arg RUNTIME_IMAGE=" in (ROOT / name).read_text()
            continue
        assert re.search(r":[\w.-]*\d[\w.-]*$", image) or "@sha256:" in image, image
        assert not image.endswith(":latest")


@pytest.mark.parametrize("name", DOCKERFILES)
def test_the_final_stage_runs_as_a_numeric_non_root_user_without_build_tools(name):
    final = stages(name)[-1]
    assert len(stages(name)) >= 2  # multi-stage
    (user,) = [rest for word, rest in final if word == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) > 0
    runs = " ".join(rest for word, rest in final if word == "RUN")
    for tool in ("apt-get", "pip install", "gcc", "build-essential", "curl", "wget"):
        assert tool not in runs


def test_the_pod_image_holds_only_the_engine_and_pod_packages_and_the_pod_extra():
    copies = [rest for word, rest in instructions("Dockerfile.pod") if word == "COPY"]
    sources = [c.split()[0] for c in copies if not c.startswith("--from")]
    assert sources == [
        "requirements/pod.txt",
        "routing/__init__.py",
        "routing/envfile.py",
        "routing/engine",
        "routing/pod",
    ]
    text = (ROOT / "Dockerfile.pod").read_text()
    assert "--require-hashes --target /opt/pod --requirement requirements/pod.txt" in text
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["pod"]
    assert not any(dep.lower().startswith(("django", "celery", "psycopg")) for dep in extra)
    assert not set(locked("pod")) & {"django", "celery", "psycopg", "djangorestframework"}
    # Scorers are trained in the console's worker; the pod only sums weights.
    assert not set(locked("pod")) & {"scikit-learn", "scipy", "numpy", "threadpoolctl"}


def test_the_pod_starts_from_just_those_packages_without_importing_django(tmp_path):
    """What the pod image copies is enough: import the app from a tree holding only it."""
    tree = tmp_path / "pod"
    (tree / "routing").mkdir(parents=True)
    for module in ("__init__.py", "envfile.py"):
        shutil.copy(ROOT / "routing" / module, tree / "routing" / module)
    for package in ("engine", "pod"):
        shutil.copytree(ROOT / "routing" / package, tree / "routing" / package)
    code = (
        "import sys, routing.pod.__main__, routing.pod.app;"
        "assert routing.pod.app.__file__.startswith(sys.argv[1]), routing.pod.app.__file__;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('django', 'celery', 'rest_framework', 'cascade_admin', 'labeling', 'rollouts',"
        " 'tuning', 'sklearn', 'scipy', 'numpy'));"
        "assert not bad, bad; print('ok')"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(tree)  # ahead of the project's editable install
    out = subprocess.run(
        [sys.executable, "-c", code, str(tree)],
        capture_output=True,
        text=True,
        cwd=tree,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_the_build_context_excludes_the_venv_local_data_and_secrets():
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") if "*" in ignore else -1] == "*"  # deny by default
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert not allowed & {".venv", "var", ".git", "tests", "deploy"}
    copied = {
        rest.split()[0].rstrip("/")
        if rest.startswith("requirements/")
        else rest.split()[0].split("/")[0]
        for name in DOCKERFILES
        for word, rest in instructions(name)
        if word == "COPY" and not rest.startswith("--from")
    }
    assert copied <= allowed


def test_the_console_image_copies_every_app_of_the_project():
    from django.conf import settings

    local_apps = {app.split(".")[0] for app in settings.INSTALLED_APPS if (ROOT / app).is_dir()}
    copied = {
        rest.split()[0]
        for word, rest in instructions("Dockerfile")
        if word == "COPY" and not rest.startswith("--from")
    }
    assert local_apps <= copied
    assert {"manage.py", "templates", "static"} <= copied


def locked(name: str) -> dict[str, str]:
    """name -> pinned version of requirements/<name>.txt (names normalised as PEP 503)."""
    pins = {}
    for line in (ROOT / "requirements" / f"{name}.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)", line)
        if match:
            pins[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return pins


@pytest.mark.parametrize(
    "lock, wanted",
    [
        ("console", ("dependencies",)),
        ("pod", ("optional-dependencies", "pod")),
        ("test", ("dependencies",)),
        ("test", ("optional-dependencies", "pod")),
        ("test", ("optional-dependencies", "test")),
    ],
)
def test_the_lock_files_pin_every_requirement_within_its_bounds(lock, wanted):
    """Changed a requirement in pyproject.toml? Run bin/lock and commit requirements/."""
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project[wanted[0]] if len(wanted) == 1 else project[wanted[0]][wanted[1]]
    pins = locked(lock)
    for text in requirements:
        requirement = Requirement(text)
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        assert name in pins, f"{name} is not in requirements/{lock}.txt: run bin/lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements/{lock}.txt pins {name}=={pins[name]}, outside {requirement}"
        )


def test_the_image_locks_pin_what_the_test_lock_pins():
    everything = locked("test")
    for lock in ("console", "pod"):
        for name, version in locked(lock).items():
            assert everything.get(name) == version, f"{lock}: {name}=={version}; run bin/lock"


def test_every_lock_entry_carries_a_hash():
    for lock in ("console", "pod", "test"):
        text = (ROOT / "requirements" / f"{lock}.txt").read_text()
        entries = re.findall(
            r"^[A-Za-z0-9._-]+==[^\n]*(?:\n    --hash=sha256:[0-9a-f]{64}.*)+", text, re.M
        )
        assert len(entries) == len(locked(lock)), lock
