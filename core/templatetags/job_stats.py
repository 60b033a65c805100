"""A job's ``stats`` as a person reads them (``templates/htmx/_job_status.html``): every key
as words ("queries_added" → "Queries added"), numbers with thousands separators, lists
joined, yes/no for booleans, and nested dicts as "label value" pairs. Generic on purpose:
it knows no job kind; a page that has better words for its stats shows its own figures and
sets ``hide_stats``."""

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
        return ", ".join(stat_value(v) for v in value)
    if isinstance(value, dict):
        return " · ".join(f"{stat_label(k).lower()} {stat_value(v)}" for k, v in value.items())
    return str(value)


@register.filter
def stat_items(stats) -> list[tuple[str, str]]:
    """``job.stats|stat_items``: [(label, value as text), …] in the stored order."""
    if not isinstance(stats, dict):
        return []
    return [(stat_label(key), stat_value(value)) for key, value in stats.items()]
