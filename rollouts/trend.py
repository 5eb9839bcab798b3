"""Gate trends drawn on the server as small SVG polylines: no script, nothing the CSP blocks.

``gate_trends`` turns a rollout's (already thinned) gate history into, per gate, the points of
its value line and the height of its threshold line, scaled into a fixed view box. Values are
numbers the console computed, never user text, so the SVG carries nothing to escape.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from .models import Gate, GateEvaluation

WIDTH, HEIGHT, PAD = 240, 48, 3
VIEW_BOX = f"0 0 {WIDTH} {HEIGHT}"


@dataclass(frozen=True)
class Trend:
    points: str  # "x,y x,y ..." for <polyline points=...>
    threshold_y: float
    count: int


def _scale(value: float, low: float, high: float) -> float:
    """Map ``value`` in [low, high] to a y coordinate (higher values higher up)."""
    span = high - low or 1.0
    return round(HEIGHT - PAD - (value - low) / span * (HEIGHT - 2 * PAD), 1)


def trend(gate: Gate, evaluations: Iterable[GateEvaluation]) -> Trend | None:
    """The value line of one gate, oldest to newest, with its threshold in the same scale.

    Evaluations without a value (unknown for lack of data) leave no point. None when fewer
    than two values exist: a line needs two.
    """
    ordered = [e.value for e in sorted(evaluations, key=lambda e: (e.at, e.pk))]
    values = [v for v in ordered if v is not None]
    if len(values) < 2:
        return None
    low = min([*values, gate.threshold, 0.0])
    high = max([*values, gate.threshold])
    step = (WIDTH - 2 * PAD) / (len(values) - 1)
    points = " ".join(
        f"{round(PAD + i * step, 1)},{_scale(v, low, high)}" for i, v in enumerate(values)
    )
    return Trend(points, _scale(gate.threshold, low, high), len(values))


def gate_trends(gates: Iterable[Gate], history: Iterable[GateEvaluation]) -> dict[int, Trend]:
    """Trends by gate id, from the rollout page's history (no further queries)."""
    by_gate: dict[int, list[GateEvaluation]] = defaultdict(list)
    for evaluation in history:
        by_gate[evaluation.gate_id].append(evaluation)
    found = {gate.pk: trend(gate, by_gate[gate.pk]) for gate in gates}
    return {pk: t for pk, t in found.items() if t is not None}
