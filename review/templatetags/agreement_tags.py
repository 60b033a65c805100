"""Formatting for the agreement report page: undefined statistics (stored as null) read as
"undefined", never as 0."""

import math

from django import template

register = template.Library()


def _defined(value) -> bool:
    return isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value))


@register.filter
def stat(value, digits: int = 3) -> str:
    return f"{value:.{int(digits)}f}" if _defined(value) else "undefined"


@register.filter
def percent(value) -> str:
    return f"{100 * value:.1f}%" if _defined(value) else "undefined"


@register.filter
def interval(row, name: str) -> str:
    """``row|interval:"precision"``: ``[low, high]`` from the row's ``<name>_ci_low`` and
    ``<name>_ci_high``; "undefined" where they are null, "—" in a report computed before it
    had them (stored reports are never rewritten)."""
    if not isinstance(row, dict) or f"{name}_ci_low" not in row:
        return "—"
    low, high = row.get(f"{name}_ci_low"), row.get(f"{name}_ci_high")
    if not (_defined(low) and _defined(high)):
        return "undefined"
    return f"[{stat(low)}, {stat(high)}]"


@register.filter
def level_percent(value) -> str:
    """A confidence level as a person reads it: 0.95 → "95%"."""
    return f"{100 * value:g}%" if _defined(value) else "95%"


@register.filter
def lookup(mapping, key):
    """``labels|lookup:key``: the label of a rater key (the key itself when unknown)."""
    if isinstance(mapping, dict):
        return mapping.get(key, key)
    return key


@register.inclusion_tag("review/agreement_svg.html")
def svg_figure(figure, css_class: str = ""):
    return {"figure": figure, "css_class": css_class}
