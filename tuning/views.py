"""Pages: the SLO board, replay / keyword candidates / sweep jobs, and costs."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.views.decorators.http import require_GET, require_POST

from accounts.decorators import role_required
from accounts.roles import OPERATOR, REVIEWER
from cascade_admin.errors import Conflict
from cascade_admin.ui import error_text
from routing.models import ClassifierVersion, VersionStatus

from . import costs, health, jobs, selectors, services, slo
from . import proposals as proposal_defaults
from .metrics import SLICE_KINDS
from .models import Job, JobKind, JobStatus, MetricReport, SloTarget


def _day(value: str | None, field: str) -> datetime:
    """A date input (YYYY-MM-DD) as midnight UTC."""
    parsed = parse_date(value or "")
    if parsed is None:
        raise ValidationError({field: ["Give a date (YYYY-MM-DD)."]})
    return datetime.combine(parsed, time.min, tzinfo=UTC)


def _period_from(request) -> tuple[datetime, datetime]:
    """since / until dates (until inclusive: the period ends at the next midnight)."""
    start = _day(request.POST.get("since"), "since")
    end = _day(request.POST.get("until"), "until") + timedelta(days=1)
    if end <= start:
        raise ValidationError({"until": ["Must not be before since."]})
    return start, end


def _default_dates() -> dict:
    today = timezone.now().date()
    return {"since": today - timedelta(days=7), "until": today - timedelta(days=1)}


@require_GET
@role_required(REVIEWER)
def board(request):
    reports = list(selectors.report_list()[:200])
    report = None
    if request.GET.get("report"):
        if not request.GET["report"].isdigit():
            raise Http404("No such report.")
        report = get_object_or_404(MetricReport, pk=request.GET["report"])
    else:
        report = next((r for r in reports if r.status == JobStatus.SUCCEEDED), None)
    slice_kind = request.GET.get("slice", "language")
    if slice_kind not in SLICE_KINDS:
        slice_kind = "language"
    verdicts, notes, history = [], [], []
    stale = False
    if report is not None and report.status == JobStatus.SUCCEEDED:
        stale = selectors.labels_changed_since(report)
        if stale:
            # Labels in its window changed: recompute in the background (in the embedded
            # run the task runs right here, so this view already shows the new figures).
            with transaction.atomic():
                services.report_request(
                    actor=None,
                    version=report.version,
                    period_start=report.period_start,
                    period_end=report.period_end,
                )
            report.refresh_from_db()
            stale = report.status != JobStatus.SUCCEEDED
    if report is not None and report.status == JobStatus.SUCCEEDED:
        verdicts = slo.evaluate(report.result, selectors.slo_targets())
        notes = slo.warnings(verdicts)
        history = [
            {
                "at": r.period_end.isoformat(),
                "misroute": (r.result.get("labels", {}).get("misroute") or {}).get("value"),
                "slm_usage": (r.result.get("traffic", {}).get("slm_usage") or {}).get("value"),
                "label": f"{r.period_start:%m-%d}–{r.period_end:%m-%d}",
            }
            for r in sorted(reports, key=lambda r: r.period_end)
            if r.version == report.version and r.status == JobStatus.SUCCEEDED
        ]
    return render(
        request,
        "tuning/board.html",
        {
            "reports": reports,
            "report": report,
            "verdicts": verdicts,
            "notes": notes,
            "slice_kind": slice_kind,
            "slice_kinds": SLICE_KINDS,
            "slices": (report.result.get("slices", {}).get(slice_kind, []) if report else []),
            "history": history,
            "targets": selectors.slo_targets(),
            "versions": sorted(
                set(selectors.versions_with_traffic()) | {r.version for r in reports}
            ),
            "dates": _default_dates(),
            "stale": stale,
        },
    )


@require_POST
@role_required(OPERATOR)
def report_create(request):
    try:
        start, end = _period_from(request)
        report = services.report_request(
            actor=request.user,
            version=request.POST.get("version", "").strip(),
            period_start=start,
            period_end=end,
        )
    except ValidationError as e:
        messages.error(request, error_text(e))
        return redirect("tuning:board")
    messages.success(request, f"Report {report} queued.")
    return redirect(f"{_url('tuning:board')}?report={report.pk}")


@require_POST
@role_required(OPERATOR)
def report_recompute(request, report_id):
    report = get_object_or_404(MetricReport, pk=report_id)
    services.report_request(
        actor=request.user,
        version=report.version,
        period_start=report.period_start,
        period_end=report.period_end,
    )
    messages.success(request, f"Report {report} queued again.")
    return redirect(f"{_url('tuning:board')}?report={report.pk}")


def _float_or_none(raw: str | None) -> float | None:
    raw = (raw or "").strip()
    return float(raw) if raw else None


@require_POST
@role_required(OPERATOR)
def slo_update(request, target_id):
    target = get_object_or_404(SloTarget, pk=target_id)
    try:
        services.slo_target_update(
            actor=request.user,
            target=target,
            low=_float_or_none(request.POST.get("low")),
            high=_float_or_none(request.POST.get("high")),
            min_samples=int(request.POST.get("min_samples") or target.min_samples),
        )
    except (ValueError, ValidationError) as e:
        messages.error(request, error_text(e))
    else:
        messages.success(request, f"Target for {target.get_metric_display()} saved.")
    return redirect("tuning:board")


def _url(name: str, *args) -> str:
    from django.urls import reverse

    return reverse(name, args=args)


JOB_PAGES: dict[str, tuple[str, str]] = {
    JobKind.REPLAY: ("tuning/replay.html", "What-if replay"),
    JobKind.CANDIDATES: ("tuning/candidates.html", "Keyword candidates"),
    JobKind.SWEEP: ("tuning/sweep.html", "Threshold sweep"),
    JobKind.PROPOSAL: ("tuning/proposal.html", "Proposal"),
}


def _job_page(request, kind: str):
    if request.method == "POST":
        if not request.user or not _is_operator(request.user):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied("Starting a job needs the operator role.")
        try:
            start, end = _period_from(request)
            params = {
                "version": request.POST.get("version", ""),
                "since": start.isoformat(),
                "until": end.isoformat(),
            }
            if kind == JobKind.REPLAY:
                params["baseline"] = request.POST.get("baseline", "")
            if kind in (JobKind.REPLAY, JobKind.SWEEP):
                params["labels"] = request.POST.getlist("labels") or (
                    ["headline"] if kind == JobKind.REPLAY else list(selectors.SOURCES)
                )
                if set(params["labels"]) - set(selectors.SOURCES):
                    raise ValidationError({"labels": ["Unknown label source."]})
            if kind == JobKind.SWEEP:
                params["target"] = _target_band(request.POST)
            jobs.version_named(params["version"])
            if params.get("baseline"):
                jobs.version_named(params["baseline"], "baseline")
            job = services.job_start(actor=request.user, kind=kind, params=params)
        except ValidationError as e:
            # Said on the form, with what was typed kept: nothing is queued.
            messages.error(request, error_text(e))
            return _job_form(request, kind, values=request.POST, status=400)
        return redirect("tuning:job", job_id=job.pk)
    return _job_form(request, kind)


def _target_band(post) -> list[float]:
    band = []
    for field, default in (("target_low", 0.6), ("target_high", 0.7)):
        raw = (post.get(field) or "").strip()
        try:
            value = float(raw) if raw else default
        except ValueError:
            raise ValidationError(
                {field: [f"Give a share between 0 and 1, not {raw!r}."]}
            ) from None
        if not 0 <= value <= 1:
            raise ValidationError({field: ["Give a share between 0 and 1."]})
        band.append(value)
    if band[0] > band[1]:
        raise ValidationError({"target_high": ["Must not be below the lower end."]})
    return band


def _job_form(request, kind: str, *, values=None, status: int = 200):
    template, title = JOB_PAGES[kind]
    return render(
        request,
        "tuning/job_form.html",
        {
            "kind": kind,
            "title": title,
            "jobs": Job.objects.filter(kind=kind).select_related("created_by")[:20],
            "sources": selectors.SOURCES,
            "versions": ClassifierVersion.objects.order_by("-created_at").only("name", "status"),
            "dates": _default_dates(),
            "values": values or {},
        },
        status=status,
    )


def _is_operator(user) -> bool:
    from accounts.roles import has_role

    return has_role(user, OPERATOR)


@role_required(REVIEWER)
def replay(request):
    return _job_page(request, JobKind.REPLAY)


@role_required(REVIEWER)
def candidates(request):
    return _job_page(request, JobKind.CANDIDATES)


@role_required(REVIEWER)
def sweep(request):
    return _job_page(request, JobKind.SWEEP)


@role_required(REVIEWER)
def proposals(request):
    """The proposal form (operators) and the recent proposals."""
    if request.method == "POST":
        if not _is_operator(request.user):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied("Proposing needs the operator role.")
        try:
            params = _proposal_params(request.POST)
            job = services.job_start(actor=request.user, kind=JobKind.PROPOSAL, params=params)
        except (ValueError, ValidationError) as e:
            messages.error(request, error_text(e))
            return redirect("tuning:proposals")
        return redirect("tuning:job", job_id=job.pk)
    return render(
        request,
        "tuning/proposal_form.html",
        {
            "jobs": Job.objects.filter(kind=JobKind.PROPOSAL).select_related("created_by", "draft")[
                :20
            ],
            "versions": ClassifierVersion.objects.order_by("-created_at").only("name", "status"),
            "band": proposal_defaults.default_band(),
            "sources": selectors.SOURCES,
        },
    )


def _proposal_params(post) -> dict:
    """The form's fields as proposal params, checked before anything is queued."""

    def day(field: str, extra: timedelta = timedelta()) -> str:
        return (_day(post[field], field) + extra).isoformat() if post.get(field) else ""

    params = {
        "kind": post.get("kind") or "keywords",
        "base": post.get("base", ""),
        "name": post.get("name", "").strip(),
        "labels": post.getlist("labels"),
        "fn_weight": post.get("fn_weight") or 1,
        "max_changes": post.get("max_changes") or 20,
        "folds": post.get("folds") or 10,
        "seed": post.get("seed") or 0,
        "holdout": post.get("holdout") or 0,
        "pinned": [p.strip() for p in post.get("pinned", "").split(",") if p.strip()],
        "since": day("since"),
        "until": day("until", timedelta(days=1)),
    }
    if not params["labels"]:
        raise ValidationError({"labels": ["Choose at least one label source."]})
    low, high = post.get("slm_low"), post.get("slm_high")
    if low or high:
        params["slm_band"] = [float(low or 0), float(high or 1)]
    proposal_defaults.check_params(params)
    return params


@require_POST
@role_required(OPERATOR)
def proposal_draft(request, job_id):
    job = get_object_or_404(Job, pk=job_id, kind=JobKind.PROPOSAL)
    try:
        version = services.proposal_draft(
            actor=request.user,
            job=job,
            name=request.POST.get("name", "").strip(),
            force=request.POST.get("force") == "on",
        )
    except (Conflict, ValidationError) as e:
        messages.error(request, error_text(e))
        return redirect("tuning:job", job_id=job.pk)
    messages.success(request, f"Draft {version.name} created from proposal #{job.pk}.")
    return redirect("routing:version-detail", version.name)


@require_POST
@role_required(OPERATOR)
def sweep_apply(request, job_id):
    job = get_object_or_404(Job, pk=job_id, kind=JobKind.SWEEP)
    version = get_object_or_404(ClassifierVersion, name=request.POST.get("draft", ""))
    try:
        if "cut" in request.POST:
            cut = float(request.POST["cut"])
            services.sweep_apply(actor=request.user, job=job, version=version, cut=cut)
        else:
            services.sweep_apply(
                actor=request.user,
                job=job,
                version=version,
                token_threshold=int(request.POST.get("token_threshold", "")),
                turn_threshold=int(request.POST.get("turn_threshold", "")),
            )
    except ValueError:
        messages.error(request, "The point's thresholds (or cut) must be numbers.")
    except (Conflict, ValidationError) as e:
        messages.error(request, error_text(e))
    else:
        messages.success(request, f"Point of sweep #{job.pk} applied to {version.name}.")
        return redirect("routing:version-detail", version.name)
    return redirect("tuning:job", job_id=job.pk)


@require_GET
@role_required(REVIEWER)
def keyword_health(request, name):
    """The version page's keyword-health table (loaded after the page: it reads every label)."""
    version = get_object_or_404(ClassifierVersion, name=name)
    return render(
        request, "tuning/_keyword_health.html", {"health": health.keyword_health(version)}
    )


@require_GET
@role_required(REVIEWER)
def job_detail(request, job_id):
    job = get_object_or_404(Job.objects.select_related("created_by", "draft"), pk=job_id)
    template, title = JOB_PAGES[job.kind]
    drafts = []
    if job.kind in (JobKind.CANDIDATES, JobKind.SWEEP):
        drafts = list(
            ClassifierVersion.objects.filter(status=VersionStatus.DRAFT).values_list(
                "name", flat=True
            )
        )
    return render(
        request,
        template,
        {
            "job": job,
            "title": title,
            "result": job.result,
            "finished": job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED),
            "drafts": drafts,
            "rows": _proposal_rows(job.result) if job.kind == JobKind.PROPOSAL else [],
        },
    )


def _proposal_rows(result: dict) -> list[tuple[str, dict]]:
    if not result.get("estimate"):
        return []
    return [
        ("Proposal, out of sample", result["estimate"]),
        (f"Base {result.get('base_version', '')}", result["base"]),
        ("Proposal, in sample", result["in_sample"]),
    ]


@require_POST
@role_required(OPERATOR)
def candidate_adopt(request, job_id):
    job = get_object_or_404(Job, pk=job_id, kind=JobKind.CANDIDATES, status=JobStatus.SUCCEEDED)
    term = request.POST.get("term", "")
    candidate = next((c for c in job.result.get("candidates", []) if c["term"] == term), None)
    if candidate is None:
        messages.error(request, "That term is not among this job's candidates.")
        return redirect("tuning:job", job_id=job.pk)
    version = get_object_or_404(ClassifierVersion, name=request.POST.get("draft", ""))
    change = candidate.get("slm_usage_change")
    evidence = {
        **candidate,
        "job": job.pk,
        "period": f"{job.result['since'][:10]} to {job.result['until'][:10]}",
        "slm_change_text": "n/a" if change is None else f"{change * 100:+.1f} points",
    }
    try:
        services.keyword_adopt(actor=request.user, version=version, text=term, evidence=evidence)
    except (Conflict, ValidationError) as e:
        messages.error(request, error_text(e))
    else:
        messages.success(request, f"“{term}” added to {version.name}.")
    return redirect("tuning:job", job_id=job.pk)


@require_GET
@role_required(REVIEWER)
def cost_page(request):
    settings = selectors.cost_settings()
    return render(
        request,
        "tuning/costs.html",
        {"settings": settings, "summary": costs.summary(timezone.now(), settings)},
    )


@require_POST
@role_required(OPERATOR)
def cost_settings_update(request):
    changes = {}
    try:
        for field in services.COST_FIELDS:
            raw = request.POST.get(field)
            if raw is None or raw == "":
                continue
            changes[field] = raw.strip() if field.endswith("_job") else float(raw)
        services.cost_settings_update(actor=request.user, **changes)
    except (ValueError, ValidationError) as e:
        messages.error(request, error_text(e))
    else:
        messages.success(request, "Cost settings saved.")
    return redirect("tuning:costs")


@require_GET
@role_required(REVIEWER)
def prometheus_rules(request):
    body = costs.prometheus_rules(selectors.cost_settings())
    response = HttpResponse(body, content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="cascade-cost-rules.yaml"'
    return response
