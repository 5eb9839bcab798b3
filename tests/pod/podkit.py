"""Helpers for the pod tests: pod processes, configs, metric reading."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from routing.baseline import v7_config
from routing.engine import canonical_config

ROOT = Path(__file__).resolve().parents[2]


def v7(version: str = "v7", **overrides) -> dict:
    """The spec's v7 config (its 17 keywords and thresholds), as export_config writes it."""
    config = {k: v for k, v in v7_config().items() if k not in ("version", "sha256", "schema")}
    config.update(overrides)
    return canonical_config(version, config)


SCORER = {
    "bias": -1.5,
    "threshold": 0.0,
    "features": [
        ["리팩터", 1.75],
        ["race condition", 2.5],
        ["설계", 1.0],
        ["architecture", 1.0],
        ["why", 0.5],
        ["thanks", -0.75],
        ["hello", -1.0],
        ["typo", -0.5],
    ],
}


def scored(version: str = "v9", **overrides) -> dict:
    """v7's thresholds with no keywords and a small scorer (schema 2)."""
    return v7(version, **{"strong_keywords": [], "scorer": SCORER, **overrides})


OLD_POD_COMMIT = "1d6b305"  # the last release whose pod reads schema 1 only


def old_pod_tree(into: Path) -> Path:
    """The pod's code as released before scorers, from git, to run beside today's."""
    import pytest

    def have() -> bool:
        probe = ["git", "cat-file", "-e", f"{OLD_POD_COMMIT}^{{commit}}"]
        return subprocess.run(probe, cwd=ROOT, capture_output=True).returncode == 0

    if not have():  # a shallow clone: try to get the history
        subprocess.run(["git", "fetch", "-q", "--unshallow"], cwd=ROOT, capture_output=True)
        if not have():
            pytest.skip(f"commit {OLD_POD_COMMIT} (the pod before scorers) is not in this clone")
    archive = subprocess.run(
        ["git", "archive", OLD_POD_COMMIT, "routing"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def write_config(path: Path, document) -> None:
    """Write atomically (temp file + rename), the way a ConfigMap update lands."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(document if isinstance(document, str) else json.dumps(document))
    os.replace(tmp, path)


def chat(text: str, **extra) -> dict:
    return {"model": "anything", "messages": [{"role": "user", "content": text}], **extra}


ROUTED = ("/v1/chat/completions", "/v1/completions")


class Pod:
    """``python -m routing.pod`` as a child process; stderr is collected in ``log``."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT):
        full_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("CASCADE_POD_", "LANGFUSE_"))
        }
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "routing.pod", "--port", "0", *args],
            cwd=cwd,
            env=full_env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self.log_lines: list[str] = []
        self._port: int | None = None
        self._started = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._started.wait(15) or self._port is None:
            self.stop()
            raise RuntimeError("pod did not start:\n" + self.log)
        self.url = f"http://127.0.0.1:{self._port}"
        self.answered = 0  # routed requests this client got an answer to
        self.client = httpx.Client(
            base_url=self.url,
            timeout=10,
            trust_env=False,
            event_hooks={"response": [self._count_answer]},
        )

    def _count_answer(self, response: httpx.Response) -> None:
        request = response.request
        if request.method == "POST" and request.url.path in ROUTED:
            self.answered += 1

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.log_lines.append(line)
            match = re.search(r"running on http://127\.0\.0\.1:(\d+)", line)
            if match:
                self._port = int(match.group(1))
                self._started.set()
        self._started.set()

    @property
    def log(self) -> str:
        return "".join(self.log_lines)

    def post(self, payload, **kwargs) -> httpx.Response:
        return self.client.post("/v1/chat/completions", json=payload, **kwargs)

    def metrics(self) -> dict[tuple[str, tuple], float]:
        """Samples as {(name, sorted label items): value}, once every request this client got
        an answer to is counted: the pod records a request after its last byte is sent, so
        right after an answer its metrics may still be on the way."""
        deadline = time.monotonic() + 5
        while True:
            out = self._read_metrics()
            counted = sum(v for (n, _), v in out.items() if n == "cascade_pod_requests_total")
            if counted >= self.answered or time.monotonic() > deadline:
                return out
            time.sleep(0.02)

    def _read_metrics(self) -> dict[tuple[str, tuple], float]:
        text = self.client.get("/metrics").text
        out = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return out

    def metric(self, name: str, **labels) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        return sum(
            value
            for (n, items), value in self.metrics().items()
            if n == name and labels.items() <= dict(items).items()
        )

    def stop(self) -> None:
        if getattr(self, "client", None) is not None:
            self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()
