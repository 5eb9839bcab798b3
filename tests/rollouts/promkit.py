"""Debian's Prometheus as a child process on 127.0.0.1, for the gate tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


class PrometheusProcess:
    """``prometheus`` scraping ``targets`` every 0.5 s; ``url`` is its HTTP API base."""

    def __init__(self, workdir: Path, targets: list[str]) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        config = workdir / "prometheus.yml"
        listed = ", ".join(repr(t) for t in targets)
        config.write_text(
            "global:\n  scrape_interval: 500ms\n  scrape_timeout: 400ms\n"
            "scrape_configs:\n  - job_name: pods\n    static_configs:\n"
            f"      - targets: [{listed}]\n"
        )
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=error",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{port}"

    def query(self, promql: str) -> list:
        try:
            answer = httpx.get(
                f"{self.url}/api/v1/query", params={"query": promql}, timeout=2, trust_env=False
            )
        except httpx.HTTPError:
            return []  # not listening yet
        return answer.json()["data"]["result"] if answer.status_code == 200 else []

    def wait_for(self, promql: str, predicate=bool, timeout: float = 30.0) -> list:
        """Poll until the query's result satisfies ``predicate`` (an empty result is no data);
        fails the test with the last result when it never does."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if predicate(result):
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"{promql!r} still gives {result!r} after {timeout:g} s")
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
