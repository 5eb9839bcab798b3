"""Every change of a rollout goes through here: start, advance, pause, resume, rollback, the
automatic evaluation that advances, holds or rolls back, and the daily misroute check.

Each service locks the rollout row (``select_for_update``) and re-checks its state inside the
lock, so two clicks or two beat ticks never both advance a stage. Weights are written to the
HTTPRoute (guarded JSON patch, see ``k8s_adapter.set_weights``) while the row is locked; if
the cluster refuses, the transaction rolls back and nothing is recorded as done. Every
transition is stored as a ``RolloutTransition`` and in the audit log.

When the cluster refuses an automatic action for good (a permanent ``KubeError``: the route
was reordered or edited, 403, 404, 422), the rollout moves to ``failed`` and automation stops
touching it; a retryable refusal only holds and is tried again. A failed rollout whose canary
still has traffic keeps its route (no other rollout may start there) until an operator rolls
it back, which stays allowed from ``failed``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_record
from routing.errors import Conflict
from routing.models import ClassifierVersion, VersionStatus

from . import conf, gates, notify, selectors, targets
from .k8s_adapter import KubeError
from .models import (
    ACTIVE_STATES,
    DEFAULT_STEPS,
    DEFAULT_WINDOW_SECONDS,
    HOLDS_ROUTE,
    DailyMisrouteCheck,
    Gate,
    GateEvaluation,
    GateResult,
    Publication,
    PublicationState,
    Rollout,
    RolloutState,
    RolloutTransition,
    Route,
    percent,
)

log = logging.getLogger(__name__)

AUTOMATION = "automation"


class RolloutError(Conflict):
    """The cluster refused or could not take a weight change; nothing was recorded.

    ``retryable``: the same action may succeed later (timeout, 5xx, 409).
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


# --- helpers --------------------------------------------------------------------------------


def clean_steps(steps: Iterable[Any] | None) -> list[int]:
    """Canary weights per stage: integers rising strictly within 1..100, ending at 100."""
    steps = list(DEFAULT_STEPS if steps is None else steps)
    if not steps:
        raise ValidationError({"steps": ["Give at least one step."]})
    for step in steps:
        if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= 100:
            raise ValidationError({"steps": [f"{step!r} is not an integer in 1..100."]})
    if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        raise ValidationError({"steps": ["Steps must rise strictly."]})
    if steps[-1] != 100:
        raise ValidationError({"steps": ["The last step must be 100."]})
    return steps


def _clean_gate(spec: Mapping[str, Any]) -> dict[str, Any]:
    data = {
        "name": spec["name"],
        "query": spec["query"],
        "requests_query": spec.get("requests_query") or gates.REQUESTS,
        "window": spec.get("window") or "5m",
        "comparator": spec.get("comparator", "lt"),
        "threshold": float(spec["threshold"]),
        "min_requests": int(spec.get("min_requests", 100)),
        "rollback_after_seconds": spec.get("rollback_after_seconds"),
        "last_stage_only": bool(spec.get("last_stage_only", False)),
    }
    if not gates.DURATION.match(data["window"]):
        raise ValidationError({"gates": [f"{data['window']!r} is not a PromQL duration."]})
    if data["comparator"] not in ("lt", "le", "gt", "ge"):
        raise ValidationError({"gates": [f"Unknown comparator {data['comparator']!r}."]})
    return data


def _clean_daily(threshold: float | None, min_labels: int | None) -> dict[str, Any]:
    """The daily misroute check's settings that were given, validated."""
    errors, data = {}, {}
    if threshold is not None:
        if not 0 < float(threshold) < 1:
            errors["misroute_threshold"] = ["Must be between 0 and 1 (0.08 is 8%)."]
        data["misroute_threshold"] = float(threshold)
    if min_labels is not None:
        if int(min_labels) < 1:
            errors["misroute_min_labels"] = ["Must be at least 1."]
        data["misroute_min_labels"] = int(min_labels)
    if errors:
        raise ValidationError(errors)
    return data


def _actor_name(actor) -> str:
    if getattr(actor, "is_authenticated", False):
        return actor.get_username()
    return str(actor) if actor else AUTOMATION


def _snapshot(rollout: Rollout) -> dict[str, Any]:
    return {
        "state": rollout.state,
        "stage": rollout.stage,
        "canary_weight": rollout.canary_weight,
        "stable_weight": rollout.stable_weight,
    }


def _write_weights(rollout: Rollout, canary: int) -> None:
    """Set the route's weights on the cluster (or the local target) and mirror them."""
    route = rollout.route
    weights = {rollout.canary_backend: canary, rollout.stable_backend: 100 - canary}
    try:
        with targets.kube() as kube:
            if kube is not None:
                kube.set_weights(route.namespace, route.httproute, route.rule_index, weights)
    except KubeError as exc:
        raise RolloutError(
            f"HTTPRoute {route.namespace}/{route.httproute} not changed: {exc}",
            retryable=exc.retryable,
        ) from exc
    Route.objects.filter(pk=route.pk).update(
        canary_weight=canary if route.canary_backend == rollout.canary_backend else 100 - canary,
        stable_weight=100 - canary if route.canary_backend == rollout.canary_backend else canary,
        weights_updated_at=timezone.now(),
    )


def _transition(
    rollout: Rollout,
    *,
    actor,
    action: str,
    to_state: str,
    to_stage: int | None = None,
    canary: int | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> RolloutTransition:
    """Move the (locked) rollout, writing weights first when they change; record it."""
    now = now or timezone.now()
    before = _snapshot(rollout)
    to_stage = rollout.stage if to_stage is None else to_stage
    if canary is not None and canary != rollout.canary_weight:
        _write_weights(rollout, canary)
    if canary is not None:
        rollout.canary_weight, rollout.stable_weight = canary, 100 - canary
    stage_changed = to_stage != rollout.stage or rollout.state != to_state
    from_state, from_stage = rollout.state, rollout.stage
    rollout.state, rollout.stage = to_state, to_stage
    if stage_changed:
        rollout.stage_started_at = now
        rollout.held_since = None
    if to_state not in ACTIVE_STATES:
        rollout.finished_at = now
    rollout.status_note = reason
    rollout.save()
    transition = RolloutTransition.objects.create(
        rollout=rollout,
        action=action,
        from_state=from_state,
        to_state=to_state,
        from_stage=from_stage,
        to_stage=to_stage,
        canary_weight=rollout.canary_weight,
        stable_weight=rollout.stable_weight,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        actor_name=_actor_name(actor),
        reason=reason,
        at=now,
    )
    audit_record(
        actor=actor,
        action=f"rollout.{action}",
        obj=rollout,
        before=before,
        after=_snapshot(rollout),
        message=reason,
    )
    return transition


def _locked(rollout: Rollout) -> Rollout:
    return (
        Rollout.objects.select_for_update(of=("self",))
        .select_related("route", "version")
        .get(pk=rollout.pk)
    )


def _serving_publication(version: ClassifierVersion, slot) -> Publication | None:
    """The publication through which ``slot`` serves ``version``: its newest one, succeeded.

    An older success does not count: if another version was published to the slot since (or
    a publication is still under way), the pods may not serve ``version`` any more.
    """
    if slot is None:
        return None
    newest = Publication.objects.filter(slot=slot).select_related("version").first()
    if newest is None or newest.version_id != version.pk:
        raise Conflict(
            f"Publish {version} to {slot} first"
            + (f": its newest publication is of {newest.version}." if newest else ".")
        )
    if newest.state != PublicationState.SUCCEEDED:
        raise Conflict(
            f"Publication #{newest.pk} of {version} to {slot} is {newest.state}: every pod must "
            "confirm it before a canary starts."
        )
    return newest


# --- services -------------------------------------------------------------------------------


def rollout_start(
    *,
    actor,
    route: Route,
    version: ClassifierVersion,
    steps: list[int] | None = None,
    window_seconds: int | None = None,
    gate_specs: list[Mapping[str, Any]] | None = None,
    misroute_threshold: float | None = None,
    misroute_min_labels: int | None = None,
    reason: str = "",
) -> Rollout:
    """Start a canary of ``version`` on ``route`` and move it to stage 1 at once.

    The version must be frozen and, when the route names a canary slot, published to it
    with every pod confirming. Refused while another rollout of the route is active.
    """
    steps = clean_steps(steps)
    window_seconds = DEFAULT_WINDOW_SECONDS if window_seconds is None else int(window_seconds)
    if window_seconds < 1:
        raise ValidationError({"window_seconds": ["Must be at least 1 second."]})
    specs = [_clean_gate(g) for g in (gates.DEFAULT_GATES if gate_specs is None else gate_specs)]
    daily = _clean_daily(misroute_threshold, misroute_min_labels)
    if version.status != VersionStatus.FROZEN:
        raise Conflict(f"Only a frozen version can be rolled out; {version} is {version.status}.")
    with transaction.atomic():
        route = Route.objects.select_for_update().get(pk=route.pk)
        publication = _serving_publication(version, route.canary_slot)
        if Rollout.objects.filter(HOLDS_ROUTE, route=route).exists():
            raise Conflict(
                f"Route {route} already has an active rollout (or a failed one whose canary "
                "still has traffic: roll it back first)."
            )
        stable = selectors.slot_serving(route.stable_slot) if route.stable_slot else None
        try:
            with transaction.atomic():
                rollout = Rollout.objects.create(
                    route=route,
                    version=version,
                    stable_version=stable.version if stable else None,
                    publication=publication,
                    stable_backend=route.stable_backend,
                    canary_backend=route.canary_backend,
                    steps=steps,
                    window_seconds=window_seconds,
                    **daily,
                    canary_weight=route.canary_weight,
                    stable_weight=route.stable_weight,
                    created_by=actor if getattr(actor, "is_authenticated", False) else None,
                )
        except IntegrityError:
            raise Conflict(f"Route {route} already has an active rollout.") from None
        Gate.objects.bulk_create(Gate(rollout=rollout, **spec) for spec in specs)
        audit_record(
            actor=actor,
            action="rollout.create",
            obj=rollout,
            after={
                "version": version.name,
                "route": route.name,
                "steps": steps,
                "window_seconds": window_seconds,
                "gates": [s["name"] for s in specs],
                **daily,
            },
            message=reason,
        )
        _transition(
            rollout,
            actor=actor,
            action="start",
            to_state=RolloutState.STAGE,
            to_stage=1,
            canary=steps[0],
            reason=reason,
        )
        notify.notify("start", rollout, reason)
    return rollout


def rollout_advance(
    *, actor, rollout: Rollout, expected_stage: int | None = None, reason: str = ""
) -> Rollout:
    """Move to the next stage (or promote from the last), by hand or by automation.

    ``expected_stage`` is the stage the caller saw: if it moved meanwhile (another click, a
    beat tick), the call is refused instead of advancing twice.
    """
    with transaction.atomic():
        rollout = _locked(rollout)
        if rollout.state != RolloutState.STAGE:
            raise Conflict(f"Rollout #{rollout.pk} is {rollout.get_state_display().lower()}.")
        if expected_stage is not None and expected_stage != rollout.stage:
            raise Conflict(
                f"Rollout #{rollout.pk} is at stage {rollout.stage}, not {expected_stage}: "
                "someone else moved it."
            )
        _advance_locked(rollout, actor=actor, reason=reason)
    return rollout


def _advance_locked(rollout: Rollout, *, actor, reason: str) -> None:
    if rollout.is_last_stage:
        _transition(
            rollout, actor=actor, action="promote", to_state=RolloutState.PROMOTED, reason=reason
        )
        # The promoted backend serves everything now: it is the route's stable one from here.
        route = Route.objects.select_for_update().get(pk=rollout.route_id)
        if route.canary_backend == rollout.canary_backend:
            route.stable_backend, route.canary_backend = route.canary_backend, route.stable_backend
            route.stable_slot, route.canary_slot = route.canary_slot, route.stable_slot
            route.stable_weight, route.canary_weight = route.canary_weight, route.stable_weight
            route.save()
        notify.notify("promotion", rollout, reason)
        return
    stage = rollout.stage + 1
    _transition(
        rollout,
        actor=actor,
        action="advance",
        to_state=RolloutState.STAGE,
        to_stage=stage,
        canary=rollout.steps[stage - 1],
        reason=reason,
    )
    notify.notify("advance", rollout, reason)


def rollout_pause(*, actor, rollout: Rollout, reason: str = "") -> Rollout:
    """Hold the current weights; automation leaves a paused rollout alone."""
    with transaction.atomic():
        rollout = _locked(rollout)
        if rollout.state != RolloutState.STAGE:
            raise Conflict(
                f"Only a rollout in a stage can be paused; #{rollout.pk} is {rollout.state}."
            )
        _transition(
            rollout, actor=actor, action="pause", to_state=RolloutState.PAUSED, reason=reason
        )
    return rollout


def rollout_resume(*, actor, rollout: Rollout, reason: str = "") -> Rollout:
    """Continue a paused rollout; the stage's observation window starts again."""
    with transaction.atomic():
        rollout = _locked(rollout)
        if rollout.state != RolloutState.PAUSED:
            raise Conflict(f"Rollout #{rollout.pk} is not paused.")
        _transition(
            rollout, actor=actor, action="resume", to_state=RolloutState.STAGE, reason=reason
        )
    return rollout


def rollout_rollback(
    *, actor, rollout: Rollout, reason: str = "", republish: bool = False
) -> Rollout:
    """Canary 0 / stable 100 at once; optionally publish the stable config to the canary slot.

    Allowed from any state but promoted and rolled back. The weights are written before
    anything is recorded: if the cluster refuses, this raises ``RolloutError`` and the
    rollout is unchanged.
    """
    with transaction.atomic():
        rollout = _locked(rollout)
        if rollout.state in (RolloutState.PROMOTED, RolloutState.ROLLED_BACK):
            raise Conflict(
                f"Rollout #{rollout.pk} is already {rollout.get_state_display().lower()}."
            )
        slot = rollout.route.canary_slot
        stable = rollout.stable_version if republish and slot is not None else None
        if stable is not None and stable.status != VersionStatus.FROZEN:
            # Decided before the weights move: nothing after them may undo the record.
            reason = f"{reason} (config not republished: {stable.name} is {stable.status})"
            stable = None
        _transition(
            rollout,
            actor=actor,
            action="rollback",
            to_state=RolloutState.ROLLED_BACK,
            canary=0,
            reason=reason.strip(),
        )
        if stable is not None:
            _republish(rollout, actor, stable, slot)
        notify.notify("rollback", rollout, reason)
    return rollout


def _republish(rollout: Rollout, actor, version: ClassifierVersion, slot) -> None:
    """Queue ``version``'s config for the canary slot after a rollback, best effort."""
    from .publish import publication_start

    try:
        with transaction.atomic():
            publication_start(actor=actor, version=version, slot=slot)
    except (Conflict, ValidationError) as e:
        # The weights already moved in the cluster; the rollback must stay recorded.
        log.warning("rollback of #%s: republishing %s failed: %s", rollout.pk, version, e)


def _rollback_trigger(gate_rows: list[Gate], now: datetime) -> Gate | None:
    for gate in gate_rows:
        if (
            gate.rollback_after_seconds is not None
            and gate.last_result == GateResult.FAIL
            and gate.failing_since is not None
            and now - gate.failing_since >= timedelta(seconds=gate.rollback_after_seconds)
        ):
            return gate
    return None


def _describe(gate: Gate) -> str:
    value = "no value" if gate.last_value is None else f"{gate.last_value:.4g}"
    return f"{gate.name} {gate.last_result} ({value}; {gate.last_detail or str(gate)})"


# The states automation watches (gates, rollback triggers, the daily check). A pause holds
# the weights; it does not switch the watching off.
WATCHED_STATES = (RolloutState.STAGE, RolloutState.PAUSED)


def watched_rollout_ids() -> list[int]:
    return list(
        Rollout.objects.filter(state__in=WATCHED_STATES).order_by("pk").values_list("pk", flat=True)
    )


def rollout_evaluate(*, rollout_id: int, now: datetime | None = None) -> Rollout:
    """Evaluate a rollout's gates and act: roll back, advance, promote or hold.

    Gates are queried before the row is locked (network time); the decision is taken under
    the lock and only if the rollout is still in the state and stage that was evaluated.
    A paused rollout is still watched: a pause holds the weights, it does not switch off
    the automatic rollback (a canary paused during a 5xx burst must not keep its traffic).
    """
    rollout = Rollout.objects.select_related("route", "version").get(pk=rollout_id)
    if rollout.state not in WATCHED_STATES:
        return rollout
    state, stage = rollout.state, rollout.stage
    gate_rows = list(rollout.gates.all())
    outcomes: dict[int, gates.Outcome] = {}
    base_url = conf.prometheus_url()
    if base_url:
        with gates.Prometheus(base_url) as prometheus:
            for gate in gate_rows:
                outcomes[gate.pk] = gates.evaluate(
                    prometheus, gate, version=rollout.version.name, backend=rollout.canary_backend
                )
    else:
        outcomes = {
            g.pk: gates.Outcome("unknown", None, None, "PROMETHEUS_URL unset") for g in gate_rows
        }
    now = now or timezone.now()
    with transaction.atomic():
        rollout = _locked(rollout)
        if rollout.state != state or rollout.stage != stage:
            return rollout  # someone else moved it meanwhile
        gate_rows = list(Gate.objects.select_for_update().filter(rollout=rollout))
        for gate in gate_rows:
            outcome = outcomes[gate.pk]
            if outcome.result == GateResult.FAIL:
                gate.failing_since = gate.failing_since or now
            else:
                gate.failing_since = None
            gate.last_result, gate.last_value = outcome.result, outcome.value
            gate.last_requests, gate.last_detail = outcome.requests, outcome.detail
            gate.last_evaluated_at = now
            gate.save()
            GateEvaluation.objects.create(
                gate=gate,
                result=outcome.result,
                value=outcome.value,
                requests=outcome.requests,
                detail=outcome.detail,
                stage=stage,
                at=now,
            )
        trigger = _rollback_trigger(gate_rows, now)
        if trigger is not None:
            reason = (
                f"automatic: {_describe(trigger)} for at least {trigger.rollback_after_seconds} s"
            )
            _rollback_locked_automation(rollout, reason, now)
            return rollout
        if rollout.state == RolloutState.PAUSED:
            return rollout  # an operator holds it: never advanced by automation
        if rollout.stage_started_at and now - rollout.stage_started_at < timedelta(
            seconds=rollout.window_seconds
        ):
            return rollout  # still observing
        required = [g for g in gate_rows if rollout.is_last_stage or not g.last_stage_only]
        blocking = [g for g in required if g.last_result != GateResult.PASS]
        if not blocking:
            try:
                with transaction.atomic():
                    _advance_locked(rollout, actor=None, reason="automatic: gates passed")
            except RolloutError as exc:
                rollout.refresh_from_db()
                if exc.retryable:
                    _hold(rollout, f"advance refused: {exc}", now)
                else:
                    _fail(rollout, f"automatic advance refused by the cluster: {exc}", now)
            return rollout
        _hold(rollout, "held: " + "; ".join(_describe(g) for g in blocking), now)
    return rollout


def _hold(rollout: Rollout, note: str, now: datetime, *, urgent: bool = False) -> None:
    """Record why the rollout waits; audited and notified the first time, or every time
    when ``urgent`` (a failed automatic rollback must reach a human whatever came before)."""
    first = rollout.held_since is None
    Rollout.objects.filter(pk=rollout.pk).update(
        held_since=rollout.held_since or now, status_note=note
    )
    rollout.held_since, rollout.status_note = rollout.held_since or now, note
    if urgent:
        with transaction.atomic():
            audit_record(actor=None, action="rollout.rollback_failed", obj=rollout, message=note)
        notify.notify("rollback_failed", rollout, note)
    elif first:
        with transaction.atomic():
            audit_record(actor=None, action="rollout.hold", obj=rollout, message=note)
        notify.notify("hold", rollout, note)


def _fail(rollout: Rollout, note: str, now: datetime) -> None:
    """Move the (locked) rollout to ``failed``, weights as they are; audit and notify."""
    _transition(
        rollout, actor=None, action="fail", to_state=RolloutState.FAILED, reason=note, now=now
    )
    notify.notify("failed", rollout, note)


def _rollback_locked_automation(
    rollout: Rollout, reason: str, now: datetime, *, republish: bool = False
) -> str:
    """Roll the locked rollout back for automation: ``rolled_back``, ``failed`` or ``held``.

    A permanent refusal by the cluster fails the rollout (an operator must look: the route
    was changed under us); a retryable one holds it so the next attempt can try again.
    """
    try:
        with transaction.atomic():
            _transition(
                rollout,
                actor=None,
                action="rollback",
                to_state=RolloutState.ROLLED_BACK,
                canary=0,
                reason=reason,
                now=now,
            )
            slot = rollout.route.canary_slot
            stable = rollout.stable_version
            # Only a frozen version can be published; a retired one never blocks the rollback.
            if republish and slot is not None and stable and stable.status == VersionStatus.FROZEN:
                _republish(rollout, None, stable, slot)
            notify.notify("rollback", rollout, reason)
        return "rolled_back"
    except RolloutError as exc:
        rollout.refresh_from_db()
        log.error("automatic rollback of rollout %s failed: %s", rollout.pk, exc)
        if exc.retryable:
            _hold(rollout, f"automatic rollback failed, act now: {exc}", now, urgent=True)
            return "held"
        _fail(rollout, f"automatic rollback refused by the cluster ({reason}): {exc}", now)
        return "failed"


GATE_FIELDS = (
    "query",
    "requests_query",
    "window",
    "comparator",
    "threshold",
    "min_requests",
    "rollback_after_seconds",
    "last_stage_only",
)


def _gate_spec(gate: Gate) -> dict[str, Any]:
    return {"name": gate.name, **{f: getattr(gate, f) for f in GATE_FIELDS}}


def rollout_set_gates(
    *, actor, rollout: Rollout, gate_specs: list[Mapping[str, Any]], reason: str = ""
) -> Rollout:
    """Change or add gates of an active rollout, by name; audited with before and after.

    A spec names a gate and the fields to change; an unknown name adds a gate (it then needs
    ``query`` and ``threshold``). Gates are never dropped mid-rollout, so their history
    stays: loosen a gate's threshold instead. A changed gate's failing streak starts over,
    since it was measured against the old condition.
    """
    with transaction.atomic():
        rollout = _locked(rollout)
        if rollout.state not in ACTIVE_STATES:
            raise Conflict(f"Rollout #{rollout.pk} is {rollout.state}: its gates are final.")
        existing = {g.name: g for g in Gate.objects.select_for_update().filter(rollout=rollout)}
        names = [spec.get("name") for spec in gate_specs]
        if len(set(names)) != len(names):
            raise ValidationError({"gates": ["Each gate may appear once."]})
        before = [_gate_spec(g) for g in existing.values()]
        changed = []
        for spec in gate_specs:
            gate = existing.get(spec["name"])
            if gate is None:
                missing = [f for f in ("query", "threshold") if f not in spec]
                if missing:
                    raise ValidationError(
                        {"gates": [f"New gate {spec['name']!r} needs {' and '.join(missing)}."]}
                    )
                Gate.objects.create(rollout=rollout, **_clean_gate(spec))
                changed.append(spec["name"])
                continue
            merged = _clean_gate({**_gate_spec(gate), **spec})
            if merged != _gate_spec(gate):
                for field in GATE_FIELDS:
                    setattr(gate, field, merged[field])
                gate.failing_since = None
                gate.save()
                changed.append(gate.name)
        if changed:
            audit_record(
                actor=actor,
                action="rollout.gates",
                obj=rollout,
                before={"gates": before},
                after={"gates": [_gate_spec(g) for g in rollout.gates.all()]},
                message=reason or "gates changed: " + ", ".join(changed),
            )
    return rollout


# --- daily misroute check -------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return percent(value) or "?"


def _count(n: float) -> str:
    return f"{n:.0f}" if abs(n - round(n)) < 1e-9 else f"{n:.1f}"


def rollout_set_misroute_check(
    *, actor, rollout: Rollout, threshold: float | None = None, min_labels: int | None = None
) -> Rollout:
    """Change the daily check's threshold (0-1, exclusive) or minimum labels of a rollout."""
    daily = _clean_daily(threshold, min_labels)
    with transaction.atomic():
        rollout = _locked(rollout)
        before = {
            "misroute_threshold": rollout.misroute_threshold,
            "misroute_min_labels": rollout.misroute_min_labels,
        }
        for field, value in daily.items():
            setattr(rollout, field, value)
        rollout.save(update_fields=["misroute_threshold", "misroute_min_labels"])
        audit_record(
            actor=actor,
            action="rollout.misroute_check",
            obj=rollout,
            before=before,
            after={
                "misroute_threshold": rollout.misroute_threshold,
                "misroute_min_labels": rollout.misroute_min_labels,
            },
        )
    return rollout


def rollout_daily_check(
    *, rollout_id: int, day: date | None = None, now: datetime | None = None
) -> DailyMisrouteCheck | None:
    """Judge the canary version's misroute over the UTC ``day`` (default: yesterday) and act.

    Only rollouts in a stage or paused are checked (None otherwise). With fewer labels than
    the rollout's minimum the result is ``unknown``: recorded, nothing else happens. With
    enough labels and the estimate above the threshold the rollout is rolled back (canary 0,
    stable 100, the stable config republished to the canary slot) like any automatic
    rollback; a permanent refusal by the cluster fails it. Re-running a day replaces that
    day's record.
    """
    now = now or timezone.now()
    day = day or (now.astimezone(UTC) - timedelta(days=1)).date()
    rollout = Rollout.objects.select_related("route", "version").get(pk=rollout_id)
    if rollout.state not in WATCHED_STATES:
        return None
    estimate = selectors.misroute_estimate(rollout.version.name, day)  # before the lock
    with transaction.atomic():
        rollout = _locked(rollout)
        if rollout.state not in WATCHED_STATES:
            return None
        rate = estimate.rate
        threshold, minimum = rollout.misroute_threshold, rollout.misroute_min_labels
        figures = f"n={_count(rate.n)}, 95% CI {_pct(rate.low)}-{_pct(rate.high)}%"
        if not rate.has_data or rate.n < minimum:
            result = GateResult.UNKNOWN
            detail = (
                f"too few labels for {day}: {estimate.labeled} labeled, n={_count(rate.n)} "
                f"< {minimum}; holding, not judged"
            )
        elif rate.value > threshold:
            result = GateResult.FAIL
            detail = f"daily misroute {_pct(rate.value)}% > {_pct(threshold)}% ({figures})"
        else:
            result = GateResult.PASS
            detail = f"daily misroute {_pct(rate.value)}% <= {_pct(threshold)}% ({figures})"
        check, _ = DailyMisrouteCheck.objects.update_or_create(
            rollout=rollout,
            day=day,
            defaults={
                "result": result,
                "misroute": rate.value,
                "low": rate.low,
                "high": rate.high,
                "n": rate.n,
                "labeled": estimate.labeled,
                "threshold": threshold,
                "min_labels": minimum,
                "action": "",
                "detail": detail,
                "at": now,
            },
        )
        if result == GateResult.FAIL:
            reason = f"{detail} on {day} (headline labels of {rollout.version.name})"
            outcome = _rollback_locked_automation(rollout, reason, now, republish=True)
            check.action = {"rolled_back": "rollback", "failed": "failed"}.get(outcome, "retry")
            check.save(update_fields=["action"])
    return check
