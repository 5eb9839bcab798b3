"""What the classifier pod adds over calling the backend directly.

Starts the fake backend (tests/standins/fake_llm.py, answers at once) and a pod in front
of it, both on 127.0.0.1, then sends the same load to each in the same run:

* closed loop: ``--concurrency`` clients back to back, ``--requests`` each scenario
  (requests per second at that concurrency, latency p50/p99);
* fixed rate: ``--rate`` requests per second for ``--requests`` requests
  (latency p50/p99 when not saturated; the pod's goal is +1 ms p50 / +5 ms p99 at 200/s).

For streaming requests the latency is to the last byte and TTFT to the first chunk.
Figures are printed, never asserted. All processes share the machine's cores, so the
client's own cost is in every figure: compare columns, not absolutes.

    .venv/bin/python bench/pod.py --requests 2000 --concurrency 8 --rate 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from routing.engine import canonical_config  # noqa: E402

BODY = {"model": "m", "messages": [{"role": "user", "content": "rename this variable please"}]}


def start(cmd: list[str], pattern: str, stream: str = "stdout") -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(  # noqa: S603  our own interpreter and modules
        cmd, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    pipe = proc.stdout if stream == "stdout" else proc.stderr
    deadline = time.monotonic() + 20
    for line in pipe:
        match = re.search(pattern, line)
        if match:
            return proc, match.group(1)
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise RuntimeError(f"{cmd[2:4]} did not start")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one(client: httpx.AsyncClient, url: str, stream: bool) -> tuple[float, float]:
    body = {**BODY, "stream": stream}
    started = time.perf_counter()
    first = None
    async with client.stream("POST", url, json=body) as response:
        async for _ in response.aiter_raw():
            if first is None:
                first = time.perf_counter()
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code}")
    return time.perf_counter() - started, (first or time.perf_counter()) - started


async def closed_loop(url: str, stream: bool, total: int, concurrency: int):
    results: list[tuple[float, float]] = []
    async with httpx.AsyncClient(
        timeout=30, trust_env=False, limits=httpx.Limits(max_connections=concurrency)
    ) as client:
        for _ in range(concurrency):  # warm the pools
            await one(client, url, stream)
        remaining = total

        async def worker():
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                results.append(await one(client, url, stream))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return len(results) / elapsed, results


async def fixed_rate(url: str, stream: bool, total: int, rate: float):
    results: list[tuple[float, float]] = []
    async with httpx.AsyncClient(
        timeout=30, trust_env=False, limits=httpx.Limits(max_connections=200)
    ) as client:
        for _ in range(8):
            await one(client, url, stream)
        tasks = []
        started = time.perf_counter()
        for index in range(total):
            delay = started + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(client, url, stream)))
        results = await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    return total / elapsed, list(results)


def row(label: str, rps: float, results, base=None) -> str:
    total = [r[0] * 1000 for r in results]
    ttft = [r[1] * 1000 for r in results]
    p50, p99 = statistics.median(total), percentile(total, 0.99)
    text = (
        f"{label:<28} {rps:8.0f}/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
        f"ttft p50 {statistics.median(ttft):6.2f} ms"
    )
    if base is not None:
        text += f"   added p50 {p50 - base[0]:+6.2f} ms  p99 {p99 - base[1]:+6.2f} ms"
    return text, (p50, p99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=200)
    args = parser.parse_args()
    if not 1 <= args.requests <= 100_000:
        parser.error("--requests must be between 1 and 100000")

    procs = []
    try:
        fake, backend = start(
            [sys.executable, "-m", "tests.standins.fake_llm", "--name", "b", "--chunks", "3"],
            r"listening (\S+)",
        )
        procs.append(fake)
        config = Path(tempfile.mkdtemp()) / "config.json"
        config.write_text(
            json.dumps(
                canonical_config(
                    "bench",
                    {
                        "strong_keywords": ["architecture"],
                        "token_threshold": 500,
                        "turn_threshold": 5,
                    },
                )
            )
        )
        pod, port = start(
            [
                sys.executable,
                "-m",
                "routing.pod",
                "--port",
                "0",
                "--config",
                str(config),
                "--weak-url",
                backend,
                "--strong-url",
                backend,
                "--weak-model",
                "w",
                "--strong-model",
                "s",
            ],
            r"running on http://127\.0\.0\.1:(\d+)",
            stream="stderr",
        )
        procs.append(pod)
        targets = {
            "direct": f"{backend}/chat/completions",
            "pod": f"http://127.0.0.1:{port}/v1/chat/completions",
        }
        print(f"{args.requests} requests per line; cpu count {os.cpu_count()}")
        for stream in (False, True):
            kind = "sse" if stream else "json"
            base = None
            for name, url in targets.items():
                rps, results = asyncio.run(
                    closed_loop(url, stream, args.requests, args.concurrency)
                )
                text, figures = row(f"{name} {kind} c={args.concurrency}", rps, results, base)
                base = base or figures
                print(text)
            base = None
            for name, url in targets.items():
                rps, results = asyncio.run(fixed_rate(url, stream, args.requests, args.rate))
                text, figures = row(f"{name} {kind} @{args.rate:g}/s", rps, results, base)
                base = base or figures
                print(text)
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
