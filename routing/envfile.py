"""The one reader of settings from the environment, for the console and the classifier pod.

A value comes from ``NAME``, or from the file ``NAME_FILE`` names (a mounted Kubernetes
Secret), never both. No Django here: the pod image copies this file beside its own code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


class EnvFileError(ValueError):
    """A setting given twice, or a ``NAME_FILE`` that cannot be read; the message names it."""


def env_value(
    name: str, environ: Mapping[str, str] | None = None, *, files: bool = True
) -> str | None:
    """``NAME`` or the contents of ``NAME_FILE`` (``files``), stripped; None when unset or
    empty. Raises EnvFileError when both are set or the file cannot be read."""
    env = os.environ if environ is None else environ
    value = env.get(name)
    path = env.get(f"{name}_FILE") if files else None
    if value is not None and path is not None:
        raise EnvFileError(f"Set {name} or {name}_FILE, not both.")
    if path is not None:
        try:
            with open(path, encoding="utf-8") as handle:
                value = handle.read()
        except OSError as e:
            raise EnvFileError(f"{name}_FILE={path!r} cannot be read: {e}") from e
    value = value.strip() if value is not None else ""
    return value or None
