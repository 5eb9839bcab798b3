"""Rollout pages: everyone with a role reads, operators act. Thin: services do the work."""

from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts.decorators import role_required
from accounts.roles import OPERATOR, REVIEWER
from cascade_admin.errors import Conflict
from cascade_admin.ui import error_text

from . import health as rollout_health
from . import publish, selectors, services
from .forms import ActionForm, GateForm, MisrouteCheckForm, PublishForm, StartForm
from .models import Publication, PublicationState, Rollout
from .trend import VIEW_BOX, gate_trends

ACTIONS: dict[str, Callable[..., Rollout]] = {
    "advance": services.rollout_advance,
    "pause": services.rollout_pause,
    "resume": services.rollout_resume,
    "rollback": services.rollout_rollback,
    "adopt": services.rollout_adopt_live,
    "restore": services.rollout_restore,
}


@require_GET
@role_required(REVIEWER)
def rollout_list(request):
    return render(
        request,
        "rollouts/rollout_list.html",
        {
            "routes": selectors.routes_with_serving(),
            "rollouts": selectors.rollout_list()[:50],
            "publications": selectors.publication_list()[:20],
            "start_form": StartForm(),
            "publish_form": PublishForm(),
        },
    )


def _detail_context(rollout: Rollout) -> dict:
    # Every view compares the route with the record: a change made elsewhere shows at once.
    services.check_drift(rollout)
    gates = list(rollout.gates.all())
    history = selectors.gate_history(rollout)
    trends = gate_trends(gates, history)
    for gate in gates:
        gate.trend = trends.get(gate.pk)
    return {
        "rollout": rollout,
        "gates": gates,
        "transitions": list(rollout.transitions.all()),
        "history": history,
        "history_points": selectors.HISTORY_POINTS,
        "trend_box": VIEW_BOX,
        "daily_checks": selectors.daily_checks(rollout),
        "recorded": services.recorded_weights(rollout),
        "pending": selectors.pending_intent(rollout),
        "evaluation": selectors.evaluation_age(rollout, timezone.now()),
    }


@require_GET
@role_required(REVIEWER)
def rollout_detail(request, pk):
    rollout = get_object_or_404(selectors.rollout_detail(), pk=pk)
    if request.headers.get("HX-Request"):
        return render(request, "rollouts/_rollout_live.html", _detail_context(rollout))
    return render(request, "rollouts/rollout_detail.html", _detail_context(rollout))


@require_POST
@role_required(OPERATOR)
def rollout_start(request):
    form = StartForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, " ".join(f"{f}: {' '.join(map(str, e))}" for f, e in form.errors.items())
        )
        return redirect("rollouts:list")
    try:
        rollout = services.rollout_start(
            actor=request.user,
            route=form.cleaned_data["route"],
            version=form.cleaned_data["version"],
            steps=form.cleaned_data["steps"],
            window_seconds=form.window_seconds,
            reason=form.cleaned_data["reason"],
        )
    except ValidationError as e:
        messages.error(request, error_text(e))
        return redirect("rollouts:list")
    except Conflict as e:
        messages.error(request, str(e))
        return redirect("rollouts:list")
    messages.success(request, f"Canary of {rollout.version} started at {rollout.canary_weight}%.")
    return redirect("rollouts:detail", pk=rollout.pk)


@require_POST
@role_required(OPERATOR)
def rollout_action(request, pk, action):
    rollout = get_object_or_404(Rollout, pk=pk)
    form = ActionForm(request.POST)
    form.is_valid()
    data = form.cleaned_data
    kwargs = {"actor": request.user, "rollout": rollout, "reason": data.get("reason") or ""}
    if action == "advance" and data.get("expected_stage") is not None:
        kwargs["expected_stage"] = data["expected_stage"]
    if action == "rollback":
        kwargs["republish"] = bool(data.get("republish"))
    if action == "evaluate":
        services.rollout_evaluate(rollout_id=rollout.pk)
        messages.success(request, "Gates evaluated.")
        return redirect("rollouts:detail", pk=pk)
    if action == "daily-check":
        check = services.rollout_daily_check(rollout_id=rollout.pk)
        if check is None:
            messages.error(request, f"Rollout #{pk} is {rollout.state}: nothing to check.")
        else:
            messages.success(request, f"Misroute check of {check.day}: {check.result}.")
        return redirect("rollouts:detail", pk=pk)
    if action == "misroute-check":
        return _misroute_settings(request, rollout)
    if action == "gates":
        return _gate_settings(request, rollout)
    if action not in ACTIONS:
        messages.error(request, f"Unknown action {action!r}.")
        return redirect("rollouts:detail", pk=pk)
    try:
        rollout = ACTIONS[action](**kwargs)
    except Conflict as e:
        messages.error(request, str(e))
    else:
        messages.success(
            request,
            f"{action.capitalize()}: canary {rollout.canary_weight}% / "
            f"stable {rollout.stable_weight}%.",
        )
    return redirect("rollouts:detail", pk=pk)


def _settings(request, rollout: Rollout, form_class, change) -> object:
    """Validate a settings form, call ``change(cleaned_data)``; messages carry the outcome."""
    form = form_class(request.POST)
    if not form.is_valid():
        messages.error(
            request, " ".join(f"{f}: {' '.join(map(str, e))}" for f, e in form.errors.items())
        )
        return redirect("rollouts:detail", pk=rollout.pk)
    try:
        messages.success(request, change(form.cleaned_data))
    except ValidationError as e:
        messages.error(request, error_text(e))
    except Conflict as e:
        messages.error(request, str(e))
    return redirect("rollouts:detail", pk=rollout.pk)


def _gate_settings(request, rollout: Rollout):
    def change(data) -> str:
        services.rollout_set_gates(actor=request.user, rollout=rollout, gate_specs=[data])
        return f"Gate {data['name']} saved."

    return _settings(request, rollout, GateForm, change)


def _misroute_settings(request, rollout: Rollout):
    def change(data) -> str:
        changed = services.rollout_set_misroute_check(
            actor=request.user,
            rollout=rollout,
            threshold=data["threshold_percent"] / 100,
            min_labels=data["min_labels"],
        )
        return (
            f"Daily misroute check: roll back above {changed.misroute_threshold:.1%} "
            f"with at least {changed.misroute_min_labels} labels."
        )

    return _settings(request, rollout, MisrouteCheckForm, change)


@require_GET
@role_required(REVIEWER)
def publication_detail(request, pk):
    publication = get_object_or_404(
        Publication.objects.select_related("version", "slot", "created_by"), pk=pk
    )
    context = {
        "publication": publication,
        "pods": selectors.publication_pods(publication),
        "live": publication.state in (PublicationState.PENDING, PublicationState.RUNNING),
    }
    if request.headers.get("HX-Request"):
        return render(request, "rollouts/_publication_live.html", context)
    return render(request, "rollouts/publication_detail.html", context)


@require_POST
@role_required(OPERATOR)
def publication_start(request):
    form = PublishForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, " ".join(f"{f}: {' '.join(map(str, e))}" for f, e in form.errors.items())
        )
        return redirect("rollouts:list")
    try:
        publication = publish.publication_start(
            actor=request.user, version=form.cleaned_data["version"], slot=form.cleaned_data["slot"]
        )
    except Conflict as e:
        messages.error(request, str(e))
        return redirect("rollouts:list")
    messages.success(request, f"Publishing {publication.version} to {publication.slot}.")
    return redirect("rollouts:publication", pk=publication.pk)


@require_POST
@role_required(OPERATOR)
def publication_retry(request, pk):
    publication = get_object_or_404(Publication, pk=pk)
    try:
        publish.publication_retry(actor=request.user, publication=publication)
    except Conflict as e:
        messages.error(request, str(e))
    else:
        messages.success(request, "Publishing again to every ready pod.")
    return redirect("rollouts:publication", pk=pk)


@require_GET
@never_cache
@login_not_required
def health(request):
    """For monitoring: the beat's last tick and the oldest evaluation of a watched rollout;
    503 when automation stalled (also notified once). Ages only: nothing to log in for."""
    report = rollout_health.notify_stall(timezone.now())
    return JsonResponse(report.as_dict(), status=503 if report.stalled else 200)
