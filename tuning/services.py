"""Writes of the tuning app: reports, jobs, SLO targets, cost settings, keyword adoption.

Each runs in one transaction and records what matters in the audit log. Work for a
worker is queued with ``transaction.on_commit``, so a rolled-back request queues nothing.
Computing is idempotent: a report or job is claimed with a conditional UPDATE, and a
second worker given the same id finds it claimed and leaves.
"""

from __future__ import annotations

import logging
import math
import re
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.services import audit_record
from cascade_admin.actors import user_of
from cascade_admin.errors import Conflict
from cascade_admin.ui import error_text
from routing import services as routing_services
from routing.engine import normalize_keyword
from routing.models import ClassifierVersion

from .models import CostSettings, Job, JobKind, JobStatus, MetricReport, SloTarget

log = logging.getLogger(__name__)

STALE_CLAIM = timedelta(minutes=30)  # a claim older than this belongs to a dead worker


def _check_period(start: datetime, end: datetime) -> None:
    if start is None or end is None or start >= end:
        raise ValidationError({"period_end": ["Must be after the period start."]})
    if timezone.is_naive(start) or timezone.is_naive(end):
        raise ValidationError({"period_start": ["Give a time zone (UTC)."]})


@transaction.atomic
def report_request(
    *, actor, version: str, period_start: datetime, period_end: datetime
) -> MetricReport:
    """Queue (re)computing the report of ``version`` over the period; one row per period."""
    _check_period(period_start, period_end)
    if not version:
        raise ValidationError({"version": ["Name a classifier version."]})
    report, created = MetricReport.objects.select_for_update().get_or_create(
        version=version,
        period_start=period_start,
        period_end=period_end,
        defaults={"requested_by": user_of(actor)},
    )
    if report.status != JobStatus.RUNNING:
        report.status = JobStatus.QUEUED
        report.progress = 0
    report.queued_at = timezone.now()
    report.save(update_fields=["status", "progress", "queued_at"])
    if user_of(actor):
        audit_record(
            actor=actor,
            action="report.request",
            obj=report,
            after={"version": version, "created": created},
        )
    from .tasks import compute_report

    transaction.on_commit(lambda: compute_report.delay(report.pk))
    return report


def _claim(model, pk: int, *, done=None) -> bool:
    """Mark a queued (or abandoned) row running; False if another worker holds it, or if
    ``done`` (a Q) says the work is already up to date."""
    now = timezone.now()
    claimable = model.objects.filter(pk=pk).exclude(
        status=JobStatus.RUNNING, started_at__gt=now - STALE_CLAIM
    )
    if done is not None:
        claimable = claimable.exclude(done)
    return bool(claimable.update(status=JobStatus.RUNNING, started_at=now, progress=0))


def _progress(model, pk: int):
    def report(percent: int) -> None:
        model.objects.filter(pk=pk).update(progress=max(0, min(99, percent)))

    return report


def report_compute(report_id: int) -> MetricReport | None:
    """Compute a report (on a worker). Returns None when another worker has it already."""
    from .metrics import compute

    # Computed after its latest request: a duplicate task has nothing to do.
    up_to_date = Q(status=JobStatus.SUCCEEDED, computed_at__gte=F("queued_at"))
    if not _claim(MetricReport, report_id, done=up_to_date):
        return None
    report = MetricReport.objects.get(pk=report_id)
    try:
        inputs, result = compute(
            report.version,
            report.period_start,
            report.period_end,
            progress=_progress(MetricReport, report_id),
        )
    except Exception as e:
        log.exception("report %s failed", report_id)
        MetricReport.objects.filter(pk=report_id).update(status=JobStatus.FAILED, error=str(e))
        raise
    MetricReport.objects.filter(pk=report_id).update(
        status=JobStatus.SUCCEEDED,
        progress=100,
        inputs=inputs,
        result=result,
        error="",
        computed_at=timezone.now(),
    )
    started = report.started_at
    report.refresh_from_db()
    if report.queued_at and started and report.queued_at > started:
        # Asked for again while this run was computing (new labels, say): its task found the
        # report busy and gave up, so run once more rather than drop the request.
        from .tasks import compute_report

        MetricReport.objects.filter(pk=report_id).update(status=JobStatus.QUEUED, progress=0)
        compute_report.delay(report_id)
        report.refresh_from_db()
    return report


@transaction.atomic
def slo_target_update(
    *,
    actor,
    target: SloTarget,
    low: float | None,
    high: float | None,
    low_inclusive: bool | None = None,
    high_inclusive: bool | None = None,
    min_samples: int | None = None,
) -> SloTarget:
    if low is None and high is None:
        raise ValidationError({"low": ["Give a lower or an upper bound (or both)."]})
    if low is not None and high is not None and low > high:
        raise ValidationError({"high": ["Must not be below the lower bound."]})
    target = SloTarget.objects.select_for_update().get(pk=target.pk)
    before = _slo_snapshot(target)
    target.low, target.high = low, high
    if low_inclusive is not None:
        target.low_inclusive = low_inclusive
    if high_inclusive is not None:
        target.high_inclusive = high_inclusive
    if min_samples is not None:
        target.min_samples = min_samples
    target.updated_by = user_of(actor)
    target.save()
    audit_record(
        actor=actor, action="slo.update", obj=target, before=before, after=_slo_snapshot(target)
    )
    return target


def _slo_snapshot(target: SloTarget) -> dict[str, Any]:
    return {
        "metric": target.metric,
        "low": target.low,
        "low_inclusive": target.low_inclusive,
        "high": target.high,
        "high_inclusive": target.high_inclusive,
        "min_samples": target.min_samples,
    }


PROMETHEUS_JOB = re.compile(r"^[A-Za-z_][A-Za-z0-9_:-]*$")
COST_FIELDS = (
    "strong_usd_per_hour",
    "weak_usd_per_hour",
    "daily_budget_usd",
    "monthly_budget_usd",
    "daily_alert_share",
    "monthly_alert_share",
    "drift_alert_share",
    "strong_job",
    "weak_job",
)


@transaction.atomic
def cost_settings_update(*, actor, **changes) -> CostSettings:
    unknown = set(changes) - set(COST_FIELDS)
    if unknown:
        raise ValidationError({f: ["Unknown field."] for f in unknown})
    settings, _ = CostSettings.objects.select_for_update().get_or_create(pk=1)
    before = {f: getattr(settings, f) for f in COST_FIELDS}
    for field, value in changes.items():
        setattr(settings, field, value)
    settings.full_clean()
    errors = {}
    for field in COST_FIELDS:
        value = getattr(settings, field)
        if isinstance(value, float) and not math.isfinite(value):
            errors[field] = ["Must be a finite number."]
        elif field.endswith("_job") and not PROMETHEUS_JOB.match(value):
            # It is written into generated rule files: nothing there may break the YAML.
            errors[field] = ["Use a Prometheus job name: letters, digits, '_', ':' or '-'."]
    for field in ("daily_alert_share", "monthly_alert_share"):
        if not 0 < getattr(settings, field) <= 1:
            errors[field] = ["Must be above 0 and at most 1."]
    for field in ("daily_budget_usd", "monthly_budget_usd"):
        if getattr(settings, field) <= 0:
            errors[field] = ["Must be positive."]
    if errors:
        raise ValidationError(errors)
    settings.save()
    audit_record(
        actor=actor,
        action="cost_settings.update",
        obj=settings,
        before=before,
        after={f: getattr(settings, f) for f in COST_FIELDS},
    )
    return settings


@transaction.atomic
def job_start(*, actor, kind: str, params: dict[str, Any]) -> Job:
    """Record a tuning job and queue it; the caller polls the job for progress."""
    job = _job_create(actor, kind, params)
    from .tasks import run_job

    transaction.on_commit(lambda: run_job.delay(job.pk))
    return job


def job_run_here(*, actor, kind: str, params: dict[str, Any]) -> Job:
    """Record a job and run it in this process (commands): the same runner a worker uses."""
    job = job_run(_job_create(actor, kind, params).pk)
    assert job is not None  # just created and never queued: no worker can hold it
    return job


def _job_create(actor, kind: str, params: dict[str, Any]) -> Job:
    if kind not in JobKind.values:
        raise ValidationError({"kind": [f"Must be one of {', '.join(JobKind.values)}."]})
    return Job.objects.create(
        kind=kind,
        params=params,
        created_by=user_of(actor),
    )


def job_run(job_id: int) -> Job | None:
    """Run a job (on a worker); None when another worker has it already."""
    from .jobs import RUNNERS

    if not _claim(Job, job_id):
        return None
    job = Job.objects.get(pk=job_id)
    try:
        result = RUNNERS[job.kind](job.params, _progress(Job, job_id))
    except (ValidationError, ClassifierVersion.DoesNotExist) as e:
        Job.objects.filter(pk=job_id).update(
            status=JobStatus.FAILED, error=error_text(e), finished_at=timezone.now()
        )
        job.refresh_from_db()
        return job
    except Exception as e:
        log.exception("job %s failed", job_id)
        Job.objects.filter(pk=job_id).update(
            status=JobStatus.FAILED, error=str(e)[:2000], finished_at=timezone.now()
        )
        raise
    Job.objects.filter(pk=job_id).update(
        status=JobStatus.SUCCEEDED, progress=100, result=result, finished_at=timezone.now()
    )
    job.refresh_from_db()
    return job


@transaction.atomic
def keyword_adopt(*, actor, version: ClassifierVersion, text: str, evidence: dict[str, Any]) -> Any:
    """Add a mined keyword to a draft, with its evidence as the rationale."""
    if not version.is_draft:
        raise Conflict(f"{version.name} is {version.status}; keywords go into drafts only.")
    rationale = (
        f"Mined from false negatives ({evidence.get('period', 'labeled data')}): "
        f"in {evidence.get('support', '?')} strong-needed items routed weak; fixes "
        f"{evidence.get('fn_fixed', '?')} FN, adds {evidence.get('fp_added', '?')} FP on labels; "
        f"SLM usage change {evidence.get('slm_change_text', 'n/a')}; "
        f"log-odds z = {evidence.get('z', '?')}."
    )
    keyword = routing_services.keyword_add(
        actor=actor, version=version, text=text, language="", rationale=rationale[:1000]
    )
    audit_record(
        actor=actor,
        action="keyword.adopt_candidate",
        obj=version,
        after={"text": text, "evidence": evidence},
    )
    return keyword


def _proposed_keywords(job: Job, base: ClassifierVersion, changes: list[dict]) -> list[dict]:
    """The base's keywords less the removals, plus the additions with their evidence."""
    removed = {c["term"] for c in changes if c["op"] == "remove"}
    keywords = [
        {"text": k.text, "language": k.language, "rationale": k.rationale}
        for k in base.keyword_set.keywords.all()
        if normalize_keyword(k.text) not in removed
    ]
    for change in changes:
        if change["op"] == "add":
            ev = change["evidence"]
            keywords.append(
                {
                    "text": change["term"],
                    "rationale": (
                        f"Proposal {job.pk}: fixes {ev['fn_fixed']} FN, adds {ev['fp_added']} FP "
                        f"on labels ({ev['fixed_requests']} / {ev['broken_requests']} requests)."
                    ),
                }
            )
    return keywords


@transaction.atomic
def proposal_draft(*, actor, job: Job, name: str = "", force: bool = False) -> ClassifierVersion:
    """Make a proposal's draft: the base's keywords less the removals plus the additions
    (each with its evidence as rationale), and the proposed thresholds; or, for a scorer
    proposal, the scorer with the pinned keywords and the thresholds. A proposal that does
    not beat its base out of sample makes a draft only when ``force``d (and says so)."""
    job = Job.objects.select_for_update().get(pk=job.pk)
    if job.kind != JobKind.PROPOSAL or job.status != JobStatus.SUCCEEDED:
        raise Conflict("Only a finished proposal can become a draft.")
    if job.draft is not None:
        raise Conflict(f"This proposal already made the draft {job.draft.name}.")
    result = job.result
    if not result.get("changes"):
        raise Conflict("The proposal changes nothing; there is no draft to make.")
    if not result.get("beats_base") and not force:
        raise Conflict(
            "The proposal does not beat its base out of sample; make the draft anyway only "
            "on purpose (force)."
        )
    name = (name or result.get("name") or "").strip()
    if not name:
        raise ValidationError({"name": ["Name the new version."]})
    try:
        base = ClassifierVersion.objects.select_related("keyword_set").get(
            name=result["base_version"]
        )
    except ClassifierVersion.DoesNotExist:
        raise Conflict(f"The base version {result['base_version']} no longer exists.") from None
    if base.config_sha256 != result["base_sha256"]:
        raise Conflict(f"{base.name} changed since the proposal was made; propose again.")
    estimate = result["estimate"]["misroute"]
    provenance = (
        f"by proposal {job.pk} (labels {result['label_snapshot'][:12]}, seed {result['seed']}): "
        f"cross-validated misroute {estimate['value']:.1%} "
        f"[{estimate['low']:.1%}, {estimate['high']:.1%}]. {result['verdict']}"
    )
    if result.get("kind") == "scorer":
        keywords = [
            {"text": k, "rationale": f"Pinned in proposal {job.pk}: strong whatever the score."}
            for k in result["rule"]["keywords"]
        ]
        model = result["model"]
        notes = (
            f"Scorer ({model['features']} weighted substrings, cap {model['cap']}, "
            f"C {model['strength']}) proposed from {base.name} {provenance}"
        )
    else:
        keywords = _proposed_keywords(job, base, result["changes"])
        notes = f"Proposed from {base.name} {provenance}"
    version = routing_services.version_create_draft(
        actor=actor,
        name=name,
        keywords=keywords,
        token_threshold=result["rule"]["token_threshold"],
        turn_threshold=result["rule"]["turn_threshold"],
        byte_threshold=base.byte_threshold,
        scorer=result.get("scorer"),
        parent=base,
        notes=notes,
    )
    job.draft = version
    job.save(update_fields=["draft"])
    audit_record(
        actor=actor,
        action="proposal.draft",
        obj=version,
        after={
            "proposal": job.pk,
            "kind": result.get("kind", "keywords"),
            "base": base.name,
            "changes": result["changes"],
            "label_snapshot": result["label_snapshot"],
            "seed": result["seed"],
            "estimate": result["estimate"]["misroute"],
            "beats_base": result["beats_base"],
            "forced": bool(force and not result["beats_base"]),
        },
    )
    return version


@transaction.atomic
def sweep_apply(
    *,
    actor,
    job: Job,
    version: ClassifierVersion,
    token_threshold: int | None = None,
    turn_threshold: int | None = None,
    cut: float | None = None,
) -> ClassifierVersion:
    """Put one of a sweep's points into a draft: its thresholds, or (a scorer version's
    sweep) its cut, into a draft with that same scorer."""
    if job.kind != JobKind.SWEEP or job.status != JobStatus.SUCCEEDED:
        raise Conflict("Only a finished sweep's points can be applied.")
    by_cut = job.result.get("kind") == "cut"
    wanted = cut if by_cut else (token_threshold, turn_threshold)
    points = [*job.result.get("points", []), *job.result.get("table", [])]
    point = next((p for p in points if _sweep_key(p, by_cut) == wanted), None)
    if point is None:
        field = "cut" if by_cut else "token_threshold"
        raise ValidationError({field: [f"{wanted} is not a point of sweep {job.pk}."]})
    if not version.is_draft:
        raise Conflict(
            f"{version.name} is {version.status}; a sweep's point goes into drafts only."
        )
    if by_cut:
        swept = ClassifierVersion.objects.get(name=job.result["version"]).scorer
        if swept is None:  # the swept draft's scorer was taken off since the sweep
            raise Conflict(f"{job.result['version']} has no scorer any more: sweep it again.")
        if version.scorer is None or _weights(version.scorer) != _weights(swept):
            raise Conflict(
                f"{version.name}'s scorer is not {job.result['version']}'s: a cut only means "
                "the same on the same weights (copy the swept version first)."
            )
        changes: dict[str, Any] = {"scorer": {**version.scorer, "threshold": cut}}
    else:
        changes = {"token_threshold": token_threshold, "turn_threshold": turn_threshold}
    version = routing_services.version_update_draft(actor=actor, version=version, **changes)
    audit_record(
        actor=actor,
        action="sweep.apply",
        obj=version,
        after={"sweep": job.pk, "point": point, "labels": job.result.get("labels")},
    )
    return version


def _sweep_key(point: dict, by_cut: bool):
    return point["cut"] if by_cut else (point["token_threshold"], point["turn_threshold"])


def _weights(scorer: dict) -> tuple:
    return (scorer["bias"], tuple(map(tuple, scorer["features"])))
