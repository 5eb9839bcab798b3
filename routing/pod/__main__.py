"""``python -m routing.pod``: parse settings, then serve the app on uvicorn."""

from __future__ import annotations

import gc
import logging
import sys

import uvicorn

from .app import create_app
from .guarded_http import protocol
from .settings import SettingsError, parse_settings


def main(argv: list[str] | None = None) -> int:
    try:
        settings = parse_settings(argv)
    except SettingsError as exc:
        print(f"routing.pod: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # What start-up built lives as long as the process: keep it out of the collector's walks;
    # and a thousand open streams make many young objects, so collect them less often.
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.access_log,
        lifespan="on",
        # Streams may be long; give them a moment to end, then stop anyway.
        timeout_graceful_shutdown=10,
        http=protocol(settings.header_timeout),
        limit_concurrency=settings.max_connections,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
