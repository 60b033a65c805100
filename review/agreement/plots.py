"""Geometry of the report's plots, from the stored report JSON. Pure Python: no Django.

Each function returns a ``Figure`` (``core/charts.py``'s, as the other pages' charts): a size
and a list of shapes (tag + attributes + optional text). The page renders them as inline SVG
with the template engine, so every label — rater names come from user names and model ids —
is escaped like any other text, and the page needs no JavaScript and no CDN.
"""

from __future__ import annotations

import math

from core.charts import PALETTE, Figure

PAPER_COLOUR = "#999999"


def _finite(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _clip(text: str, limit: int) -> str:
    """Long rater names (model ids) are cut; the full name stays in the row's tooltip."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fmt(value) -> str:
    return f"{value:.3f}" if _finite(value) else "undefined"


def _first_tick(low: float) -> float:
    return round(math.ceil(low / 0.2 - 1e-9) * 0.2, 10)


def _x_range(values) -> tuple[float, float]:
    finite = [v for v in values if _finite(v)]
    low = min([-0.2, *finite])
    return math.floor(low * 10) / 10, 1.0


def kappa_per_stage(rows: list[dict], labels: dict[str, str]) -> Figure:
    """Cohen's κ of each machine rater against the human majority, with its 95% CI as a
    whisker, and the paper's κ for the same stage as a hollow grey diamond."""
    left, right, row_h, top = 250, 30, 30, 34
    width = 700
    fig = Figure(width, top + row_h * max(1, len(rows)) + 34, "Cohen's κ vs the human majority")
    values = [v for r in rows for v in (r.get("ci_low"), r.get("kappa"), r.get("paper_kappa"))]
    lo, hi = _x_range(values)
    plot_w = width - left - right

    def x(value: float) -> float:
        return round(left + (value - lo) / (hi - lo) * plot_w, 1)

    bottom = top + row_h * max(1, len(rows))
    tick = _first_tick(lo)
    while tick <= hi + 1e-9:
        fig.add("line", x1=x(tick), x2=x(tick), y1=top - 6, y2=bottom, class_="grid")
        fig.add(
            "text", f"{tick:.1f}", x=x(tick), y=bottom + 16, class_="tick", text_anchor="middle"
        )
        tick = round(tick + 0.2, 10)
    fig.add("line", x1=x(0), x2=x(0), y1=top - 6, y2=bottom, class_="axis")
    fig.add("text", "κ", x=left + plot_w / 2, y=bottom + 30, class_="tick", text_anchor="middle")
    fig.add("circle", cx=left, cy=12, r=5, fill=PALETTE[0])
    fig.add("text", "ours (95% CI)", x=left + 10, y=16, class_="legend")
    fig.add("rect", x=left + 120, y=7, width=9, height=9, fill="none", stroke=PAPER_COLOUR,
            transform=f"rotate(45 {left + 124.5} 11.5)")  # fmt: skip
    fig.add("text", "RLHN paper", x=left + 136, y=16, class_="legend")
    for i, row in enumerate(rows):
        y = top + row_h * i + row_h / 2
        label = labels.get(row["rater"], row["rater"])
        fig.add("text", _clip(label, 38), x=left - 10, y=y + 4, class_="label", text_anchor="end")
        if _finite(row.get("ci_low")) and _finite(row.get("ci_high")):
            fig.add("line", x1=x(row["ci_low"]), x2=x(row["ci_high"]), y1=y, y2=y,
                    stroke=PALETTE[0], stroke_width=2)  # fmt: skip
            for end in (row["ci_low"], row["ci_high"]):
                fig.add("line", x1=x(end), x2=x(end), y1=y - 5, y2=y + 5, stroke=PALETTE[0],
                        stroke_width=2)  # fmt: skip
        if _finite(row.get("kappa")):
            fig.add("circle", cx=x(row["kappa"]), cy=y, r=5, fill=PALETTE[0])
            fig.add("title", f"{label}: κ {_fmt(row['kappa'])} [{_fmt(row.get('ci_low'))}, "
                    f"{_fmt(row.get('ci_high'))}], n = {row.get('n', 0)}")  # fmt: skip
        if _finite(row.get("paper_kappa")):
            px = x(row["paper_kappa"])
            fig.add("rect", x=px - 4.5, y=y - 4.5, width=9, height=9, fill="none",
                    stroke=PAPER_COLOUR, stroke_width=2,
                    transform=f"rotate(45 {px} {y})")  # fmt: skip
    return fig


def confusion_heatmap(
    matrix: list[list[int]], *, rows_label: str, columns_label: str, categories: list[str]
) -> Figure:
    """Counts in each cell; the shade is the share of the row (what the row rater said,
    how the column rater saw it)."""
    k = len(categories)
    cell = 56
    left, top = 70, 70
    width = max(left + cell * k + 12, 260)
    fig = Figure(width, top + cell * k + 12, f"{rows_label} × {columns_label}")
    fig.add("text", "columns: " + _clip(columns_label, 34), x=8, y=14, class_="label")
    for j, name in enumerate(categories):
        cx = left + cell * j + cell / 2
        fig.add("text", _short(name), x=cx, y=top - 10, class_="tick", text_anchor="middle")
    fig.add("text", "rows: " + _clip(rows_label, 34), x=8, y=32, class_="label")
    for i, row in enumerate(matrix):
        total = sum(row) or 1
        y = top + cell * i
        fig.add("text", _short(categories[i]), x=left - 8, y=y + cell / 2 + 4, class_="tick",
                text_anchor="end")  # fmt: skip
        for j, count in enumerate(row):
            share = count / total
            fig.add("rect", x=left + cell * j, y=y, width=cell - 2, height=cell - 2,
                    fill=PALETTE[0], fill_opacity=round(0.08 + 0.85 * share, 3))  # fmt: skip
            shade = "count dark" if share > 0.5 else "count"
            fig.add("text", str(count), x=left + cell * j + cell / 2 - 1, y=y + cell / 2 + 4,
                    class_=shade, text_anchor="middle")  # fmt: skip
            fig.add("title", f"{categories[i]} / {categories[j]}: {count}")
    return fig


def _short(category: str) -> str:
    return {
        "relevant": "rel.",
        "not_relevant": "not rel.",
        "partly_relevant": "partly",
        "unsure": "unsure",
        "not a false negative": "no",
        "false negative": "FN",
    }.get(category, category)


def kappa_over_time(week_rows: list[dict], labels: dict[str, str]) -> Figure | None:
    """κ of each machine rater against the human majority per week, with CI whiskers."""
    if not week_rows:
        return None
    left, right, top, plot_h = 46, 250, 18, 200
    width = 760
    fig = Figure(width, top + plot_h + 44, "Cohen's κ vs the human majority, by week")
    values = [v for r in week_rows for m in r["machines"] for v in (m["ci_low"], m["kappa"])]
    lo, hi = _x_range(values)
    plot_w = width - left - right
    n = len(week_rows)

    def x(index: int) -> float:
        return round(left + (plot_w * (index + 0.5) / n), 1)

    def y(value: float) -> float:
        return round(top + (hi - value) / (hi - lo) * plot_h, 1)

    tick = _first_tick(lo)
    while tick <= hi + 1e-9:
        fig.add("line", x1=left, x2=left + plot_w, y1=y(tick), y2=y(tick), class_="grid")
        fig.add("text", f"{tick:.1f}", x=left - 6, y=y(tick) + 4, class_="tick", text_anchor="end")
        tick = round(tick + 0.2, 10)
    fig.add("line", x1=left, x2=left + plot_w, y1=y(0), y2=y(0), class_="axis")
    step = max(1, math.ceil(n / 8))
    for i, row in enumerate(week_rows):
        if i % step == 0:
            fig.add("text", row["value"], x=x(i), y=top + plot_h + 18, class_="tick",
                    text_anchor="middle")  # fmt: skip
    raters = [m["rater"] for m in week_rows[0]["machines"]]
    for s, rater in enumerate(raters):
        colour = PALETTE[s % len(PALETTE)]
        label = labels.get(rater, rater)
        points = []
        for i, row in enumerate(week_rows):
            m = next((m for m in row["machines"] if m["rater"] == rater), None)
            if m is None or not _finite(m["kappa"]):
                continue
            points.append(f"{x(i)},{y(m['kappa'])}")
            if _finite(m["ci_low"]) and _finite(m["ci_high"]):
                fig.add("line", x1=x(i), x2=x(i), y1=y(m["ci_low"]), y2=y(m["ci_high"]),
                        stroke=colour, stroke_opacity=0.5)  # fmt: skip
            fig.add("circle", cx=x(i), cy=y(m["kappa"]), r=3.5, fill=colour)
            fig.add("title", f"{label}, week of {row['value']}: κ {_fmt(m['kappa'])}, "
                    f"n = {m['n']}")  # fmt: skip
        if len(points) > 1:
            fig.add("polyline", points=" ".join(points), fill="none", stroke=colour,
                    stroke_width=1.5)  # fmt: skip
        ly = top + 14 + 18 * s
        fig.add("line", x1=left + plot_w + 14, x2=left + plot_w + 32, y1=ly - 4, y2=ly - 4,
                stroke=colour, stroke_width=2)  # fmt: skip
        fig.add("text", _clip(label, 34), x=left + plot_w + 38, y=ly, class_="legend")
    return fig
