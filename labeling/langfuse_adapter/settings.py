"""Langfuse settings from the environment (NAME or NAME_FILE)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from routing.envfile import EnvFileError, env_value

from .errors import LangfuseConfigError
from .protocol import DEFAULT_LABEL_SCORE_NAME, GENERATIONS


@dataclass(frozen=True)
class LangfuseSettings:
    """Where Langfuse is and how to authenticate. ``repr`` never shows the secret."""

    host: str
    public_key: str
    secret_key: str = field(repr=False)
    timeout: float = 10.0
    api_generation: str | None = None  # "v3" or "v4"; None: detect it

    def __post_init__(self):
        parts = urlsplit(self.host)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise LangfuseConfigError(f"Langfuse host must be an http(s) URL, got {self.host!r}")
        if not self.public_key or not self.secret_key:
            raise LangfuseConfigError("Langfuse public and secret keys are both required")
        if not self.timeout > 0:
            raise LangfuseConfigError(f"Langfuse timeout must be positive, got {self.timeout!r}")
        if self.api_generation not in (None, *GENERATIONS):
            raise LangfuseConfigError(
                f"LANGFUSE_API_GENERATION must be v3 or v4, got {self.api_generation!r}"
            )


def _env_value(environ: Mapping[str, str], name: str) -> str | None:
    """``NAME``, or the content of the file named by ``NAME_FILE`` (mounted secrets)."""
    try:
        return env_value(name, environ)
    except EnvFileError as e:
        raise LangfuseConfigError(str(e)) from None


def settings_from_env(environ: Mapping[str, str] | None = None) -> LangfuseSettings:
    """Read LANGFUSE_BASE_URL (LANGFUSE_HOST, deprecated, as a fallback),
    LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY (each also as ``*_FILE``) and the optional
    LANGFUSE_TIMEOUT (seconds) and LANGFUSE_API_GENERATION (v3 or v4; detected when unset).
    Raises LangfuseConfigError naming what is missing or bad.
    """
    env = os.environ if environ is None else environ
    host = _env_value(env, "LANGFUSE_BASE_URL") or _env_value(env, "LANGFUSE_HOST")
    public_key = _env_value(env, "LANGFUSE_PUBLIC_KEY")
    secret_key = _env_value(env, "LANGFUSE_SECRET_KEY")
    if not (host and public_key and secret_key):
        missing = [
            name
            for name, value in (
                ("LANGFUSE_BASE_URL", host),
                ("LANGFUSE_PUBLIC_KEY", public_key),
                ("LANGFUSE_SECRET_KEY", secret_key),
            )
            if not value
        ]
        raise LangfuseConfigError(f"Missing environment variables: {', '.join(missing)}")
    raw_timeout = _env_value(env, "LANGFUSE_TIMEOUT")
    try:
        timeout = float(raw_timeout) if raw_timeout else 10.0
    except ValueError as exc:
        raise LangfuseConfigError(f"LANGFUSE_TIMEOUT must be seconds, got {raw_timeout!r}") from exc
    generation = (_env_value(env, "LANGFUSE_API_GENERATION") or "").lower() or None
    return LangfuseSettings(host.rstrip("/"), public_key, secret_key, timeout, generation)


# Langfuse's rule for score config names.
_SCORE_NAME = re.compile(r"^[A-Za-z0-9_ .()\-]{1,35}$")


def label_score_name_from_env(environ: Mapping[str, str] | None = None) -> str:
    """LANGFUSE_LABEL_SCORE_NAME (also ``*_FILE``), default ``routing_label``: the name the
    labels go to Langfuse under, e.g. to keep two consoles' labels apart in one project."""
    env = os.environ if environ is None else environ
    name = _env_value(env, "LANGFUSE_LABEL_SCORE_NAME") or DEFAULT_LABEL_SCORE_NAME
    if not _SCORE_NAME.match(name):
        raise LangfuseConfigError(
            f"LANGFUSE_LABEL_SCORE_NAME must be 1-35 letters, digits, _ . ( ) - or spaces, "
            f"got {name!r}"
        )
    return name
