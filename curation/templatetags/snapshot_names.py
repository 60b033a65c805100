"""A snapshot's policy as pages name it: its short name (``relabel``, as the papers and the
file names say it), with what it does on hover, ``{% policy_name snapshot.policy %}`` →
``<span class="policy" title="relabel: move false negatives to the positives">relabel</span>``.
Used by the curation, training, evaluation and experiments pages."""

from __future__ import annotations

from django import template
from django.utils.html import format_html

from curation.models import SnapshotPolicy

register = template.Library()

POLICY_LABELS = dict(SnapshotPolicy.choices)


@register.simple_tag
def policy_name(policy) -> str:
    policy = str(policy or "")
    if not policy:
        return "—"
    return format_html(
        '<span class="policy" title="{}">{}</span>', POLICY_LABELS.get(policy, policy), policy
    )
