"""Pod settings: command-line flags, each also settable from the environment.

A flag wins over its variable; a secret may also come from ``NAME_FILE`` (a mounted
Secret). Bad values stop the process at start with a message naming the setting, so a
typo never turns into a silently different pod.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from routing.envfile import EnvFileError, env_value

ENV_PREFIX = "CASCADE_POD_"
MB = 1024 * 1024

Number = TypeVar("Number", int, float)


class SettingsError(ValueError):
    """A missing or malformed setting; the process cannot start (a retry will not help)."""


@dataclass(frozen=True)
class Backend:
    """One upstream: an OpenAI-compatible base URL (ending in ``/v1``) and its model."""

    name: str  # "weak" or "strong"
    url: str
    model: str
    api_key: str | None = None


@dataclass(frozen=True)
class LangfuseSettings:
    public_key: str
    secret_key: str
    base_url: str
    timeout: int  # seconds per export attempt


@dataclass(frozen=True)
class Settings:
    config_path: Path
    weak: Backend
    strong: Backend
    host: str = "127.0.0.1"
    port: int = 8080
    admin_token: str | None = None
    forward_client_auth: bool = False
    connect_timeout: float = 2.0
    first_byte_timeout: float = 30.0
    read_timeout: float = 120.0
    max_body_bytes: int = 10 * MB
    header_timeout: float = 10.0  # seconds to receive a request's headers
    body_timeout: float = 30.0  # seconds to receive its body, after the headers
    max_connections: int = 4096  # open connections (and requests) before answering 503
    reload_interval: float = 2.0
    model_name: str = "cascade"
    langfuse: LangfuseSettings | None = None
    access_log: bool = False
    log_level: str = "info"


# (flag, variable, help). Variables are ENV_PREFIX + name unless they start with LANGFUSE_.
_OPTIONS: list[tuple[str, str, str]] = [
    ("--config", "CONFIG", "canonical config JSON file (manage.py export_config)"),
    ("--weak-url", "WEAK_URL", "weak backend base URL, e.g. http://qwen:8000/v1"),
    ("--strong-url", "STRONG_URL", "strong backend base URL"),
    ("--weak-model", "WEAK_MODEL", "model name the weak backend serves"),
    ("--strong-model", "STRONG_MODEL", "model name the strong backend serves"),
    ("--weak-api-key", "WEAK_API_KEY", "bearer key sent to the weak backend"),
    ("--strong-api-key", "STRONG_API_KEY", "bearer key sent to the strong backend"),
    ("--host", "HOST", "listen address (default 127.0.0.1)"),
    ("--port", "PORT", "listen port (default 8080)"),
    ("--admin-token", "ADMIN_TOKEN", "bearer token for PUT /admin/config (unset: disabled)"),
    ("--connect-timeout", "CONNECT_TIMEOUT", "seconds to connect to a backend (default 2)"),
    (
        "--first-byte-timeout",
        "FIRST_BYTE_TIMEOUT",
        "seconds strong has to send its first response byte before the request falls back "
        "to weak (default 30); for a non-streaming request that bounds strong's whole answer. "
        "The last backend tried (weak) is bounded by --read-timeout instead",
    ),
    (
        "--read-timeout",
        "READ_TIMEOUT",
        "seconds between chunks after the first, and the last backend's wait for its first "
        "byte (default 120)",
    ),
    ("--max-body-bytes", "MAX_BODY_BYTES", "largest accepted request body (default 10 MiB)"),
    (
        "--header-timeout",
        "HEADER_TIMEOUT",
        "seconds a client has to send a request's headers, from connecting or from the "
        "request's first byte; then 408 and the connection closes (default 10)",
    ),
    (
        "--body-timeout",
        "BODY_TIMEOUT",
        "seconds a client has to send a request's body after its headers; then 408 (default 30)",
    ),
    (
        "--max-connections",
        "MAX_CONNECTIONS",
        "open connections (or requests) beyond which new requests get 503 (default 4096)",
    ),
    ("--reload-interval", "RELOAD_INTERVAL", "seconds between config file checks; 0 = never"),
    ("--model-name", "MODEL_NAME", "model id listed by GET /v1/models (default cascade)"),
    (
        "--langfuse-public-key",
        "LANGFUSE_PUBLIC_KEY",
        "Langfuse public key (tracing is on when both keys are set)",
    ),
    ("--langfuse-secret-key", "LANGFUSE_SECRET_KEY", "Langfuse secret key"),
    ("--langfuse-base-url", "LANGFUSE_BASE_URL", "Langfuse URL (default cloud.langfuse.com)"),
    ("--langfuse-timeout", "LANGFUSE_TIMEOUT", "seconds per Langfuse export (default 5)"),
    ("--log-level", "LOG_LEVEL", "debug, info, warning or error (default info)"),
]
_SECRETS = {"WEAK_API_KEY", "STRONG_API_KEY", "ADMIN_TOKEN", "LANGFUSE_SECRET_KEY"}
_SWITCHES = [
    (
        "--forward-client-auth",
        "FORWARD_CLIENT_AUTH",
        "pass the client's Authorization header on when a backend has no key of its own",
    ),
    ("--access-log", "ACCESS_LOG", "log every request (uvicorn access log)"),
]


def _env_name(name: str) -> str:
    return name if name.startswith("LANGFUSE_") else ENV_PREFIX + name


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m routing.pod",
        description="Cascade classifier pod: routes OpenAI-style requests to a weak or "
        "strong backend. Every flag can also be set from the environment variable shown.",
    )
    for flag, name, help_text in _OPTIONS:
        parser.add_argument(flag, dest=name, help=f"{help_text} [{_env_name(name)}]")
    for flag, name, help_text in _SWITCHES:
        parser.add_argument(
            flag,
            dest=name,
            action="store_const",
            const="true",
            help=f"{help_text} [{_env_name(name)}=true]",
        )
    return parser


def _lookup(name: str, args: Mapping[str, str | None], env: Mapping[str, str]) -> str | None:
    if args.get(name) is not None:
        return args[name]
    try:
        return env_value(_env_name(name), env, files=name in _SECRETS)
    except EnvFileError as e:
        raise SettingsError(str(e)) from None


def _number(
    name: str,
    raw: str | None,
    kind: type[Number],
    default: Number,
    minimum: float,
    maximum: float | None = None,
) -> Number:
    if raw is None:
        return default
    try:
        value = kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise SettingsError(f"{_env_name(name)}: {raw!r} is not {what}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise SettingsError(f"{_env_name(name)}: must be {bound}, got {raw}")
    return value


def _bool(name: str, raw: str | None) -> bool:
    if raw is None:
        return False
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"{_env_name(name)}: {raw!r} is not a boolean")


def _url(name: str, raw: str | None) -> str:
    if not raw:
        raise SettingsError(f"{_env_name(name)} is required")
    if not raw.startswith(("http://", "https://")):
        raise SettingsError(f"{_env_name(name)}: must be an http(s) URL, got {raw!r}")
    return raw.rstrip("/")


def parse_settings(
    argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Settings from ``argv`` (flags) over ``env``; raise SettingsError when invalid."""
    env = os.environ if env is None else env
    args = vars(_parser().parse_args(argv))

    def get(name: str) -> str | None:
        return _lookup(name, args, env)

    config = get("CONFIG")
    if not config:
        raise SettingsError(f"{_env_name('CONFIG')} is required")
    backends = {}
    for tier in ("weak", "strong"):
        key = tier.upper()
        model = get(f"{key}_MODEL")
        if not model:
            raise SettingsError(f"{_env_name(key + '_MODEL')} is required")
        backends[tier] = Backend(
            tier, _url(f"{key}_URL", get(f"{key}_URL")), model, get(f"{key}_API_KEY")
        )
    langfuse = None
    public, secret = get("LANGFUSE_PUBLIC_KEY"), get("LANGFUSE_SECRET_KEY")
    if bool(public) != bool(secret):
        raise SettingsError("LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY go together")
    if public and secret:
        langfuse = LangfuseSettings(
            public_key=public,
            secret_key=secret,
            base_url=(get("LANGFUSE_BASE_URL") or "https://cloud.langfuse.com").rstrip("/"),
            timeout=_number("LANGFUSE_TIMEOUT", get("LANGFUSE_TIMEOUT"), int, 5, 1, 60),
        )
    log_level = (get("LOG_LEVEL") or "info").lower()
    if log_level not in {"debug", "info", "warning", "error"}:
        raise SettingsError(f"{_env_name('LOG_LEVEL')}: unknown level {log_level!r}")
    return Settings(
        config_path=Path(config),
        weak=backends["weak"],
        strong=backends["strong"],
        host=get("HOST") or "127.0.0.1",
        port=_number("PORT", get("PORT"), int, 8080, 0, 65535),
        admin_token=get("ADMIN_TOKEN") or None,
        forward_client_auth=_bool("FORWARD_CLIENT_AUTH", get("FORWARD_CLIENT_AUTH")),
        connect_timeout=_number("CONNECT_TIMEOUT", get("CONNECT_TIMEOUT"), float, 2.0, 0.01),
        first_byte_timeout=_number(
            "FIRST_BYTE_TIMEOUT", get("FIRST_BYTE_TIMEOUT"), float, 30.0, 0.01
        ),
        read_timeout=_number("READ_TIMEOUT", get("READ_TIMEOUT"), float, 120.0, 0.01),
        max_body_bytes=_number("MAX_BODY_BYTES", get("MAX_BODY_BYTES"), int, 10 * MB, 1),
        header_timeout=_number("HEADER_TIMEOUT", get("HEADER_TIMEOUT"), float, 10.0, 0.05, 600),
        body_timeout=_number("BODY_TIMEOUT", get("BODY_TIMEOUT"), float, 30.0, 0.05, 3600),
        max_connections=_number("MAX_CONNECTIONS", get("MAX_CONNECTIONS"), int, 4096, 1, 1_000_000),
        reload_interval=_number("RELOAD_INTERVAL", get("RELOAD_INTERVAL"), float, 2.0, 0),
        model_name=get("MODEL_NAME") or "cascade",
        langfuse=langfuse,
        access_log=_bool("ACCESS_LOG", get("ACCESS_LOG")),
        log_level=log_level,
    )
