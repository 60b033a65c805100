"""``{% load labels %}``: stored names as people read them (``core/labels.py``)."""

from django import template

from core import labels

register = template.Library()

register.filter("verdict_label", labels.verdict_label)
register.filter("name_label", labels.name_label)
