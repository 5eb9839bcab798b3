"""What the classifier pod adds over calling the backend directly, next to LiteLLM's proxy.

Starts two fake backends (labeling/standin/fake_llm.py, weak and strong, both answer at once),
a pod in front of them and, when it is installed, LiteLLM's proxy configured for the same
two backends, all on 127.0.0.1. Then it sends the same load to each, in the same run:

* closed loop: ``--concurrency`` clients back to back, ``--requests`` per line
  (requests per second at that concurrency, latency p50/p99);
* fixed rate: ``--rate`` requests per second for ``--requests`` requests (latency p50/p99
  from each request's scheduled start, so a target that cannot keep up shows its queue;
  the pod's goal is +1 ms p50 / +5 ms p99 at 200/s).

Every request is a short chat that the classifier sends to the weak tier, with ``model`` set
to the weak backend's model name: "direct" calls the weak backend, "pod" the pod, "litellm"
the proxy (with its master key). Non-streaming (json) and streaming (sse) requests; for
streaming ones the latency is to the last byte and TTFT to the first chunk. "added" is the
difference to "direct" under the same load. Figures are printed as one table at the end,
never asserted. All processes share the machine's cores, so the client's own cost is in
every figure: compare rows, not absolutes.

``--scorer N`` serves a scorer version of N features instead of a keyword one (trained as
``bench/engine.py`` trains it, threshold out of reach so requests still go weak) and sends a
500-character mixed Korean/English prompt instead of the short chat; the goal there is
+1 ms p50 at 200/s too.

``--long-streams N`` measures something else: N concurrent streamed answers of 50 chunks,
50 ms apart (a backend of its own; the N starts spread over one second, so all N stream at
once for most of their 2.5 s), straight from the backend and through the pod, and
prints TTFT p50/p99 and the p99 gap between chunks for each, and what the pod adds (goal:
under +50 ms TTFT p99 and +20 ms gap p99 at 1,000 streams).

LiteLLM lives in a virtualenv of its own (see bench/README.md); ``--litellm`` names its
``litellm`` executable and defaults to ``var/litellm-venv/bin/litellm``. It runs with a
random master key, no database, its local model cost map and lists, telemetry vetoed and
``LITELLM_LOG=ERROR`` (no access log, like the pod), so it has nothing to reach beyond
127.0.0.1. Every process started here is stopped before the script ends.

    .venv/bin/python bench/pod.py --requests 2000 --concurrency 8 --rate 200 [--scorer 1000]
    .venv/bin/python bench/pod.py --long-streams 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from routing.engine import canonical_config  # noqa: E402

DEFAULT_LITELLM = ROOT / "var" / "litellm-venv" / "bin" / "litellm"
WEAK_MODEL = "Qwen/Qwen3-4B"
STRONG_MODEL = "zai-org/GLM-5"
BODY = {"model": WEAK_MODEL, "messages": [{"role": "user", "content": "rename this variable"}]}
UNREACHABLE = 100_000.0  # a scorer threshold no request reaches: the bench's requests go weak
DRAIN_S = 60
NOT_INSTALLED = "not installed (see bench/README.md)"
# What LiteLLM would otherwise fetch from the internet at start or on demand, and its telemetry.
LITELLM_OFFLINE = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_LOCAL_BLOG_POSTS": "True",
    "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
    "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",
    "LITELLM_TELEMETRY_DISABLED": "true",
    "DISABLE_ADMIN_UI": "True",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DO_NOT_TRACK": "1",
    "NO_PROXY": "127.0.0.1,localhost",
    "LITELLM_LOG": "ERROR",  # also turns uvicorn's access log off
}


@dataclass
class Target:
    name: str
    url: str | None  # None: not measured, ``note`` says why
    headers: dict[str, str] = field(default_factory=dict)
    note: str = ""


@dataclass
class Result:
    rps: float
    total_ms: list[float]
    ttft_ms: list[float]
    errors: int


# -- processes ----------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    """Our environment without settings that would change what the pod does (tracing...)."""
    drop = ("LANGFUSE_", "CASCADE_POD_", "OTEL_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def start(cmd: list[str], pattern: str, stream: str = "stdout") -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(  # noqa: S603  our own interpreter and modules
        cmd,
        cwd=ROOT,
        env=clean_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
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
    proc.wait()
    raise RuntimeError(f"{cmd[2:4]} did not start")


def stop(proc: subprocess.Popen, group: bool = False) -> None:
    if proc.poll() is None:
        if group:  # LiteLLM runs in a session of its own: stop it with its children
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        proc.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def litellm_version(executable: Path) -> str:
    python = executable.parent / "python"
    if not python.exists():
        return "?"
    done = subprocess.run(  # noqa: S603  the interpreter next to the given executable
        [str(python), "-c", "from importlib.metadata import version; print(version('litellm'))"],
        capture_output=True,
        text=True,
        env={"PATH": os.defpath, **LITELLM_OFFLINE},
        timeout=30,
    )
    return done.stdout.strip() or "?"


def start_litellm(
    executable: Path, workdir: Path, weak: str, strong: str, workers: int
) -> tuple[subprocess.Popen, str, str]:
    """Start LiteLLM's proxy for the two fake backends; return it, its base URL and key."""
    config = {
        "model_list": [
            {
                "model_name": model,
                "litellm_params": {"model": f"openai/{model}", "api_base": url, "api_key": "none"},
            }
            for model, url in ((WEAK_MODEL, weak), (STRONG_MODEL, strong))
        ],
    }
    config_path = workdir / "litellm.yaml"  # JSON is YAML
    config_path.write_text(json.dumps(config, indent=2))
    key = "sk-" + secrets.token_urlsafe(32)
    home = workdir / "home"
    home.mkdir()
    env = {
        "PATH": f"{executable.parent}{os.pathsep}{os.defpath}",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LITELLM_MASTER_KEY": key,
        **LITELLM_OFFLINE,
    }  # nothing else: no DATABASE_URL, REDIS_*, proxies or keys from our environment
    port = free_port()
    log = (workdir / "litellm.log").open("w")
    proc = subprocess.Popen(  # noqa: S603  the executable the user named
        [
            str(executable),
            "--config",
            str(config_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            str(workers),
        ],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    base = f"http://127.0.0.1:{port}"
    headers = {"authorization": f"Bearer {key}"}
    deadline = time.monotonic() + 120
    try:  # until a chat request through it works
        with httpx.Client(timeout=5, trust_env=False) as client:
            while True:
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = (workdir / "litellm.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"LiteLLM did not start; its log ends with:\n{tail}")
                try:
                    answer = client.post(f"{base}/v1/chat/completions", json=BODY, headers=headers)
                    if answer.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
    except BaseException:  # Ctrl-C included: never leave it running
        stop(proc, group=True)
        raise
    return proc, base, key


# -- load ---------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one(
    client: httpx.AsyncClient, target: Target, stream: bool, started: float | None = None
) -> tuple[float, float] | None:
    """One request; (total, first byte) in seconds from ``started``, or None on failure."""
    body = {**BODY, "stream": stream}
    started = started or time.perf_counter()
    first = None
    try:
        async with client.stream("POST", target.url, json=body, headers=target.headers) as resp:
            async for _ in resp.aiter_raw():
                if first is None:
                    first = time.perf_counter()
            if resp.status_code != 200:
                return None
    except httpx.HTTPError:
        return None
    end = time.perf_counter()
    return end - started, (first or end) - started


def summarize(rps: float, outcomes) -> Result:
    done = [o for o in outcomes if o is not None]
    return Result(
        rps,
        [o[0] * 1000 for o in done],
        [o[1] * 1000 for o in done],
        len(outcomes) - len(done),
    )


async def closed_loop(target: Target, stream: bool, total: int, concurrency: int) -> Result:
    outcomes = []
    async with httpx.AsyncClient(
        timeout=30, trust_env=False, limits=httpx.Limits(max_connections=concurrency)
    ) as client:
        await asyncio.gather(*(one(client, target, stream) for _ in range(concurrency)))
        remaining = total

        async def worker():
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                outcomes.append(await one(client, target, stream))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return summarize(len(outcomes) / elapsed, outcomes)


async def fixed_rate(target: Target, stream: bool, total: int, rate: float) -> Result:
    """Open loop: a target that cannot keep up queues requests in the client's pool, and
    that wait is part of their latency. Requests still unfinished ``DRAIN_S`` seconds after
    the last one was sent are cancelled and counted as errors, so a run stays bounded."""
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(30, pool=None),
        trust_env=False,
        limits=httpx.Limits(max_connections=200),
    ) as client:
        await asyncio.gather(*(one(client, target, stream) for _ in range(8)))
        tasks = []
        started = time.perf_counter()
        for index in range(total):
            due = started + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(client, target, stream, due)))
        _, pending = await asyncio.wait(tasks, timeout=DRAIN_S)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        elapsed = time.perf_counter() - started
    outcomes = [None if task in pending else task.result() for task in tasks]
    return summarize((total - len(pending)) / elapsed, outcomes)


async def warm(target: Target, count: int) -> None:
    async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
        for index in range(count):
            await one(client, target, stream=bool(index % 2))


# -- report -------------------------------------------------------------------------------


HEADER = (
    "| load | target | req/s | p50 ms | p99 ms | added p50 | added p99 | TTFT p50 | errors |",
    "|---|---|--:|--:|--:|--:|--:|--:|--:|",
)


def table_row(
    load: str, target: Target, result: Result | None, base: Result | None, rate: float | None
) -> str:
    if result is None:
        return f"| {load} | {target.name} | {target.note} | | | | | | |"
    if not result.total_ms:
        return (
            f"| {load} | {target.name} | {result.rps:.0f} | all failed | | | | | {result.errors} |"
        )
    p50, p99 = statistics.median(result.total_ms), percentile(result.total_ms, 0.99)
    rps = f"{result.rps:.0f}"
    if rate is not None and result.rps < 0.95 * rate:
        rps += " (saturated)"  # it cannot keep up: the latencies are mostly its queue
    added = ("", "")
    if base is not None and base is not result and base.total_ms:
        added = (
            f"{p50 - statistics.median(base.total_ms):+.2f}",
            f"{p99 - percentile(base.total_ms, 0.99):+.2f}",
        )
    return (
        f"| {load} | {target.name} | {rps} | {p50:.2f} | {p99:.2f} | {added[0]} | "
        f"{added[1]} | {statistics.median(result.ttft_ms):.2f} | {result.errors} |"
    )


LONG_CHUNKS, LONG_GAP = 50, 0.05


async def long_stream(session, url: str, start: asyncio.Event, offset: float):
    """One streamed answer, begun ``offset`` seconds after ``start``: (TTFT, gaps between
    reads) in seconds, or None on failure."""
    import aiohttp

    await start.wait()
    await asyncio.sleep(offset)
    body = {**BODY, "stream": True}
    began = time.perf_counter()
    times = []
    try:
        async with session.post(url, json=body) as response:
            async for _ in response.content.iter_any():
                times.append(time.perf_counter())
            if response.status != 200:
                return None
    except (TimeoutError, aiohttp.ClientError):
        return None
    if not times:
        return None
    return times[0] - began, [b - a for a, b in zip(times, times[1:], strict=False)]


async def long_streams(url: str, count: int) -> dict[str, float]:
    # aiohttp, not httpx: at a thousand streams on two cores the client's own cost would
    # otherwise be most of what is measured.
    import aiohttp

    connector = aiohttp.TCPConnector(limit=count + 10)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = asyncio.Event()
        # Started over one second, as a thousand users would: all stream at the same time,
        # but no thousand handshakes land in the same millisecond.
        tasks = [
            asyncio.ensure_future(long_stream(session, url, start, i / count)) for i in range(count)
        ]
        await asyncio.sleep(0.5)
        start.set()
        outcomes = await asyncio.gather(*tasks)
    done = [o for o in outcomes if o is not None]
    ttfts = [t for t, _ in done]
    gaps = [g for _, gs in done for g in gs]
    return {
        "ttft_p50": percentile(ttfts, 0.5) * 1000,
        "ttft_p99": percentile(ttfts, 0.99) * 1000,
        "gap_p99": percentile(gaps, 0.99) * 1000 if gaps else float("nan"),
        "errors": count - len(done),
    }


def run_long_streams(count: int) -> None:
    """The ``--long-streams`` measurement (see the module docstring)."""
    procs: list[subprocess.Popen] = []
    workdir = Path(tempfile.mkdtemp(prefix="bench-pod-long-"))
    try:
        fake, backend = start(
            [sys.executable, "-m", "labeling.standin.fake_llm", "--name", "weak",
             "--chunks", str(LONG_CHUNKS), "--chunk-delay", str(LONG_GAP)],
            r"listening (\S+)",
        )  # fmt: skip
        procs.append(fake)
        config = workdir / "config.json"
        rules = {"strong_keywords": ["architecture"], "token_threshold": 500, "turn_threshold": 5}
        config.write_text(json.dumps(canonical_config("bench", rules)))
        pod, port = start(
            [sys.executable, "-m", "routing.pod", "--port", "0", "--config", str(config),
             "--weak-url", backend, "--strong-url", backend, "--weak-model", WEAK_MODEL,
             "--strong-model", STRONG_MODEL],
            r"running on http://127\.0\.0\.1:(\d+)",
            stream="stderr",
        )  # fmt: skip
        procs.append(pod)
        rows = {}
        for name, url in (
            ("direct", f"{backend}/chat/completions"),
            ("pod", f"http://127.0.0.1:{port}/v1/chat/completions"),
        ):
            rows[name] = asyncio.run(long_streams(url, count))
        print(
            f"{count} concurrent streams of {LONG_CHUNKS} chunks, {LONG_GAP * 1000:.0f} ms apart; "
            f"{os.cpu_count()} cpus, load average "
            + " / ".join(f"{x:.2f}" for x in os.getloadavg()[:2])
        )
        print("| target | TTFT p50 ms | TTFT p99 ms | gap p99 ms | errors |")
        print("|---|--:|--:|--:|--:|")
        for name, r in rows.items():
            print(f"| {name} | {r['ttft_p50']:.1f} | {r['ttft_p99']:.1f} | {r['gap_p99']:.1f} "
                  f"| {r['errors']} |")  # fmt: skip
        d, p = rows["direct"], rows["pod"]
        print(
            f"| added by the pod | {p['ttft_p50'] - d['ttft_p50']:+.1f} | "
            f"{p['ttft_p99'] - d['ttft_p99']:+.1f} | {p['gap_p99'] - d['gap_p99']:+.1f} | |"
        )
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


def scorer_rules(features: int) -> dict:
    """A scorer version's rules, and (in ``BODY``) a 500-character prompt to score."""
    import random

    from bench.engine import prompts, trained_scorer

    scorer = trained_scorer(features)
    BODY["messages"] = prompts(1, 500, random.Random(7))[0]
    print(f"scorer of {len(scorer['features'])} features", file=sys.stderr)
    return {
        "strong_keywords": [],
        "token_threshold": 1000,
        "turn_threshold": 8,
        "scorer": {**scorer, "threshold": UNREACHABLE},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per line")
    parser.add_argument("--concurrency", type=int, default=8, help="clients in the closed loop")
    parser.add_argument("--rate", type=float, default=200, help="requests/s of the fixed rate")
    parser.add_argument(
        "--litellm",
        default=str(DEFAULT_LITELLM) if DEFAULT_LITELLM.exists() else "",
        help="LiteLLM's `litellm` executable (default: var/litellm-venv/bin/litellm if it "
        "exists); '' skips it, and the LiteLLM rows say it is not installed",
    )
    parser.add_argument(
        "--litellm-workers", type=int, default=1, help="LiteLLM worker processes (the pod has 1)"
    )
    parser.add_argument(
        "--scorer", type=int, default=0, help="serve a scorer of this many features (0: none)"
    )
    parser.add_argument(
        "--long-streams", type=int, default=0, help="only the long-stream case, this many"
    )
    args = parser.parse_args()
    if args.long_streams:
        if not 1 <= args.long_streams <= 5000:
            parser.error("--long-streams must be between 1 and 5000")
        return run_long_streams(args.long_streams)
    if not 1 <= args.requests <= 100_000:
        parser.error("--requests must be between 1 and 100000")
    if not 1 <= args.concurrency <= 200 or not 1 <= args.rate <= 10_000:
        parser.error("--concurrency must be 1-200 and --rate 1-10000")
    args.litellm = Path(args.litellm) if args.litellm else None
    if args.litellm and not (args.litellm.is_file() and os.access(args.litellm, os.X_OK)):
        parser.error(f"--litellm {args.litellm}: not an executable file")

    # A plain `kill` ends the run like Ctrl-C: through the finally below, which stops all.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    procs: list[tuple[subprocess.Popen, bool]] = []
    workdir = Path(tempfile.mkdtemp(prefix="bench-pod-"))
    try:
        backends = {}
        for tier in ("weak", "strong"):
            fake, backends[tier] = start(
                [sys.executable, "-m", "labeling.standin.fake_llm", "--name", tier]
                + ["--chunks", "3"],
                r"listening (\S+)",
            )
            procs.append((fake, False))
        config = workdir / "config.json"
        rules = {"strong_keywords": ["architecture"], "token_threshold": 500, "turn_threshold": 5}
        if args.scorer:
            rules = scorer_rules(args.scorer)
        config.write_text(json.dumps(canonical_config("bench", rules)))
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
                backends["weak"],
                "--strong-url",
                backends["strong"],
                "--weak-model",
                WEAK_MODEL,
                "--strong-model",
                STRONG_MODEL,
            ],
            r"running on http://127\.0\.0\.1:(\d+)",
            stream="stderr",
        )
        procs.append((pod, False))
        targets = [
            Target("direct", f"{backends['weak']}/chat/completions"),
            Target("pod", f"http://127.0.0.1:{port}/v1/chat/completions"),
        ]
        version = None
        if args.litellm is None:
            targets.append(Target("litellm", None, note=NOT_INSTALLED))
        else:
            version = litellm_version(args.litellm)
            print(f"starting LiteLLM {version} ({args.litellm}) ...", file=sys.stderr)
            started = time.monotonic()
            proxy, base, key = start_litellm(
                args.litellm, workdir, backends["weak"], backends["strong"], args.litellm_workers
            )
            procs.append((proxy, True))
            print(f"LiteLLM answered after {time.monotonic() - started:.1f} s", file=sys.stderr)
            targets.append(
                Target(
                    "litellm",
                    f"{base}/v1/chat/completions",
                    headers={"authorization": f"Bearer {key}"},
                )
            )
        for target in targets:
            if target.url:
                asyncio.run(warm(target, 100))

        lines = []
        for stream in (False, True):
            kind = "sse" if stream else "json"
            loads = (
                (f"{kind} c={args.concurrency}", closed_loop, args.concurrency, None),
                (f"{kind} @{args.rate:g}/s", fixed_rate, args.rate, args.rate),
            )
            for load, run, level, rate in loads:
                base = None
                for target in targets:
                    result = None
                    if target.url:
                        result = asyncio.run(run(target, stream, args.requests, level))
                    base = base or result
                    lines.append(table_row(load, target, result, base, rate))
                    print(lines[-1], file=sys.stderr, flush=True)

        load1, load5, _ = os.getloadavg()
        print(
            f"\n{args.requests} requests per row; {os.cpu_count()} cpus, load average "
            f"{load1:.2f} / {load5:.2f}; litellm {version or '-'} "
            f"({args.litellm_workers} worker{'s' if args.litellm_workers > 1 else ''}); "
            "added = vs direct under the same load\n"
        )
        print("\n".join((*HEADER, *lines)))
        print(
            "\nms from the request's (scheduled) start to its last byte; TTFT to its first. "
            "errors: not 200, a transport error, or unfinished 60 s after the last send."
        )
    finally:
        for proc, group in reversed(procs):
            stop(proc, group)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
