"""Tuning API: reports and SLO verdicts, jobs (replay, keyword candidates, sweep), costs.

Long work returns 202 with a job (or report) id; poll it for status and progress.
"""

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.throttles import JobStartThrottle
from routing.models import ClassifierVersion

from .. import costs, proposals, selectors, services, slo
from ..models import Job, JobKind, JobStatus, MetricReport, SloTarget
from . import serializers as s


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class MetricReportViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    queryset = MetricReport.objects.select_related("requested_by").order_by("-period_end", "-id")
    filterset_fields = ["version", "status"]

    def get_serializer_class(self):
        return s.MetricReportListSerializer if self.action == "list" else s.MetricReportSerializer

    @extend_schema(request=s.ReportRequestSerializer, responses={202: s.MetricReportSerializer})
    def create(self, request):
        """Queue (re)computing a version's report for a period; poll it until it succeeded."""
        data = _valid(s.ReportRequestSerializer, request.data)
        report = services.report_request(
            actor=request.user,
            version=data["version"],
            period_start=data["since"],
            period_end=data["until"],
        )
        return Response(s.MetricReportSerializer(report).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=s.SloBoardSerializer)
    @action(detail=True, methods=["get"])
    def slo(self, request, pk=None):
        """The report judged against the SLO targets (pass / fail / not enough data)."""
        report = self.get_object()
        verdicts = slo.evaluate(report.result, selectors.slo_targets())
        return Response(
            {
                "report": report.pk,
                "verdicts": [v.as_dict() for v in verdicts],
                "warnings": slo.warnings(verdicts),
            }
        )


class SloTargetViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    queryset = SloTarget.objects.all()
    serializer_class = s.SloTargetSerializer
    pagination_class = None
    http_method_names = ["get", "patch", "head", "options"]

    def list(self, request, *args, **kwargs):
        return Response(s.SloTargetSerializer(selectors.slo_targets(), many=True).data)

    def perform_update(self, serializer):
        target, data = serializer.instance, serializer.validated_data
        serializer.instance = services.slo_target_update(
            actor=self.request.user,
            target=target,
            low=data.get("low", target.low),
            high=data.get("high", target.high),
            low_inclusive=data.get("low_inclusive"),
            high_inclusive=data.get("high_inclusive"),
            min_samples=data.get("min_samples"),
        )


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Replay, keyword-candidate and sweep jobs. POST to the kind's endpoint to start one."""

    queryset = Job.objects.select_related("created_by").order_by("-created_at", "-id")
    filterset_fields = ["kind", "status"]

    def get_serializer_class(self):
        return s.JobListSerializer if self.action == "list" else s.JobSerializer

    def _start(self, request, kind, serializer_class, extra=None):
        data = _valid(serializer_class, request.data)
        params = {
            "version": data["version"],
            "since": data["since"].isoformat(),
            "until": data["until"].isoformat(),
            **(extra(data) if extra else {}),
        }
        job = services.job_start(actor=request.user, kind=kind, params=params)
        return Response(s.JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=s.ReplayRequestSerializer, responses={202: s.JobSerializer})
    @action(detail=False, methods=["post"], throttle_classes=[JobStartThrottle])
    def replay(self, request):
        """What-if replay of a version (drafts too) over labeled items and traffic."""
        return self._start(
            request,
            JobKind.REPLAY,
            s.ReplayRequestSerializer,
            lambda d: {
                "baseline": d.get("baseline", ""),
                "labels": d.get("labels") or ["headline"],
            },
        )

    @extend_schema(request=s.CandidatesRequestSerializer, responses={202: s.JobSerializer})
    @action(detail=False, methods=["post"], throttle_classes=[JobStartThrottle])
    def candidates(self, request):
        """Mine keyword candidates from the version's false negatives."""
        return self._start(
            request,
            JobKind.CANDIDATES,
            s.CandidatesRequestSerializer,
            lambda d: {"limit": d["limit"]},
        )

    @extend_schema(request=s.SweepRequestSerializer, responses={202: s.JobSerializer})
    @action(detail=False, methods=["post"], throttle_classes=[JobStartThrottle])
    def sweep(self, request):
        """Sweep length and turn thresholds; calibrate to a target SLM share."""
        return self._start(
            request,
            JobKind.SWEEP,
            s.SweepRequestSerializer,
            lambda d: {
                "target": [d["target_low"], d["target_high"]],
                "labels": d.get("labels") or list(selectors.SOURCES),
            },
        )

    @extend_schema(request=s.SweepApplySerializer, responses={200: s.DraftResponseSerializer})
    @action(detail=True, methods=["post"])
    def apply(self, request, pk=None):
        """Put one of a sweep's points into a draft: its length and turn thresholds, or for a
        scorer version's sweep its cut (into a draft with the same scorer)."""
        job = get_object_or_404(Job, pk=pk, kind=JobKind.SWEEP)
        data = _valid(s.SweepApplySerializer, request.data)
        version = services.sweep_apply(
            actor=request.user,
            job=job,
            version=get_object_or_404(ClassifierVersion, name=data.pop("draft")),
            **data,
        )
        return Response({"version": version.name, "proposal": None})

    @extend_schema(request=s.AdoptSerializer, responses={201: None})
    @action(detail=True, methods=["post"])
    def adopt(self, request, pk=None):
        """Add one of a candidates job's terms to a draft, with its evidence as rationale."""
        job = get_object_or_404(Job, pk=pk, kind=JobKind.CANDIDATES, status=JobStatus.SUCCEEDED)
        data = _valid(s.AdoptSerializer, request.data)
        candidate = next(
            (c for c in job.result.get("candidates", []) if c["term"] == data["term"]), None
        )
        if candidate is None:
            return Response(
                {"term": ["Not among this job's candidates."]}, status=status.HTTP_400_BAD_REQUEST
            )
        version = get_object_or_404(ClassifierVersion, name=data["draft"])
        change = candidate.get("slm_usage_change")
        keyword = services.keyword_adopt(
            actor=request.user,
            version=version,
            text=data["term"],
            evidence={
                **candidate,
                "job": job.pk,
                "period": f"{job.result['since'][:10]} to {job.result['until'][:10]}",
                "slm_change_text": "n/a" if change is None else f"{change * 100:+.1f} points",
            },
        )
        return Response(
            {"version": version.name, "keyword": keyword.text, "rationale": keyword.rationale},
            status=status.HTTP_201_CREATED,
        )


class CostSettingsView(APIView):
    @extend_schema(responses=s.CostSettingsSerializer)
    def get(self, request):
        return Response(s.CostSettingsSerializer(selectors.cost_settings()).data)

    @extend_schema(request=s.CostSettingsSerializer, responses=s.CostSettingsSerializer)
    def patch(self, request):
        serializer = s.CostSettingsSerializer(
            selectors.cost_settings(), data=request.data, partial=True
        )
        serializer.is_valid(raise_exception=True)
        settings = services.cost_settings_update(actor=request.user, **serializer.validated_data)
        return Response(s.CostSettingsSerializer(settings).data)


class CostSummaryView(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request):
        """Today, month to date, budgets with warnings, week-over-week drift, cost per day."""
        return Response(costs.summary(timezone.now(), selectors.cost_settings()))


# A Prometheus rule file, as YAML: its groups of recording and alerting rules.
RULE_FILE = {
    "type": "object",
    "required": ["groups"],
    "properties": {
        "groups": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "rules"],
                "properties": {
                    "name": {"type": "string"},
                    "interval": {"type": "string"},
                    "rules": {"type": "array", "items": {"type": "object"}},
                },
            },
        }
    },
}


class PrometheusRulesView(APIView):
    @extend_schema(responses={(200, "application/yaml"): RULE_FILE})
    def get(self, request):
        """Prometheus recording and alerting rules for cost, budget and drift."""
        body = costs.prometheus_rules(selectors.cost_settings())
        return HttpResponse(body, content_type="application/yaml; charset=utf-8")


class ProposalViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Next-version proposals: POST to start one (202, poll it), then make its draft."""

    queryset = (
        Job.objects.filter(kind=JobKind.PROPOSAL)
        .select_related("created_by", "draft")
        .order_by("-created_at", "-id")
    )
    filterset_fields = ["status"]

    def get_serializer_class(self):
        return s.JobListSerializer if self.action == "list" else s.JobSerializer

    def get_throttles(self):
        return [JobStartThrottle()] if self.action == "create" else super().get_throttles()

    @extend_schema(request=s.ProposalRequestSerializer, responses={202: s.JobSerializer})
    def create(self, request):
        """Search additions, removals and thresholds from every labeled request, with
        cross-validated estimates; the job's result is the proposal."""
        params = proposal_params(_valid(s.ProposalRequestSerializer, request.data))
        job = services.job_start(actor=request.user, kind=JobKind.PROPOSAL, params=params)
        return Response(s.JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=s.DraftRequestSerializer, responses={201: s.DraftResponseSerializer})
    @action(detail=True, methods=["post"])
    def draft(self, request, pk=None):
        """Create the proposal's draft version (once; a name in use is refused)."""
        data = _valid(s.DraftRequestSerializer, request.data)
        version = services.proposal_draft(
            actor=request.user, job=self.get_object(), name=data["name"], force=data["force"]
        )
        return Response(
            {"version": version.name, "proposal": int(pk)}, status=status.HTTP_201_CREATED
        )


def proposal_params(data: dict) -> dict:
    """JSON params of a proposal job, checked as the job will check them (400 up front)."""
    params = {
        "kind": data["kind"],
        "base": data["base"],
        "name": data.get("name", ""),
        "fn_weight": data["fn_weight"],
        "pinned": data.get("pinned", []),
        "max_changes": data["max_changes"],
        "folds": data["folds"],
        "seed": data["seed"],
        "holdout": data["holdout"],
        "since": data["since"].isoformat() if data.get("since") else "",
        "until": data["until"].isoformat() if data.get("until") else "",
    }
    if "slm_low" in data:
        params["slm_band"] = [data["slm_low"], data["slm_high"]]
    if data.get("labels"):
        params["labels"] = data["labels"]
    proposals.check_params(params)
    return params
