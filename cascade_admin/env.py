"""Strict readers for settings from the environment.

Each reader fails loudly on a malformed value instead of falling back to a
default, and accepts ``NAME_FILE`` (a mounted secret) in place of ``NAME``.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from routing.envfile import EnvFileError, env_value

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_UNSET = object()


def _raw(name: str) -> str | None:
    try:
        return env_value(name)
    except EnvFileError as e:
        raise ImproperlyConfigured(str(e)) from None


def env_str(name: str, default=_UNSET) -> str:
    value = _raw(name)
    if value is None or value == "":
        if default is _UNSET:
            raise ImproperlyConfigured(f"The environment variable {name} is required.")
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None or value == "":
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true/false, 1/0).")


def env_int(
    name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} must be at least {minimum}.")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}={number} must be at most {maximum}.")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None or value == "":
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


_PERIODS = {"s", "sec", "second", "m", "min", "minute", "h", "hour", "d", "day"}


def env_rate(name: str, default: str) -> str:
    """A request rate as DRF's throttles read it: ``N/period`` (``30/minute``, ``5/s``)."""
    value = env_str(name, default)
    count, _, period = value.partition("/")
    if not (count.isdigit() and int(count) > 0 and period in _PERIODS):
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a rate like 30/minute (periods: second, minute, hour, day)."
        )
    return value
