"""Proposals from the database: gather labels and traffic, run the search, make the draft.

``run`` is the job runner (params in, JSON result out); ``tuning.proposal`` does the
searching and estimating and knows nothing of Django.
"""

from __future__ import annotations

import hashlib
import json
import math
import unicodedata
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.core.exceptions import ValidationError
from django.db.models import Avg
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from labeling.sync import input_fingerprint
from routing.engine import STRONG, build_classifier
from routing.models import ClassifierVersion
from routing.selectors import classifier_for

from . import proposal, selectors
from .features import language
from .models import Metric
from .search import Labels, Rule, Settings, Traffic, TrafficMatcher
from .stats import mcnemar

KINDS = ("keywords", "scorer")  # what a proposal changes: the keyword list, or a scorer
DEFAULT_TRAFFIC_DAYS = 7
DEFAULT_FOLDS = 10  # each fold trains on 90% of the labels: a less pessimistic estimate
MAX_FOLDS = 20


def default_band() -> tuple[float, float]:
    """The SLO board's SLM-usage target (the spec's 60-70% if it has no two-sided one)."""
    for target in selectors.slo_targets():
        if target.metric == Metric.SLM_USAGE and target.low is not None and target.high:
            return (target.low, target.high)
    return (0.60, 0.70)


def _period(params: dict) -> tuple[datetime | None, datetime | None, datetime, datetime]:
    """(label since, label until, traffic since, traffic until): labels from any time unless
    a period is given; traffic from the period, or the last seven days."""
    values = {}
    for key in ("since", "until"):
        raw = params.get(key)
        value = parse_datetime(raw) if isinstance(raw, str) and raw else None
        if raw and (value is None or value.tzinfo is None):
            raise ValidationError({key: ["An ISO 8601 date-time with a time zone is required."]})
        values[key] = value
    since, until = values["since"], values["until"]
    if since and until and since >= until:
        raise ValidationError({"until": ["Must be after since."]})
    traffic_until = until or timezone.now()
    traffic_since = since or traffic_until - timedelta(days=DEFAULT_TRAFFIC_DAYS)
    return since, until, traffic_since, traffic_until


def parse_params(params: dict) -> dict[str, Any]:
    """Validated settings of a proposal request; ValidationError names each bad field."""
    errors: dict[str, list[str]] = {}
    out: dict[str, Any] = {}

    def number(key, default, kind=float, low=None, high=None):
        raw = params.get(key, default)
        try:
            value = kind(raw)
            if isinstance(raw, bool) or (kind is float and not math.isfinite(value)):
                raise ValueError
        except (TypeError, ValueError):
            errors[key] = [f"Must be a number, got {raw!r}."]
            return default
        if (low is not None and value < low) or (high is not None and value > high):
            errors[key] = [f"Must be between {low} and {high}."]
        return value

    out["kind"] = params.get("kind") or "keywords"
    if out["kind"] not in KINDS:
        errors["kind"] = [f"Choose {' or '.join(KINDS)}."]
    out["base"] = params.get("base") or ""
    if not isinstance(out["base"], str) or not out["base"]:
        errors["base"] = ["Name the base version."]
    out["name"] = params.get("name") or ""
    band = params.get("slm_band") or list(default_band())
    if (
        not isinstance(band, list | tuple)
        or len(band) != 2
        or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in band)
        or not 0 <= band[0] <= band[1] <= 1
    ):
        errors["slm_band"] = ["Give [low, high] shares with 0 <= low <= high <= 1."]
        band = default_band()
    out["slm_band"] = [float(band[0]), float(band[1])]
    sources = params.get("labels") or list(selectors.SOURCES)
    if (
        not isinstance(sources, list | tuple)
        or not sources
        or any(s not in selectors.SOURCES for s in sources)
    ):
        errors["labels"] = [f"Choose from {', '.join(selectors.SOURCES)}."]
        sources = list(selectors.SOURCES)
    out["labels"] = list(dict.fromkeys(sources))
    out["fn_weight"] = number("fn_weight", 1.0, float, 0.1, 20)
    out["max_changes"] = number("max_changes", 20, int, 0, 200)
    out["folds"] = number("folds", DEFAULT_FOLDS, int, 2, MAX_FOLDS)
    out["seed"] = number("seed", 0, int, 0, 2**31 - 1)
    out["holdout"] = number("holdout", 0.0, float, 0.0, 0.5)
    pinned = params.get("pinned") or []
    if not isinstance(pinned, list | tuple) or not all(isinstance(p, str) for p in pinned):
        errors["pinned"] = ["Give a list of keywords."]
        pinned = []
    out["pinned"] = sorted({unicodedata.normalize("NFC", p).lower() for p in pinned if p})
    try:
        out["period"] = _period(params)
    except ValidationError as e:
        errors.update(e.message_dict)
    if errors:
        raise ValidationError(errors)
    return out


def input_key(row: selectors.LabeledRow) -> str:
    """Rows with one key share an input: they go to one fold, or one side of a hold-out."""
    return row.input_hash or input_fingerprint(row.text)


def labels_from(rows: list[selectors.LabeledRow], byte_threshold: int | None) -> Labels:
    texts = [unicodedata.normalize("NFC", r.text).lower() for r in rows]
    groups: dict[str, int] = {}
    group = [groups.setdefault(input_key(r), len(groups)) for r in rows]
    forced = [
        byte_threshold is not None and len(r.text.encode("utf-8")) > byte_threshold for r in rows
    ]
    return Labels(
        texts=texts,
        chars=np.array([len(r.text) for r in rows], dtype=np.int64),
        turns=np.array([r.turn_count for r in rows], dtype=np.int64),
        forced=np.array(forced, dtype=bool),
        needed=np.array([r.label == "strong_needed" for r in rows], dtype=bool),
        weight=np.array([max(1, r.requests) for r in rows], dtype=float),
        group=np.array(group, dtype=np.int64),
    )


def traffic_loader(
    start: datetime, end: datetime, byte_threshold: int | None
) -> Callable[[list[str]], Traffic | None]:
    """Streams the period's traffic once, collecting every term's hits."""

    def load(terms: list[str]) -> Traffic | None:
        matcher = TrafficMatcher(terms)
        chars, turns, forced = [], [], []
        for text, turn_count in selectors.stream(
            selectors.period_traffic(start, end), "input_text", "turn_count"
        ):
            matcher.add(text.lower())
            chars.append(len(text))
            turns.append(turn_count)
            forced.append(byte_threshold is not None and len(text.encode("utf-8")) > byte_threshold)
        if not chars:
            return None
        return Traffic(
            chars=np.array(chars, dtype=np.int64),
            turns=np.array(turns, dtype=np.int64),
            forced=np.array(forced, dtype=bool),
            hits=matcher.hits(),
        )

    return load


def unit_costs(start: datetime, end: datetime) -> dict[str, float | None]:
    """Mean recorded cost of a request per tier in the period."""
    costs = {}
    for tier in ("weak", "strong"):
        costs[tier] = (
            selectors.period_traffic(start, end)
            .filter(tier=tier, cost_usd__isnull=False)
            .aggregate(mean=Avg("cost_usd"))["mean"]
        )
    return costs


def snapshot_hash(rows: list[selectors.LabeledRow]) -> str:
    """Which labels a proposal rests on: the same labels give the same hash."""
    digest = hashlib.sha256()
    for key in sorted(
        (r.source, r.langfuse_id, r.label, r.requests, r.input_hash or "") for r in rows
    ):
        digest.update(json.dumps(key, ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()


def version_named(name: str) -> ClassifierVersion:
    try:
        return ClassifierVersion.objects.select_related("keyword_set").get(name=name)
    except ClassifierVersion.DoesNotExist:
        raise ValidationError({"base": [f"No version named {name!r}."]}) from None


def check_params(params: dict) -> None:
    """What can be checked before queuing: the settings, the base, a free name."""
    options = parse_params(params)
    base = version_named(options["base"])
    if options["kind"] == "keywords" and base.has_scorer:
        raise ValidationError(
            {"base": [f"{base.name} has a scorer: propose a scorer from it, or a keyword "
                      "version from a keyword base."]}
        )  # fmt: skip
    if options["name"] and ClassifierVersion.objects.filter(name=options["name"]).exists():
        raise ValidationError({"name": [f"A version named {options['name']!r} already exists."]})


def run(params: dict, progress: Callable[[int], None] = lambda p: None) -> dict[str, Any]:
    """The proposal job: validated params in, the proposal (JSON) out."""
    from .terms import terms_many

    check_params(params)
    options = parse_params(params)
    base_version = version_named(options["base"])
    since, until, traffic_since, traffic_until = options["period"]
    every, summary = selectors.training_rows(since, until, sources=tuple(options["labels"]))
    rows, held_out = split_holdout(every, options["holdout"], options["seed"])
    config = classifier_for(base_version).config
    base = Rule(frozenset(config.keywords), config.token_threshold, config.turn_threshold)
    labels = labels_from(rows, config.byte_threshold)
    docs = terms_many(labels.texts) if rows and options["kind"] == "keywords" else []
    progress(10)
    settings = Settings(
        band=tuple(options["slm_band"]),
        fn_weight=options["fn_weight"],
        max_changes=options["max_changes"],
        pinned=frozenset(options["pinned"]),
    )
    common = {
        "folds": options["folds"],
        "seed": options["seed"],
        "unit_costs": unit_costs(traffic_since, traffic_until),
        "progress": lambda p: progress(10 + int(p * 0.9)),
    }
    load = traffic_loader(traffic_since, traffic_until, config.byte_threshold)
    try:
        if options["kind"] == "scorer":
            # scikit-learn loads here, in the worker, not in every web process.
            from . import scorer_proposal

            result = scorer_proposal.propose_scorer(
                labels, base, settings, load, base_scorer=base_version.scorer, **common
            )
        else:
            result = proposal.propose(labels, docs, base, settings, load, **common)
    except proposal.ProposalError as e:
        raise ValidationError(
            {"labels": [f"{e} Label sources: {_sources_text(summary)}."]}
        ) from None
    result.setdefault("kind", "keywords")
    if held_out:
        result["holdout"] = holdout_figures(held_out, base_version, result, config.byte_threshold)
    return {
        **result,
        "label_keys": [r.key for r in rows],
        "holdout_keys": [r.key for r in held_out],
        "base_version": base_version.name,
        "base_sha256": base_version.config_sha256,
        "name": options["name"],
        "labels": summary,
        "label_snapshot": snapshot_hash(every),
        "label_period": [
            since.isoformat() if since else None,
            until.isoformat() if until else None,
        ],
        "traffic_period": [traffic_since.isoformat(), traffic_until.isoformat()],
        "params": {k: v for k, v in options.items() if k != "period"},
    }


def split_holdout(
    rows: list[selectors.LabeledRow], share: float, seed: int
) -> tuple[list[selectors.LabeledRow], list[selectors.LabeledRow]]:
    """A seeded random ``share`` of the inputs (all rows of one input together) set aside:
    the search never sees them, so figures on them are honest out-of-sample figures."""
    if share <= 0 or not rows:
        return rows, []
    groups = sorted({input_key(r) for r in rows})
    rng = np.random.default_rng(seed + 1)
    chosen = set(rng.permutation(groups)[: round(share * len(groups))].tolist())
    held = [input_key(r) in chosen for r in rows]
    return (
        [r for r, out in zip(rows, held, strict=True) if not out],
        [r for r, out in zip(rows, held, strict=True) if out],
    )


def holdout_figures(
    rows: list[selectors.LabeledRow],
    base_version: ClassifierVersion,
    result: dict,
    byte_threshold: int | None,
) -> dict[str, Any]:
    """The proposal and the base decided by the engine on the held-out labels, and McNemar
    between them."""
    labels = labels_from(rows, byte_threshold)
    proposed = build_classifier(
        {
            "strong_keywords": result["rule"]["keywords"],
            "token_threshold": result["rule"]["token_threshold"],
            "turn_threshold": result["rule"]["turn_threshold"],
            "byte_threshold": byte_threshold,
            "scorer": result.get("scorer"),
        }
    )
    base = classifier_for(base_version)

    def strong(classifier) -> np.ndarray:
        tiers = [classifier.classify_text(r.text, r.turn_count, explain=False).tier for r in rows]
        return np.array([t == STRONG for t in tiers], dtype=bool)

    old, new = strong(base), strong(proposed)
    everything = np.arange(labels.size)
    langs = [language(text) for text in labels.texts]
    right_old, right_new = old == labels.needed, new == labels.needed
    test = mcnemar(int((right_old & ~right_new).sum()), int((~right_old & right_new).sum()))
    return {
        "labels": selectors.source_counts(rows),
        "proposal": proposal.figures(labels, new, everything, langs),
        "base": proposal.figures(labels, old, everything, langs),
        "mcnemar": test.as_dict(),
    }


def _sources_text(summary: dict) -> str:
    counts = summary["counts"]
    return ", ".join(
        f"{source} {counts[source]['inputs']} inputs / {counts[source]['requests']} requests"
        for source in summary["sources"]
    )


def summary_json(job_result: dict) -> dict[str, Any]:
    """The ``--json`` shape: base, name, changes, estimate, in_sample (and a little more)."""
    keys = ("misroute", "fn_rate", "fp_rate", "slm_share")
    return {
        "kind": job_result.get("kind", "keywords"),
        "base": job_result["base_version"],
        "name": job_result.get("name", ""),
        "changes": job_result["changes"],
        "rule": job_result["rule"],
        "estimate": {k: job_result["estimate"][k] for k in keys}
        | {"cost_per_1k": job_result["estimate"].get("cost_per_1k")},
        "base_estimate": {k: job_result["base"][k] for k in keys},
        "in_sample": {k: job_result["in_sample"][k] for k in keys},
        "beats_base": job_result["beats_base"],
        "verdict": job_result["verdict"],
        "mcnemar": job_result["mcnemar"],
        "labels": job_result["labels"]["counts"],
        "label_snapshot": job_result["label_snapshot"],
    } | ({"model": job_result["model"]} if "model" in job_result else {})
