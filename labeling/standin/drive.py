"""Send the stand-in traffic's kind of prompts to a classifier pod at a low, steady rate,
so that a local console sees traffic arrive (``bin/console --with-pods``).

    python -m labeling.standin.drive --url http://127.0.0.1:PORT [--rate 0.5] [--seed 1]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import signal
import threading

import httpx

from .prompts import SYSTEM_PROMPTS, TEMPLATES
from .traffic import fill_template

log = logging.getLogger("labeling.standin.drive")


def conversation(rng: random.Random) -> list[dict]:
    """One request: a system prompt now and then, and a filled-in task."""
    template = rng.choices(TEMPLATES, weights=[t.weight for t in TEMPLATES])[0]
    messages = []
    if rng.random() < 0.3:
        messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
    messages.append({"role": "user", "content": fill_template(rng, template.text)})
    return messages


def drive(url: str, rate: float, seed: int, stop: threading.Event) -> int:
    """Post a chat every ``1 / rate`` seconds until ``stop``; returns how many were sent."""
    rng = random.Random(seed)
    sent = 0
    with httpx.Client(base_url=url, timeout=60, trust_env=False) as client:
        while not stop.wait(1 / rate):
            body = {
                "model": "cascade",
                "messages": conversation(rng),
                "stream": rng.random() < 0.5,
                "user": f"demo-{rng.randint(1, 6)}",
            }
            try:
                client.post("/v1/chat/completions", json=body).raise_for_status()
            except httpx.HTTPError as exc:
                log.warning("drive: %s", exc)
            sent += 1
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labeling.standin.drive", description=__doc__)
    parser.add_argument("--url", required=True, help="the pod's base URL")
    parser.add_argument("--rate", type=float, default=0.5, help="requests per second")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if not 0 < args.rate <= 50:
        parser.error("--rate must be above 0 and at most 50")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        drive(args.url, args.rate, args.seed, stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
