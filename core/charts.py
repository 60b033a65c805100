"""Charts as SVG shapes, for the training and evaluation pages. Pure Python: no Django.

A chart is a ``Figure``: a size, a title and a list of shapes (tag + attributes + text) with
axes, ticks, axis labels and a legend. ``templates/core/_chart.html`` draws it inline on a
page and ``chart.svg`` as a file of its own; both come from the same shapes, and every
colour and font is an attribute (not page CSS), so a downloaded SVG (or a PNG drawn from it)
looks like the page. Labels (task names, run names) are escaped by the template engine.

    line_chart(title=…, x_label="step", y_label="loss", series=[Series("loss", points)])
    bar_chart(title=…, categories=["SciFact", …], series=[Series("nDCG@10", values)], …)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# Colour-blind-safe (Okabe-Ito), the palette of the agreement report's plots.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
INK, MUTED, GRID = "#1f2328", "#59636e", "#d8dee4"
FONT = "system-ui, -apple-system, 'Segoe UI', sans-serif"


@dataclass
class Shape:
    tag: str  # line, polyline, rect, circle, text, title
    attrs: dict
    text: str = ""


@dataclass
class Figure:
    width: int
    height: int
    title: str
    description: str = ""  # the alt text: what the chart shows, in words
    shapes: list[Shape] = field(default_factory=list)

    def add(self, tag: str, text: str = "", **attrs) -> None:
        self.shapes.append(
            Shape(tag, {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}, text)
        )

    def text(self, x, y, text: str, *, size=12, colour=INK, anchor="start", **attrs) -> None:
        self.add("text", text, x=_r(x), y=_r(y), font_family=FONT, font_size=size, fill=colour,
                 text_anchor=anchor, **attrs)  # fmt: skip


@dataclass
class Series:
    name: str
    values: list  # line: [(x, y), …]; bar: one value (or None) per category


def _r(value: float) -> float:
    return round(value, 1)


def _finite(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 × 10^k apart) covering [low, high]."""
    if not (_finite(low) and _finite(high)):
        return [0.0, 1.0]
    if high < low:
        low, high = high, low
    if high == low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step + 1e-9) * step
    ticks, value = [], first
    while value < high + step * 0.999:
        ticks.append(round(value, 12))
        value += step
    return ticks


def tick_label(value: float, ticks: list[float]) -> str:
    """As many decimals as the tick spacing needs; large numbers with thousands separators;
    tiny ones (learning rates) in scientific notation."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    if value == 0:
        return "0"
    if step < 1e-3:
        return f"{value:.1e}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if step * 10**decimals % 1 > 1e-6:  # 2.5 × 10^k needs one more
        decimals += 1
    return f"{value:,.{decimals}f}"


def _legend(fig: Figure, series: list[Series], x: float, y: float) -> None:
    if len(series) < 2:
        return
    for index, item in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        fig.add("rect", x=_r(x), y=_r(y - 9), width=10, height=10, fill=colour)
        fig.text(x + 14, y, item.name, size=12, colour=INK)
        x += 30 + 8 * len(item.name)


def line_chart(
    *,
    title: str,
    series: list[Series],
    x_label: str,
    y_label: str,
    width: int = 580,
    height: int = 260,
) -> Figure | None:
    """Lines over a shared x axis, with ticks and labels on both axes; None when no series
    has two finite points."""
    clean = [
        Series(s.name, [(x, y) for x, y in s.values if _finite(x) and _finite(y)]) for s in series
    ]
    clean = [s for s in clean if len(s.values) >= 2]
    if not clean:
        return None
    xs = [x for s in clean for x, _ in s.values]
    ys = [y for s in clean for _, y in s.values]
    x_ticks = nice_ticks(min(xs), max(xs), 6)
    y_ticks = nice_ticks(min(ys), max(ys), 5)
    left, right, top, bottom = 72, 20, 34, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

    def px(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1) * plot_w

    def py(y: float) -> float:
        return top + plot_h - (y - y0) / ((y1 - y0) or 1) * plot_h

    description = "; ".join(
        f"{s.name} from {tick_label(s.values[0][1], y_ticks)} at {x_label} "
        f"{s.values[0][0]:g} to {tick_label(s.values[-1][1], y_ticks)} at {x_label} "
        f"{s.values[-1][0]:g}"
        for s in clean
    )
    fig = Figure(width, height, title, description)
    fig.add("rect", x=0, y=0, width=width, height=height, fill="#ffffff")
    fig.text(left, 18, title, size=14, colour=INK, font_weight="600")
    _legend(fig, clean, left + 8 + 7.5 * len(title), 18)
    for tick in y_ticks:
        fig.add("line", x1=left, x2=left + plot_w, y1=_r(py(tick)), y2=_r(py(tick)), stroke=GRID)
        fig.text(left - 6, py(tick) + 4, tick_label(tick, y_ticks), size=11, colour=MUTED,
                 anchor="end")  # fmt: skip
    for tick in x_ticks:
        fig.add("line", x1=_r(px(tick)), x2=_r(px(tick)), y1=top + plot_h, y2=top + plot_h + 4,
                stroke=MUTED)  # fmt: skip
        fig.text(px(tick), top + plot_h + 17, tick_label(tick, x_ticks), size=11, colour=MUTED,
                 anchor="middle")  # fmt: skip
    fig.add("line", x1=left, x2=left + plot_w, y1=top + plot_h, y2=top + plot_h, stroke=MUTED)
    fig.add("line", x1=left, x2=left, y1=top, y2=top + plot_h, stroke=MUTED)
    fig.text(left + plot_w / 2, height - 8, x_label, size=12, colour=INK, anchor="middle")
    fig.text(16, top + plot_h / 2, y_label, size=12, colour=INK, anchor="middle",
             transform=f"rotate(-90 16 {_r(top + plot_h / 2)})")  # fmt: skip
    for index, item in enumerate(clean):
        colour = PALETTE[index % len(PALETTE)]
        points = " ".join(f"{_r(px(x))},{_r(py(y))}" for x, y in item.values)
        fig.add("polyline", points=points, fill="none", stroke=colour, stroke_width=2,
                stroke_linejoin="round")  # fmt: skip
        last_x, last_y = item.values[-1]
        fig.add("circle", cx=_r(px(last_x)), cy=_r(py(last_y)), r=3, fill=colour)
    return fig


def bar_chart(
    *,
    title: str,
    categories: list[str],
    series: list[Series],
    value_label: str,
    maximum: float | None = None,
    width: int = 640,
    value_format: str = "{:.1f}",
) -> Figure | None:
    """Horizontal grouped bars: one group per category (a task), one bar per series (a
    metric), the value written at the end of each bar; None when there is no value."""
    values = [v for s in series for v in s.values if _finite(v)]
    if not categories or not values:
        return None
    ticks = nice_ticks(min(0.0, *values), maximum if maximum is not None else max(values), 5)
    label_w = min(220, 20 + 7 * max(len(c) for c in categories))
    left, right, top = label_w, 56, 50
    bar_h, gap = 14, 12
    group_h = bar_h * len(series) + gap
    plot_h = group_h * len(categories)
    height = top + plot_h + 44
    plot_w = width - left - right
    v0, v1 = ticks[0], ticks[-1]

    def px(v: float) -> float:
        return left + (v - v0) / ((v1 - v0) or 1) * plot_w

    fig = Figure(width, height, title, "")
    fig.add("rect", x=0, y=0, width=width, height=height, fill="#ffffff")
    fig.text(8, 18, title, size=14, colour=INK, font_weight="600")
    _legend(fig, series, left, 38)
    for tick in ticks:
        fig.add("line", x1=_r(px(tick)), x2=_r(px(tick)), y1=top, y2=top + plot_h, stroke=GRID)
        fig.text(px(tick), top + plot_h + 16, tick_label(tick, ticks), size=11, colour=MUTED,
                 anchor="middle")  # fmt: skip
    fig.text(left + plot_w / 2, height - 8, value_label, size=12, colour=INK, anchor="middle")
    words = []
    for ci, category in enumerate(categories):
        y = top + ci * group_h + gap / 2
        shown = category if len(category) <= 30 else category[:29] + "…"
        fig.text(left - 8, y + group_h / 2 - gap / 2 + 4, shown, size=12, colour=INK,
                 anchor="end")  # fmt: skip
        for si, item in enumerate(series):
            value = item.values[ci] if ci < len(item.values) else None
            by = y + si * bar_h
            if not _finite(value):
                fig.text(px(v0) + 4, by + bar_h - 3, "—", size=11, colour=MUTED)
                continue
            colour = PALETTE[si % len(PALETTE)]
            x_start, x_end = sorted((px(max(v0, 0.0)), px(value)))
            fig.add("rect", x=_r(x_start), y=_r(by), width=_r(max(x_end - x_start, 1)),
                    height=bar_h - 2, fill=colour)  # fmt: skip
            fig.add("title", f"{category} · {item.name}: {value_format.format(value)}")
            fig.text(x_end + 4, by + bar_h - 3, value_format.format(value), size=11,
                     colour=INK)  # fmt: skip
            words.append(f"{category} {item.name} {value_format.format(value)}")
    fig.add("line", x1=_r(px(v0)), x2=_r(px(v0)), y1=top, y2=top + plot_h, stroke=MUTED)
    fig.description = "; ".join(words)
    return fig
