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


@register.filter
def task_name(spec, labels=None) -> str:
    """A task spec as pages name it (``dataset:3`` → the dataset's name, ``beir:scifact`` →
    ``scifact``): ``labels`` when the page has them (``board.task_labels``), else looked up."""
    if isinstance(labels, dict) and spec in labels:
        return labels[spec]
    from evaluation.services.task_specs import evaluation_task_labels

    return evaluation_task_labels([str(spec)]).get(str(spec), str(spec))
