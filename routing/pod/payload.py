"""Checking and reading a request body: the pure part of the proxy.

Everything here is a plain function of its arguments; the ASGI plumbing is in proxy.py.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn
from urllib.parse import quote

from routing.engine import Decision, MessagesError

from .config_store import Loaded
from .errors import RequestError

HEADER_LIMIT = 1024  # a reasons header beyond this is cut: proxies reject huge headers
_SAFE = ":;,>= "


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes) -> Any:
    """Strict JSON: no NaN/Infinity (the backend would choke on them), no absurd nesting."""
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise RequestError(400, "Request body is nested too deeply.") from None
    except UnicodeDecodeError:
        raise RequestError(400, "Request body is not valid UTF-8.") from None
    except ValueError as exc:
        raise RequestError(400, f"Request body is not valid JSON: {exc}") from None


def dump_json(payload: dict[str, Any]) -> bytes:
    try:
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates from \ud800-style escapes: keep them escaped, as the client sent.
        return json.dumps(payload, separators=(",", ":")).encode("ascii")


def routing_messages(payload: dict[str, Any], endpoint: str) -> list[dict[str, Any]]:
    """The messages to classify, after checking the fields the pod relies on."""
    if "model" in payload and not isinstance(payload["model"], str):
        raise RequestError(400, "'model' must be a string.", param="model")
    if "stream" in payload and not isinstance(payload["stream"], bool):
        raise RequestError(400, "'stream' must be a boolean.", param="stream")
    if endpoint == "completions":
        prompt = payload.get("prompt")
        if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            prompt = " ".join(prompt)
        if not isinstance(prompt, str):
            raise RequestError(
                400, "'prompt' must be a string or a list of strings.", param="prompt"
            )
        return [{"role": "user", "content": prompt}]
    messages = payload.get("messages")
    if messages is None:
        raise RequestError(400, "'messages' is required.", param="messages")
    if not isinstance(messages, list):
        raise RequestError(
            400, f"'messages' must be a list, got {type(messages).__name__}.", param="messages"
        )
    if not messages:
        raise RequestError(400, "'messages' must not be empty.", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RequestError(
                400,
                f"messages[{index}] must be an object with a string 'role'.",
                param=f"messages[{index}]",
            )
    return messages


def classify(loaded: Loaded, messages: list[dict[str, Any]], *, explain: bool = True) -> Decision:
    """``explain``: name a scorer's top features (only a trace shows them)."""
    try:
        return loaded.classifier.classify(messages, explain=explain)
    except MessagesError as exc:  # a lone surrogate included
        raise RequestError(400, str(exc), param="messages") from None


def reasons_header(reasons: tuple[str, ...]) -> bytes:
    """Reasons, percent-encoded UTF-8 (header values are ASCII), cut at HEADER_LIMIT."""
    text = "; ".join(reasons)
    value = quote(text, safe=_SAFE)
    if len(value) > HEADER_LIMIT:
        # Cut whole characters, never inside one's %-escapes (the rest would not decode).
        kept, size = [], 0
        for char in text:
            encoded = quote(char, safe=_SAFE)
            if size + len(encoded) > HEADER_LIMIT - 3:
                break
            kept.append(encoded)
            size += len(encoded)
        value = "".join(kept) + "..."
    return value.encode("ascii")
