"""A job's stats on its page (core/templatetags/job_stats.py with a kind's StatsLayout)."""

from decimal import Decimal

from core.job_pages import StatsLayout
from core.templatetags.job_stats import number, stat_items, usd

LAYOUT = StatsLayout(
    shown=(("queries_added", "Queries added"), ("passages_added", "Passages added")),
    hidden=frozenset({"foreign_key_checks"}),
)


def test_the_layout_orders_names_and_hides_and_unknown_keys_still_show():
    # As PostgreSQL's jsonb hands a dict back: shorter keys first.
    stats = {"files": ["a.jsonl"], "passages_added": 12345, "queries_added": 1200,
             "foreign_key_checks": "set-based", "new_figure": 3}  # fmt: skip
    assert stat_items(stats, LAYOUT) == [
        ("Queries added", "1,200"),
        ("Passages added", "12,345"),
        ("Files", "a.jsonl"),  # not in the layout: after it, labelled from its spelling
        ("New figure", "3"),
    ]
    # Without a layout: the stored order, every key.
    assert [label for label, _ in stat_items(stats)][:2] == ["Files", "Passages added"]


def test_counts_have_thousands_separators_and_reasons_their_counts():
    assert number(42097) == "42,097" and number(7) == "7"
    assert stat_items({"failure_reasons": [["timeout", 3], ["HTTP 500", 1]]}) == [
        ("Failure reasons", "timeout (3), HTTP 500 (1)")
    ]


def test_dollars_read_alike_everywhere():
    assert usd("0.098791") == "$0.0988" and usd(Decimal("5.0000")) == "$5.0000"
    assert usd("0.1") == "$0.1000" and usd(None) == "—"
    assert stat_items({"cost_usd": "0.003100"}) == [("Cost USD", "$0.0031")]
