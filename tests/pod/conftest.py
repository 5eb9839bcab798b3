"""Fixtures for the pod tests: real pod processes in front of fake backends, on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from labeling.standin.fake_llm import FakeLLM
from tests.pod.podkit import Pod, v7, write_config

# Far above a normal reply on a loaded CI machine, so no test falls back by accident.
FIRST_BYTE_TIMEOUT = "3"
# For the tests of the timeout fallback itself.
SHORT_FIRST_BYTE_TIMEOUT = "0.5"


def pod_args(path: Path, weak_url: str, strong_url: str, *extra: str) -> list[str]:
    """The flags every test pod gets; ``extra`` come last, so they win."""
    return [
        "--config",
        str(path),
        "--weak-url",
        weak_url,
        "--strong-url",
        strong_url,
        "--weak-model",
        "qwen3-4b",
        "--strong-model",
        "glm-5",
        "--first-byte-timeout",
        FIRST_BYTE_TIMEOUT,
        *extra,
    ]


@pytest.fixture(scope="session")
def backends():
    """(weak, strong) fake backends shared by the session; reset before each test."""
    with FakeLLM("weak") as weak, FakeLLM("strong") as strong:
        yield weak, strong


@pytest.fixture
def weak(backends):
    backends[0].reset()
    return backends[0]


@pytest.fixture
def strong(backends):
    backends[1].reset()
    return backends[1]


@pytest.fixture
def start_pod(tmp_path, backends):
    """Start pods with ``start_pod(config=..., extra args..., env=...)``; all stopped after."""
    pods: list[Pod] = []

    def start(
        *args: str,
        config=None,
        config_path: Path | None = None,
        env: dict | None = None,
        weak_url=None,
        strong_url=None,
    ) -> Pod:
        path = config_path or tmp_path / f"config-{len(pods)}.json"
        if config_path is None:
            write_config(path, v7() if config is None else config)
        weak_backend, strong_backend = backends
        argv = pod_args(
            path,
            weak_url or weak_backend.base_url,
            strong_url or strong_backend.base_url,
            "--reload-interval",
            "0.1",
            *args,
        )
        pod = Pod(argv, env)
        pods.append(pod)
        return pod

    yield start
    for pod in pods:
        pod.stop()


def module_pod(backends, tmp_path_factory, *extra: str):
    path = tmp_path_factory.mktemp("shared") / "config.json"
    write_config(path, v7())
    weak_backend, strong_backend = backends
    return Pod(pod_args(path, weak_backend.base_url, strong_backend.base_url, *extra))


@pytest.fixture(scope="module")
def shared_pod(backends, tmp_path_factory):
    """One pod for tests that neither change its config nor read absolute metric values."""
    pod = module_pod(
        backends,
        tmp_path_factory,
        "--max-body-bytes",
        "65536",
        "--weak-api-key",
        "weak-secret",
    )
    yield pod
    pod.stop()


@pytest.fixture
def pod(shared_pod, weak, strong):
    return shared_pod


@pytest.fixture(scope="module")
def shared_impatient_pod(backends, tmp_path_factory):
    pod = module_pod(backends, tmp_path_factory, "--first-byte-timeout", SHORT_FIRST_BYTE_TIMEOUT)
    yield pod
    pod.stop()


@pytest.fixture
def impatient_pod(shared_impatient_pod, weak, strong):
    """A pod that falls back after SHORT_FIRST_BYTE_TIMEOUT without a first byte."""
    return shared_impatient_pod
