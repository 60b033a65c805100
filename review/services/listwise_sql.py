"""The list-wise queue's SQL (used by ``listwise.py``): the same reads as the one-item queue
(``queue_sql.py``), made set-based, so that showing or answering a query's rows costs the
same number of statements for two rows as for forty. Portable SQL (PostgreSQL, SQLite >=
3.24); ``{ids}`` is formatted with one ``%s`` per item id."""

from __future__ import annotations

from curation.models import Candidate
from review.services.queue_sql import AGREE_COLUMNS, AGREE_FROM, ITEM, LOCK, SUB, state_columns

CANDIDATE = Candidate._meta.db_table

# My live hold on an item I have not answered, newest first: the list I was working on (or
# the item an undo gave back). Parameters: user, campaign, now, user.
HELD_SQL = f"""
SELECT l.item_id FROM {LOCK} l JOIN {ITEM} i ON i.id = l.item_id
WHERE l.user_id = %s AND i.campaign_id = %s AND l.expires_at > %s AND NOT i.done
  AND NOT EXISTS (SELECT 1 FROM {SUB} s
                  WHERE s.item_id = i.id AND s.user_id = %s AND s.undone_at IS NULL)
ORDER BY l.expires_at DESC, l.id DESC
LIMIT 1
"""

# The open items of the campaign whose candidates share the query of one item (the anchor),
# their rows locked; rows other transactions have locked right now are skipped, never waited
# for. Formatted with ``limit`` and ``for_update``. Parameters: campaign, anchor item.
ROWS_SQL = f"""
SELECT i.id FROM {ITEM} i JOIN {CANDIDATE} c ON c.id = i.candidate_id
WHERE i.campaign_id = %s AND NOT i.done
  AND c.query_id = (SELECT c2.query_id FROM {ITEM} i2 JOIN {CANDIDATE} c2
                    ON c2.id = i2.candidate_id WHERE i2.id = %s)
ORDER BY i.id
LIMIT {{limit}} {{for_update}}
"""

# The submit's row locks, taken in id order (so two lists of the same query never deadlock).
# Parameters: campaign, *ids.
LOCK_ROWS_SQL = f"SELECT id FROM {ITEM} WHERE campaign_id = %s AND id IN ({{ids}}) ORDER BY id"

# Each row's state (queue_sql.state_columns, the one-item read) and the agreement tallies of
# its active answers, in ONE statement; each row's client token is the list's token followed
# by its item id. Parameters: the state's (the token being the list's prefix), the tallies'
# (relevant, not relevant, the query-edit tag x 3), *ids, *ids.
STATE_SQL = f"""
SELECT {state_columns(token="%s || CAST(i.id AS TEXT)")},
  COALESCE(a.answers, 0), a.relevant, a.not_relevant, a.edits, a.edit_min, a.edit_max,
  a.changed
FROM {ITEM} i LEFT JOIN (
  SELECT s.item_id, {AGREE_COLUMNS}
  FROM {AGREE_FROM}
  WHERE s.item_id IN ({{ids}}) AND s.undone_at IS NULL
  GROUP BY s.item_id
) a ON a.item_id = i.id
WHERE i.id IN ({{ids}})
ORDER BY i.id
"""

# My holds on the rows of the list (or longer ones). Formatted with ``values``: one
# ``(%s, %s, %s)`` per row (item, user, expiry).
HOLDS_SQL = f"""
INSERT INTO {LOCK} (item_id, user_id, expires_at) VALUES {{values}}
ON CONFLICT (item_id, user_id) DO UPDATE SET expires_at = excluded.expires_at
"""

# My holds elsewhere in the campaign, dropped: I work on one query's rows at a time, and a
# stale hold would keep an item from the others. Parameters: user, campaign, *ids.
DROP_OTHER_HOLDS_SQL = f"""
DELETE FROM {LOCK} WHERE user_id = %s
  AND item_id IN (SELECT id FROM {ITEM} WHERE campaign_id = %s) AND item_id NOT IN ({{ids}})
"""
