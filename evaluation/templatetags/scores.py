"""Score formatting for the leaderboard: MTEB shows nDCG@10 in points (0.6451 → 64.51)."""

from django import template

register = template.Library()


@register.filter
def points(value) -> str:
    return "—" if value is None else f"{value * 100:.2f}"


@register.filter
def delta_points(value) -> str:
    return "" if value is None else f"{value * 100:+.2f}"


@register.filter
def at(sequence, index):
    """``row.scores|at:forloop.counter0``: pairs a row's values with the task columns."""
    try:
        return sequence[index]
    except (IndexError, TypeError):
        return None
