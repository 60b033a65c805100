from django import template
from django.utils.safestring import mark_safe

from core.labels import name_label, verdict_label
from review.highlight import highlight_html

register = template.Library()


@register.filter
def highlight_query(text: str, query: str):
    """The passage escaped, then the query's terms wrapped in <mark> (see review/highlight.py:
    every piece of the output went through ``html.escape`` before it was joined)."""
    return mark_safe(highlight_html(text or "", query or ""))  # noqa: S308 - escaped above


# The same labels as every page's (``{% load labels %}``), for the templates that load these.
register.filter("verdict_label", verdict_label)
register.filter("name_label", name_label)
