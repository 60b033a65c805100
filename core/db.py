"""Database upkeep the services call after bulk writes."""

from __future__ import annotations

import logging

from django.db import connection

logger = logging.getLogger(__name__)


def tables_analyze(*models) -> None:
    """Refresh PostgreSQL's planner statistics of ``models``' tables now, after a bulk write.

    Autovacuum analyses a table only once about 10 % of it changed, so the rows of a new
    campaign in a table that already holds a large past one are unknown to the planner until
    then: it estimated one row for the new campaign and picked each annotator's next item
    with a nested loop over every open item × their answers (130–145 ms per pick, growing
    with each answer; 0.5 ms on ``review_item_queue_idx`` once analysed — issue 13,
    ``bench/review_bench.py --past-items``). ANALYZE samples a fixed number of rows (30,000 at
    the default statistics target), so it costs about the same at 10M rows as at 100k.
    Must run outside the transaction that wrote the rows, once they are committed, so other
    sessions' plans see them. Other databases: nothing to do."""
    if connection.vendor != "postgresql":
        return
    if connection.in_atomic_block:
        raise RuntimeError("tables_analyze must run after the bulk write's transaction commits")
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for model in models:
            cursor.execute(f"ANALYZE {quote(model._meta.db_table)}")
