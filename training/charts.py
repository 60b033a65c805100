"""The training run page's charts, on plain data (no Django): loss and learning rate over
optimizer steps, from the run's ``history`` (one point per logging step). Drawn by
``core/charts.py`` with axes, ticks and labels; the page shows them inline, re-rendered with
every htmx poll, and offers each as an SVG (and PNG) download."""

from __future__ import annotations

from core.charts import Figure, Series, line_chart

CHARTS = {
    "loss": ("Training loss", "loss"),
    "learning_rate": ("Learning rate", "learning rate"),
}


def _points(history: list[dict], key: str) -> list[tuple[float, float]]:
    points = []
    for point in history or []:
        step, value = point.get("step"), point.get(key)
        if isinstance(step, int | float) and isinstance(value, int | float):
            points.append((step, value))
    return points


def run_chart(history: list[dict], metric: str, *, run_label: str = "") -> Figure | None:
    """``metric`` ("loss" or "learning_rate") over steps; None with fewer than two points."""
    title, y_label = CHARTS[metric]
    return line_chart(
        title=f"{title}{f' · {run_label}' if run_label else ''}",
        series=[Series(y_label, _points(history, metric))],
        x_label="optimizer step",
        y_label=y_label,
    )


def run_charts(history: list[dict], *, run_label: str = "") -> dict[str, Figure]:
    """Every chart that has something to draw, by metric."""
    charts = {metric: run_chart(history, metric, run_label=run_label) for metric in CHARTS}
    return {metric: figure for metric, figure in charts.items() if figure is not None}
