"""The config the pod serves, swapped atomically, and the file watcher that reloads it.

Each request reads ``store.current`` once and uses that snapshot to the end, so a reload
in the middle of a request never mixes two configs. A rejected config (bad JSON, wrong
schema, hash mismatch, invalid field) leaves the last good one serving.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from routing.engine import Classifier, ConfigError, build_classifier, verify_canonical

log = logging.getLogger("routing.pod.config")


@dataclass(frozen=True)
class Loaded:
    """A verified canonical config and its compiled classifier."""

    document: dict[str, Any]
    classifier: Classifier
    source: str  # "file" or "admin"
    loaded_at: datetime

    @property
    def version(self) -> str:
        version: str = self.document["version"]  # verify_canonical checked it
        return version

    @property
    def sha256(self) -> str:
        sha256: str = self.document["sha256"]  # verify_canonical checked it
        return sha256

    def summary(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "sha256": self.sha256,
            "schema": self.document["schema"],
            "source": self.source,
            "loaded_at": self.loaded_at.isoformat(),
        }


def compile_document(document: Any, source: str) -> Loaded:
    """Verify a canonical config document and compile it; raise ConfigError if invalid."""
    if not isinstance(document, dict):
        raise ConfigError({"config": [f"Must be a JSON object, got {type(document).__name__}."]})
    verify_canonical(document)
    classifier = build_classifier(document)
    return Loaded(dict(document), classifier, source, datetime.now(UTC))


def parse_document(raw: bytes) -> Any:
    """JSON from bytes; raise ConfigError (not ValueError) so callers handle one error."""
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError({"config": [f"Not valid JSON: {exc}"]}) from None
    except RecursionError:
        raise ConfigError({"config": ["Nested too deeply."]}) from None


Listener = Callable[[str, "Loaded | None", "ConfigError | None"], None]
Stamp = tuple[int, int, int, int]  # inode, device, mtime (ns), size


class ConfigStore:
    """Holds the current config; ``apply`` and ``load_file`` are the only writers.

    ``on_change(source, loaded, error)`` is called after every accepted or rejected
    config (for metrics and logs).
    """

    def __init__(self, path: Path, on_change: Listener | None = None):
        self.path = path
        self.current: Loaded | None = None
        self._on_change = on_change or (lambda *a: None)
        self._file_stamp: Stamp | None = None
        self._file_raw: bytes | None = None  # the bytes of the last accepted file

    def apply(self, document: Any, source: str) -> Loaded:
        """Verify and swap in ``document``; raise ConfigError and keep the old one if bad."""
        try:
            loaded = compile_document(document, source)
        except ConfigError as exc:
            log.warning("config from %s rejected: %s", source, exc)
            self._on_change(source, None, exc)
            raise
        previous = self.current
        self.current = loaded  # one reference swap: readers see old or new, never a mix
        if previous is None or previous.sha256 != loaded.sha256:
            log.info("serving config %s (%s) from %s", loaded.version, loaded.sha256[:12], source)
        self._on_change(source, loaded, None)
        return loaded

    def _stamp(self) -> Stamp | None:
        try:
            st = os.stat(self.path)  # follows the ConfigMap's ..data symlink swap
        except OSError:
            return None
        return (st.st_ino, st.st_dev, st.st_mtime_ns, st.st_size)

    def load_file(self, *, force: bool = False) -> Loaded | None:
        """Reload the file if it changed since the last look (or ``force``).

        Returns the new config, or None when nothing changed or the file was rejected.
        An unchanged file is not re-read, so a config pushed by the admin API stays
        until the file itself changes.
        """
        stamp = self._stamp()
        if not force and stamp == self._file_stamp:
            return None
        self._file_stamp = stamp
        try:
            try:
                raw = self.path.read_bytes()
            except OSError as exc:
                raise ConfigError(
                    {"config": [f"Cannot read {self.path}: {exc.strerror}"]}
                ) from None
            if raw == self._file_raw and self.current is not None and self.current.source == "file":
                # Touched, not changed. The bytes, not the file's own sha256 field: a hand
                # edit that kept the old hash must still be verified (and rejected).
                return None
            document = parse_document(raw)
        except ConfigError as exc:
            log.warning("config file rejected: %s", exc)
            self._on_change("file", None, exc)
            return None
        try:
            loaded = self.apply(document, "file")
        except ConfigError:
            return None  # apply has logged and counted it
        self._file_raw = raw
        return loaded

    async def watch(self, interval: float) -> None:
        """Poll the file every ``interval`` seconds until cancelled.

        Polling a stat is cheap and, unlike inotify, sees ConfigMap symlink swaps and
        network filesystems alike.
        """
        while True:
            await asyncio.sleep(interval)
            try:
                self.load_file()
            except Exception:  # a watcher that dies silently would freeze the config
                log.exception("config watcher failed; will retry")
