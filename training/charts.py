"""The loss curve of a run page as SVG coordinates (no Django, no JavaScript): the page draws
one ``<polyline>`` and two axis labels, and re-renders it with every htmx poll."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LossCurve:
    points: str  # "x,y x,y ..." for <polyline points>
    width: int
    height: int
    min_loss: float
    max_loss: float
    first_step: int
    last_step: int
    count: int


def loss_curve(history: list[dict], *, width: int = 600, height: int = 180, pad: int = 6):
    """Scale ``history`` points ({"step", "loss"}) into a width × height box; None when there
    are fewer than two finite points to draw."""
    pairs = [
        (int(p["step"]), float(p["loss"]))
        for p in history
        if p.get("loss") is not None
        and p.get("step") is not None
        and float(p["loss"]) == float(p["loss"])  # drop NaN
    ]
    if len(pairs) < 2:
        return None
    steps = [s for s, _ in pairs]
    losses = [v for _, v in pairs]
    s0, s1 = min(steps), max(steps)
    lo, hi = min(losses), max(losses)
    span_s = (s1 - s0) or 1
    span_l = (hi - lo) or 1.0
    inner_w, inner_h = width - 2 * pad, height - 2 * pad
    coords = " ".join(
        f"{pad + (s - s0) / span_s * inner_w:.1f},{pad + (hi - v) / span_l * inner_h:.1f}"
        for s, v in pairs
    )
    return LossCurve(coords, width, height, lo, hi, s0, s1, len(pairs))
