"""A job's ``stats`` as a person reads them (``templates/htmx/_job_status.html``): in the
order and with the words of the kind's ``StatsLayout`` (``core/job_pages.py``) when the page
passes one, internals left out; any other key as words ("queries_added" → "Queries added");
numbers with thousands separators, dollars (a key ending in ``_usd``) as "$0.0988", lists
joined, yes/no for booleans, and nested dicts as "label value" pairs. It knows no job kind
itself; a page that has better words for its stats than a list of figures shows its own and
sets ``hide_stats``."""

from decimal import Decimal, InvalidOperation

from django import template

register = template.Library()

# Words a key's spelling cannot give.
WORDS = {"llm": "LLM", "usd": "USD", "id": "ID", "ids": "IDs", "url": "URL", "gpu": "GPU",
         "cpu": "CPU", "ndcg": "nDCG", "mrr": "MRR", "mb": "MB", "kb": "KB"}  # fmt: skip


def stat_label(key) -> str:
    words = str(key).replace("-", "_").split("_")
    words = [WORDS.get(w.lower(), w) for w in words if w]
    if not words:
        return str(key)
    first = words[0]
    return " ".join([first[:1].upper() + first[1:], *words[1:]])


def _counted(value) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) == 2
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def stat_value(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    if value is None or value == "" or value == [] or value == {}:
        return "—"
    if isinstance(value, list | tuple):
        if all(_counted(v) for v in value):  # [[reason, count], …] (a Counter's most_common)
            return ", ".join(f"{v[0]} ({stat_value(v[1])})" for v in value)
        return ", ".join(stat_value(v) for v in value)
    if isinstance(value, dict):
        return " · ".join(f"{stat_label(k).lower()} {stat_value(v)}" for k, v in value.items())
    return str(value)


def usd_text(value) -> str:
    """An amount in USD as every money figure reads: "$0.0988" (four decimals, the run and
    stage costs are stored to the micro-dollar); "—" when there is none."""
    if value is None or value == "":
        return "—"
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    return f"${amount:,.4f}"


def _stat_text(key, value) -> str:
    if str(key).endswith("_usd") and not isinstance(value, list | tuple | dict | bool):
        return usd_text(value)
    return stat_value(value)


@register.filter
def stat_items(stats, layout=None) -> list[tuple[str, str]]:
    """``job.stats|stat_items:stats_layout``: [(label, value as text), …], the layout's keys
    first in its order, then any key it does not name (in stored order), none it hides.
    Without a layout: every key in the stored order."""
    if not isinstance(stats, dict):
        return []
    shown = dict(layout.shown) if layout else {}
    hidden = layout.hidden if layout else frozenset()
    keys = [key for key in shown if key in stats]
    keys += [key for key in stats if key not in shown and key not in hidden]
    return [(shown.get(key) or stat_label(key), _stat_text(key, stats[key])) for key in keys]


@register.filter
def number(value) -> str:
    """``{{ count|number }}``: a count with thousands separators (42097 → 42,097)."""
    return stat_value(value)


@register.filter
def usd(value) -> str:
    """``{{ run.cost_usd|usd }}``: dollars with four decimals (0.098791 → $0.0988)."""
    return usd_text(value)
