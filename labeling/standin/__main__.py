"""Serve the Langfuse stand-in with generated traffic until interrupted.

    python -m labeling.standin --port 3100 --seed 1 --days 7 [--per-day 3000]
        [--api-generation v4|v3]

``--api-generation v3`` answers as a self-hosted Langfuse v3 (3.180+) does: no v2
observations read, the v1 reads instead, one score per write.

Point the console at it with LANGFUSE_BASE_URL=http://127.0.0.1:PORT and the printed keys.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time

from .server import DEFAULT_PUBLIC_KEY, DEFAULT_SECRET_KEY, start_in_thread
from .store import Store
from .traffic import generate_traffic


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labeling.standin", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3100, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--per-day", type=int, default=3000)
    parser.add_argument("--public-key", default=DEFAULT_PUBLIC_KEY)
    parser.add_argument("--secret-key", default=DEFAULT_SECRET_KEY)
    parser.add_argument("--api-generation", choices=["v4", "v3"], default="v4")
    args = parser.parse_args(argv)

    started = time.monotonic()
    traffic = generate_traffic(seed=args.seed, days=args.days, per_day=args.per_day)
    store = Store(api_generation=args.api_generation)
    store.load(traffic)
    url, stop = start_in_thread(
        store,
        host=args.host,
        port=args.port,
        public_key=args.public_key,
        secret_key=args.secret_key,
    )
    print(
        f"Langfuse stand-in ({args.api_generation}) at {url} ({len(traffic.roots)} traces, "
        f"{len(traffic.scores)} "
        f"feedback scores, generated in {time.monotonic() - started:.1f} s)\n"
        f"LANGFUSE_BASE_URL={url} LANGFUSE_PUBLIC_KEY={args.public_key} "
        f"LANGFUSE_SECRET_KEY={args.secret_key}",
        flush=True,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
