"""Job runners by kind: JSON params in, JSON result out (run on a worker by services.job_run).

Params name versions and ISO periods; a runner validates them and raises ValidationError
with the field names, which fails the job with a readable message.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.core.exceptions import ValidationError
from django.utils.dateparse import parse_datetime

from routing.models import ClassifierVersion

from . import keywords, proposals, replay, sweep
from .selectors import SOURCES, cost_settings


def parse_period(params: dict) -> tuple[datetime, datetime]:
    errors: dict[str, list[str]] = {}
    values: dict[str, datetime] = {}
    for key in ("since", "until"):
        raw = params.get(key)
        value = parse_datetime(raw) if isinstance(raw, str) else None
        if value is None or value.tzinfo is None:
            errors[key] = ["An ISO 8601 date-time with a time zone is required."]
        else:
            values[key] = value
    if not errors and values["since"] >= values["until"]:
        errors["until"] = ["Must be after since."]
    if errors:
        raise ValidationError(errors)
    return values["since"], values["until"]


def version_named(name, field: str = "version") -> ClassifierVersion:
    try:
        return ClassifierVersion.objects.select_related("keyword_set").get(name=name)
    except ClassifierVersion.DoesNotExist:
        raise ValidationError({field: [f"No version named {name!r}."]}) from None


def run_replay(params: dict, progress: Callable[[int], None]) -> dict:
    start, end = parse_period(params)
    candidate = version_named(params.get("version"))
    baseline_name = params.get("baseline") or ""
    baseline = version_named(baseline_name, "baseline") if baseline_name else None
    sources = tuple(params.get("labels") or ("headline",))
    labels = replay.replay_labeled(candidate, start, end, baseline=baseline, sources=sources)
    progress(20)
    traffic = replay.replay_traffic(
        candidate,
        start,
        end,
        costs=cost_settings(),
        progress=lambda p: progress(20 + int(p * 0.8)),
    )
    return {
        "version": candidate.name,
        "config_sha256": candidate.config_sha256,
        "since": start.isoformat(),
        "until": end.isoformat(),
        "labels": labels,
        "traffic": traffic,
    }


def run_candidates(params: dict, progress: Callable[[int], None]) -> dict:
    start, end = parse_period(params)
    version = version_named(params.get("version"))
    limit = int(params.get("limit") or 20)
    return keywords.mine(version, start, end, limit=limit, progress=progress)


def run_sweep(params: dict, progress: Callable[[int], None]) -> dict:
    start, end = parse_period(params)
    version = version_named(params.get("version"))
    target = params.get("target") or [0.60, 0.70]
    sources = tuple(params.get("labels") or SOURCES)
    return sweep.sweep(
        version, start, end, target=tuple(target), sources=sources, progress=progress
    )


# kind -> runner(params, progress) -> result
RUNNERS: dict[str, Callable[[dict, Callable[[int], None]], dict]] = {
    "replay": run_replay,
    "candidates": run_candidates,
    "sweep": run_sweep,
    "proposal": proposals.run,
}
