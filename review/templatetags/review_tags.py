from django import template
from django.utils.safestring import mark_safe

from review.highlight import highlight_html

register = template.Library()


@register.filter
def highlight_query(text: str, query: str):
    """The passage escaped, then the query's terms wrapped in <mark> (see review/highlight.py:
    every piece of the output went through ``html.escape`` before it was joined)."""
    return mark_safe(highlight_html(text or "", query or ""))  # noqa: S308 - escaped above


@register.filter
def verdict_label(verdict: str) -> str:
    """``not_relevant`` → ``not relevant``: how a person reads a verdict."""
    return (verdict or "").replace("_", " ")
