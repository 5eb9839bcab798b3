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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_record
from cascade_admin.actors import user_of
from cascade_admin.errors import Conflict
from routing.models import ClassifierVersion, VersionStatus

from . import conf, gates, notify, selectors, targets
from .k8s_adapter import KubeError, RouteChanged, WeightsDrifted
from .models import (
    ACTIVE_STATES,
    DEFAULT_STEPS,
    DEFAULT_WINDOW_SECONDS,
    HOLDS_ROUTE,
    DailyMisrouteCheck,
    Gate,
    GateEvaluation,
    GateResult,
    IntentState,
    Publication,
    PublicationState,
    Rollout,
    RolloutState,
    RolloutTransition,
    Route,
    WeightIntent,
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
        "unknown_rolls_back": bool(spec.get("unknown_rolls_back", True)),
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
    if user_of(actor):
        return actor.get_username()
    return str(actor) if actor else AUTOMATION


def _snapshot(rollout: Rollout) -> dict[str, Any]:
    return {
        "state": rollout.state,
        "stage": rollout.stage,
        "canary_weight": rollout.canary_weight,
        "stable_weight": rollout.stable_weight,
    }


def _mirror_weights(rollout: Rollout, canary: int) -> None:
    """Record on the route the weights the rollout's backends now carry."""
    route = rollout.route
    same = route.canary_backend == rollout.canary_backend
    Route.objects.filter(pk=route.pk).update(
        canary_weight=canary if same else 100 - canary,
        stable_weight=100 - canary if same else canary,
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
    """Move the (locked) rollout and record it (weights already on the cluster)."""
    now = now or timezone.now()
    before = _snapshot(rollout)
    to_stage = rollout.stage if to_stage is None else to_stage
    if canary is not None and canary != rollout.canary_weight:
        # Reached through _execute only: the cluster holds these weights already (or there
        # is no cluster); this records them.
        _mirror_weights(rollout, canary)
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
    if user_of(actor) is None:
        # Automation says why it acted; a person's reason goes to the timeline only, and
        # never overwrites the note (e.g. why it was started, or held).
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
        actor=user_of(actor),
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


# --- moving weights: intent first, then the cluster, then the record --------------------------

SETTLE_GRACE = timedelta(seconds=30)  # a held answer may still land this long after the call


@dataclass
class Move:
    """A change of a rollout's state decided under its lock, carried out by ``_execute``."""

    action: str
    from_state: str
    from_stage: int
    to_state: str
    to_stage: int
    canary: int | None  # the canary weight after the move; None: weights stay
    reason: str = ""
    # Test the recorded weights on the route (a change made elsewhere is refused). A rollback
    # does not: moving traffic off a canary is always safe, whatever the route holds.
    guard: bool = True
    after: Callable[[Rollout], None] | None = None  # runs once the move is recorded


def _pending(rollout: Rollout) -> WeightIntent | None:
    return rollout.intents.filter(state=IntentState.PENDING).first()


def _execute(rollout: Rollout, move: Move, *, actor, now: datetime | None = None) -> Rollout:
    """Carry out ``move``: record the intent (committed), send the weights, record the move.

    A definite refusal leaves the record as it was (``RolloutError``); a lost answer leaves
    the intent pending, settled at once or later by reading the route back (``settle``).
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked = _locked(rollout)
        if (locked.state, locked.stage) != (move.from_state, move.from_stage):
            raise Conflict(
                f"Rollout #{locked.pk} is {locked.state} at stage {locked.stage} now: "
                "someone else moved it."
            )
        pending = _pending(locked)
        if pending is not None:
            if move.action != "rollback":
                raise Conflict(
                    f"Rollout #{locked.pk}: the outcome of its last change ({pending.action} "
                    "to " + _weights_text(pending.target) + ") is not known yet; the console "
                    "reads the route back on the next evaluation."
                )
            # A rollback never waits: its patch pins the resourceVersion, so of it and a
            # change still in flight only one can land.
            _settle_as(pending, IntentState.NOT_APPLIED, "superseded by a rollback", now)
        if move.action == "rollback" and locked.drift_live is not None:
            _clear_drift(locked, actor, "a rollback sets the weights again")
        moves_weights = move.canary is not None and move.canary != locked.canary_weight
        if not moves_weights or conf.k8s_target() == "local":
            _record(locked, move, actor=actor, now=now)
            done = True
        else:
            assert move.canary is not None  # implied by moves_weights
            done = False
            intent = WeightIntent.objects.create(
                rollout=locked,
                action=move.action,
                from_state=locked.state,
                from_stage=locked.stage,
                to_state=move.to_state,
                to_stage=move.to_stage,
                target=_target(locked, move.canary),
                previous=_target(locked, locked.canary_weight),
                reason=move.reason,
                actor=user_of(actor),
                actor_name=_actor_name(actor),
                created_at=now,
            )
    if done:
        if move.after:
            move.after(locked)
        return locked
    route = locked.route
    # A rollback tries again on a route changed between its read and its patch (e.g. by a
    # change still in flight landing): it must go through, and each try re-reads the route.
    attempts = 1 if move.guard else 3
    for attempt in range(1, attempts + 1):
        try:
            with targets.kube() as kube:
                assert kube is not None  # not the local target: checked above
                kube.set_weights(
                    route.namespace,
                    route.httproute,
                    route.rule_index,
                    intent.target,
                    expected=intent.previous if move.guard else None,
                )
            break
        except RouteChanged as exc:
            if attempt == attempts or isinstance(exc, WeightsDrifted):
                return _after_error(intent, exc, move, now)
        except KubeError as exc:
            return _after_error(intent, exc, move, now)
    return _apply(intent, move, now=now)


def _target(rollout: Rollout, canary: int) -> dict[str, int]:
    return {rollout.canary_backend: canary, rollout.stable_backend: 100 - canary}


def _weights_text(weights: Mapping[str, int]) -> str:
    return "/".join(f"{name} {weight}" for name, weight in sorted(weights.items()))


def _record(rollout: Rollout, move: Move, *, actor, now: datetime, note: str = "") -> None:
    """The (locked) rollout's move as done: transition, audit, and for a promotion the route's
    roles swapped."""
    _transition(
        rollout,
        actor=actor,
        action=move.action,
        to_state=move.to_state,
        to_stage=move.to_stage,
        canary=move.canary,
        reason=(move.reason + note).strip(),
        now=now,
    )
    if move.action == "promote":
        # The promoted backend serves everything now: it is the route's stable one from here.
        route = Route.objects.select_for_update().get(pk=rollout.route_id)
        if route.canary_backend == rollout.canary_backend:
            route.stable_backend, route.canary_backend = route.canary_backend, route.stable_backend
            route.stable_slot, route.canary_slot = route.canary_slot, route.stable_slot
            route.stable_weight, route.canary_weight = route.canary_weight, route.stable_weight
            route.save()


def _apply(intent: WeightIntent, move: Move | None, *, now: datetime, note: str = "") -> Rollout:
    """The cluster holds the intent's weights: record its move (once) and clear it."""
    with transaction.atomic():
        rollout = _locked(intent.rollout)
        intent = WeightIntent.objects.select_for_update().get(pk=intent.pk)
        if intent.state != IntentState.PENDING:
            return rollout  # settled meanwhile by another caller
        move = move or _move_of(intent)
        _record(rollout, move, actor=intent.actor or intent.actor_name, now=now, note=note)
        _settle_as(intent, IntentState.APPLIED, note.strip(), now)
    if move.after:
        move.after(rollout)
    return rollout


def _move_of(intent: WeightIntent) -> Move:
    """The move an intent stands for (to finish it after its caller is gone)."""
    canary = intent.target[intent.rollout.canary_backend]

    def after(rollout: Rollout, kind=intent.action, reason=intent.reason) -> None:
        notify.notify(kind, rollout, reason)  # intents are start, advance and rollback

    return Move(
        action=intent.action,
        from_state=intent.from_state,
        from_stage=intent.from_stage,
        to_state=intent.to_state,
        to_stage=intent.to_stage,
        canary=canary,
        reason=intent.reason,
        after=after,
    )


def _settle_as(intent: WeightIntent, state: str, detail: str, now: datetime) -> None:
    WeightIntent.objects.filter(pk=intent.pk).update(state=state, detail=detail, settled_at=now)
    intent.state, intent.detail, intent.settled_at = state, detail, now


def _after_error(intent: WeightIntent, exc: KubeError, move: Move, now: datetime) -> Rollout:
    route = intent.rollout.route
    label = f"HTTPRoute {route.namespace}/{route.httproute}"
    if isinstance(exc, WeightsDrifted):
        with transaction.atomic():
            _settle_as(intent, IntentState.DRIFT, str(exc), now)
            rollout = _locked(intent.rollout)
            _record_drift(rollout, exc.live, now)
        raise RolloutError(
            f"{label} not changed: its weights ({_weights_text(exc.live)}) were changed "
            "elsewhere; the rollout holds until an operator adopts them or restores the "
            "recorded ones",
            retryable=False,
        ) from exc
    if exc.maybe_applied:
        rollout = settle(intent, now=now, move=move)
        intent.refresh_from_db()
        if intent.state == IntentState.APPLIED:
            return rollout
        if intent.state == IntentState.PENDING:
            raise RolloutError(
                f"{label}: outcome unknown ({exc}). The console reads the route back and "
                "records the change if it landed; nothing else can move this rollout until "
                "then, but a rollback can.",
                retryable=True,
            ) from exc
        raise RolloutError(f"{label} not changed: {intent.detail}", retryable=True) from exc
    with transaction.atomic():
        _settle_as(intent, IntentState.NOT_APPLIED, str(exc), now)
    raise RolloutError(f"{label} not changed: {exc}", retryable=exc.retryable) from exc


def settle(intent: WeightIntent, *, now: datetime | None = None, move: Move | None = None):
    """Decide a pending intent by reading the route back (None if it cannot be read).

    Target weights live: the move is recorded as done. The previous ones: not applied, once
    ``SETTLE_GRACE`` has passed (a held answer may still land). Anything else: the route was
    changed elsewhere too; the rollout holds with the difference shown.
    """
    now = now or timezone.now()
    route = intent.rollout.route
    try:
        with targets.kube() as kube:
            live = (
                intent.target
                if kube is None
                else kube.read_weights(route.namespace, route.httproute, route.rule_index)
            )
    except KubeError as exc:
        log.warning("intent %s: route unreadable, still pending: %s", intent.pk, exc)
        return None
    live = {backend: live.get(backend) for backend in intent.target}
    if live == intent.target:
        return _apply(intent, move, now=now, note=" (confirmed by reading the route back)")
    with transaction.atomic():
        rollout = _locked(intent.rollout)
        if live == intent.previous:
            if now - intent.created_at < SETTLE_GRACE:
                return rollout
            _settle_as(intent, IntentState.NOT_APPLIED, "the route still has the old weights", now)
            if intent.action == "start" and rollout.state == RolloutState.PENDING:
                # Its first step never reached the route: the rollout never started.
                _fail(rollout, "the first step never reached the route", now)
            return rollout
        _settle_as(intent, IntentState.DRIFT, f"the route has {_weights_text(live)}", now)
        _record_drift(rollout, live, now)
        return rollout


def settle_pending(*, now: datetime | None = None) -> int:
    """Settle every pending intent (at worker start and on each tick); how many are left."""
    left = 0
    for intent in WeightIntent.objects.filter(state=IntentState.PENDING).select_related(
        "rollout__route"
    ):
        settle(intent, now=now)
        intent.refresh_from_db()
        left += intent.state == IntentState.PENDING
    return left


# --- drift: the route's weights changed elsewhere ---------------------------------------------


def _recorded(rollout: Rollout) -> dict[str, int]:
    return _target(rollout, rollout.canary_weight)


recorded_weights = _recorded


def _record_drift(rollout: Rollout, live: Mapping[str, int], now: datetime) -> None:
    """Note on the (locked) rollout that the route holds ``live``, not the record: hold it,
    audit and notify the first time."""
    live = {k: v for k, v in live.items() if v is not None}
    if rollout.drift_live == live:
        return
    first = rollout.drift_live is None
    rollout.drift_live, rollout.drift_since = live, rollout.drift_since or now
    note = (
        f"drift: the route has {_weights_text(live)}, the console recorded "
        f"{_weights_text(_recorded(rollout))}; adopt the live weights or restore the recorded "
        "ones"
    )
    Rollout.objects.filter(pk=rollout.pk).update(
        drift_live=live, drift_since=rollout.drift_since, status_note=note
    )
    audit_record(
        actor=None,
        action="rollout.drift",
        obj=rollout,
        before=_recorded(rollout),
        after=live,
        message=note,
    )
    if first:
        transaction.on_commit(lambda: notify.notify("drift", rollout, note))


def _clear_drift(rollout: Rollout, actor, why: str) -> None:
    Rollout.objects.filter(pk=rollout.pk).update(drift_live=None, drift_since=None)
    audit_record(
        actor=actor,
        action="rollout.drift_cleared",
        obj=rollout,
        before=rollout.drift_live,
        after=_recorded(rollout),
        message=why,
    )
    rollout.drift_live = rollout.drift_since = None


def live_weights(route: Route) -> dict[str, int] | None:
    """The route's live weights, or None on the local target or when it cannot be read."""
    try:
        with targets.kube() as kube:
            if kube is None:
                return None
            return kube.read_weights(route.namespace, route.httproute, route.rule_index)
    except KubeError as exc:
        log.warning("route %s unreadable: %s", route, exc)
        return None


def check_drift(rollout: Rollout, *, now: datetime | None = None) -> bool:
    """Compare the route with the record (evaluations and page views); record a difference,
    or clear one that is gone. True while they differ."""
    if rollout.state not in ACTIVE_STATES or _pending(rollout) is not None:
        return rollout.drift_live is not None
    live = live_weights(rollout.route)
    if live is None:
        return rollout.drift_live is not None
    # The recorded backends only: one missing from the route differs from the record too.
    live = {backend: live[backend] for backend in _recorded(rollout) if backend in live}
    now = now or timezone.now()
    with transaction.atomic():
        locked = _locked(rollout)
        if _pending(locked) is not None:
            return locked.drift_live is not None
        if live != _recorded(locked):
            _record_drift(locked, live, now)
            rollout.drift_live = locked.drift_live
            return True
        if locked.drift_live is not None:
            _clear_drift(locked, None, "the route holds the recorded weights again")
        rollout.drift_live = None
        return False


def rollout_adopt_live(*, actor, rollout: Rollout, reason: str = "") -> Rollout:
    """Take the route's live weights as the record (after a change made elsewhere)."""
    live = live_weights(rollout.route)
    with transaction.atomic():
        rollout = _locked(rollout)
        if rollout.drift_live is None:
            raise Conflict(f"Rollout #{rollout.pk} shows no drift: nothing to adopt.")
        if live is None or rollout.canary_backend not in live:
            raise Conflict("The route cannot be read now; try again.")
        canary = live[rollout.canary_backend]
        if live.get(rollout.stable_backend) != 100 - canary:
            raise Conflict(
                f"The route has {_weights_text(live)}: the two backends do not add up to 100; "
                "fix the route, then adopt."
            )
        rollout.canary_weight = canary  # the record follows the cluster; nothing is sent
        _mirror_weights(rollout, canary)
        _clear_drift(rollout, actor, f"adopted: {reason}".strip(": "))
        _transition(
            rollout,
            actor=actor,
            action="adopt",
            to_state=rollout.state,
            canary=canary,
            reason=reason or "adopted the route's live weights",
        )
    return rollout


def rollout_restore(*, actor, rollout: Rollout, reason: str = "") -> Rollout:
    """Write the recorded weights back over a change made elsewhere."""
    with transaction.atomic():
        rollout = _locked(rollout)
        if rollout.drift_live is None:
            raise Conflict(f"Rollout #{rollout.pk} shows no drift: nothing to restore.")
        live, recorded = dict(rollout.drift_live), _recorded(rollout)
    route = rollout.route
    try:
        with targets.kube() as kube:
            if kube is not None:
                kube.set_weights(
                    route.namespace, route.httproute, route.rule_index, recorded, expected=live
                )
    except KubeError as exc:
        raise RolloutError(
            f"Recorded weights not restored: {exc}", retryable=exc.retryable
        ) from exc
    with transaction.atomic():
        rollout = _locked(rollout)
        _clear_drift(rollout, actor, f"restored: {reason}".strip(": "))
        _transition(
            rollout,
            actor=actor,
            action="restore",
            to_state=rollout.state,
            reason=reason or "restored the recorded weights",
        )
    return rollout


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
        if stable is not None and stable.version_id == version.pk:
            raise Conflict(
                f"{route.stable_slot} already serves {version} on {route}: a canary of a "
                "version against itself tells nothing."
            )
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
                    created_by=user_of(actor),
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
    move = Move(
        action="start",
        from_state=RolloutState.PENDING,
        from_stage=0,
        to_state=RolloutState.STAGE,
        to_stage=1,
        canary=steps[0],
        reason=reason,
        after=lambda r: notify.notify("start", r, reason),
    )
    try:
        return _execute(rollout, move, actor=actor)
    except RolloutError as exc:
        with transaction.atomic():
            locked = _locked(rollout)
            if locked.state == RolloutState.PENDING and _pending(locked) is None:
                # The first step never reached the route: the rollout did not start.
                _fail(locked, f"the first step was refused by the cluster: {exc}", timezone.now())
        raise


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
        if rollout.drift_live is not None:
            raise Conflict(
                f"Rollout #{rollout.pk}: the route's weights were changed elsewhere; adopt "
                "them or restore the recorded ones first."
            )
    return _execute(rollout, _advance_move(rollout, reason), actor=actor)


def _advance_move(rollout: Rollout, reason: str) -> Move:
    if rollout.is_last_stage:
        return Move(
            action="promote",
            from_state=rollout.state,
            from_stage=rollout.stage,
            to_state=RolloutState.PROMOTED,
            to_stage=rollout.stage,
            canary=None,
            reason=reason,
            after=lambda r: notify.notify("promotion", r, reason),
        )
    stage = rollout.stage + 1
    return Move(
        action="advance",
        from_state=rollout.state,
        from_stage=rollout.stage,
        to_state=RolloutState.STAGE,
        to_stage=stage,
        canary=rollout.steps[stage - 1],
        reason=reason,
        after=lambda r: notify.notify("advance", r, reason),
    )


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

    Allowed from any state but promoted and rolled back, and even while an earlier change's
    outcome is unknown or the route drifted. The weights are written before anything is
    recorded: if the cluster refuses, this raises ``RolloutError`` and the rollout is
    unchanged.
    """
    with transaction.atomic():
        rollout = _locked(rollout)
        if rollout.state in (RolloutState.PROMOTED, RolloutState.ROLLED_BACK):
            raise Conflict(
                f"Rollout #{rollout.pk} is already {rollout.get_state_display().lower()}."
            )
    return _execute(rollout, _rollback_move(rollout, actor, reason, republish), actor=actor)


def _rollback_move(rollout: Rollout, actor, reason: str, republish: bool) -> Move:
    slot = rollout.route.canary_slot
    stable = rollout.stable_version if republish and slot is not None else None
    if stable is not None and stable.status != VersionStatus.FROZEN:
        # Decided before the weights move: nothing after them may undo the record.
        reason = f"{reason} (config not republished: {stable.name} is {stable.status})"
        stable = None
    reason = reason.strip()

    def after(done: Rollout) -> None:
        if stable is not None:
            _republish(done, actor, stable, slot)
        notify.notify("rollback", done, reason)

    return Move(
        action="rollback",
        from_state=rollout.state,
        from_stage=rollout.stage,
        to_state=RolloutState.ROLLED_BACK,
        to_stage=rollout.stage,
        canary=0,
        reason=reason,
        guard=False,
        after=after,
    )


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
    """A gate failing (or failing, then unknown, when it says so) for its rollback delay."""
    for gate in gate_rows:
        counts = gate.last_result == GateResult.FAIL or (
            gate.last_result == GateResult.UNKNOWN and gate.unknown_rolls_back
        )
        if (
            gate.rollback_after_seconds is not None
            and counts
            and gate.failing_since is not None
            and now - gate.failing_since >= timedelta(seconds=gate.rollback_after_seconds)
        ):
            return gate
    return None


def _record_outcome(gate: Gate, outcome: gates.Outcome, now: datetime) -> None:
    """Update a gate's streaks. A pass ends a failing streak; a fail starts one; an unknown
    result does neither (an outage must not restart the rollback clock) and breaks a passing
    streak (a stage advances only on a full window of fresh data)."""
    if outcome.result == GateResult.PASS:
        gate.failing_since = None
        gate.passing_since = gate.passing_since or now
    elif outcome.result == GateResult.FAIL:
        gate.failing_since = gate.failing_since or now
        gate.passing_since = None
    else:
        gate.passing_since = None
    gate.last_result, gate.last_value = outcome.result, outcome.value
    gate.last_requests, gate.last_detail = outcome.requests, outcome.detail
    gate.last_evaluated_at = now


def _fresh(gate: Gate, now: datetime) -> bool:
    """Has the gate passed for a whole window of its data?"""
    window = gates.window_seconds(gate.window)
    return gate.passing_since is not None and now - gate.passing_since >= timedelta(seconds=window)


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

    First a change whose outcome is unknown is settled by reading the route back (while it
    stays unknown, nothing else happens), and the route is compared with the record: a
    difference holds the rollout (it still rolls back on a breach). Gates are queried before
    the row is locked (network time); the decision is taken under the lock and only if the
    rollout is still in the state and stage that was evaluated; the move it decides is
    carried out after. A paused rollout is still watched: a pause holds the weights, it does
    not switch off the automatic rollback.
    """
    rollout = Rollout.objects.select_related("route", "version").get(pk=rollout_id)
    if rollout.state not in WATCHED_STATES:
        return rollout
    pending = _pending(rollout)
    if pending is not None:
        settle(pending, now=now)
        if _pending(rollout) is not None:
            return rollout
        rollout.refresh_from_db()
        if rollout.state not in WATCHED_STATES:
            return rollout
    drifted = check_drift(rollout, now=now)
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
    decision = None
    with transaction.atomic():
        rollout = _locked(rollout)
        if rollout.state != state or rollout.stage != stage:
            return rollout  # someone else moved it meanwhile
        Rollout.objects.filter(pk=rollout.pk).update(last_evaluated_at=now)
        rollout.last_evaluated_at = now
        gate_rows = list(Gate.objects.select_for_update().filter(rollout=rollout))
        for gate in gate_rows:
            outcome = outcomes[gate.pk]
            _record_outcome(gate, outcome, now)
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
            decision = (
                "rollback",
                f"automatic: {_describe(trigger)}, failing for at least "
                f"{trigger.rollback_after_seconds} s",
            )
        elif rollout.state == RolloutState.PAUSED:
            return rollout  # an operator holds it: never advanced by automation
        elif drifted:
            return rollout  # held with the difference shown until an operator decides
        elif rollout.stage_started_at and now - rollout.stage_started_at < timedelta(
            seconds=rollout.window_seconds
        ):
            return rollout  # still observing
        else:
            required = [g for g in gate_rows if rollout.is_last_stage or not g.last_stage_only]
            blocking = [g for g in required if g.last_result != GateResult.PASS]
            stale = [g for g in required if g not in blocking and not _fresh(g, now)]
            if blocking or stale:
                notes = [_describe(g) for g in blocking] + [
                    f"{g.name} passing for less than its {g.window} window of fresh data"
                    for g in stale
                ]
                _hold(rollout, "held: " + "; ".join(notes), now)
                return rollout
            decision = ("advance", "")
    if decision[0] == "rollback":
        _rollback_automatically(rollout, decision[1], now)
    else:
        _advance_automatically(rollout, now)
    rollout.refresh_from_db()
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


def _rollback_automatically(
    rollout: Rollout, reason: str, now: datetime, *, republish: bool = False
) -> str:
    """Roll back for automation (outside any transaction): ``rolled_back``, ``failed`` or
    ``held``. A permanent refusal by the cluster fails the rollout (an operator must look);
    a retryable one, or an unknown outcome, holds it loudly so the next tick tries again.
    """
    try:
        _execute(rollout, _rollback_move(rollout, None, reason, republish), actor=None, now=now)
        return "rolled_back"
    except Conflict as exc:
        with transaction.atomic():
            locked = _locked(rollout)
            if locked.state not in ACTIVE_STATES:
                return "rolled_back" if locked.state == RolloutState.ROLLED_BACK else "failed"
            log.error("automatic rollback of rollout %s failed: %s", rollout.pk, exc)
            if getattr(exc, "retryable", True):
                _hold(locked, f"automatic rollback failed, act now: {exc}", now, urgent=True)
                return "held"
            _fail(locked, f"automatic rollback refused by the cluster ({reason}): {exc}", now)
            return "failed"


def _advance_automatically(rollout: Rollout, now: datetime) -> None:
    try:
        _execute(rollout, _advance_move(rollout, "automatic: gates passed"), actor=None, now=now)
    except RolloutError as exc:
        with transaction.atomic():
            locked = _locked(rollout)
            if exc.retryable:
                _hold(locked, f"advance refused: {exc}", now)
            else:
                _fail(locked, f"automatic advance refused by the cluster: {exc}", now)
    except Conflict:
        pass  # moved meanwhile, or a change still in flight: the next tick decides again


GATE_FIELDS = (
    "query",
    "requests_query",
    "window",
    "comparator",
    "threshold",
    "min_requests",
    "rollback_after_seconds",
    "last_stage_only",
    "unknown_rolls_back",
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
        if rate.value is None or rate.n < minimum:  # no data, or too little
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
        reason = f"{detail} on {day} (headline labels of {rollout.version.name})"
    if result == GateResult.FAIL:
        outcome = _rollback_automatically(rollout, reason, now, republish=True)
        check.action = {"rolled_back": "rollback", "failed": "failed"}.get(outcome, "retry")
        check.save(update_fields=["action"])
    return check
