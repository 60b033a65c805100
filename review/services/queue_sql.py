"""The review queue's hot path in SQL (used by ``queue_rules.py`` and ``queue.py``). These
run on every verdict and are written by hand: Django compiling them costs more than
PostgreSQL running them (the ORM versions were ~1 ms each of Python on this machine, the
statements ~0.1-0.5 ms). Portable SQL (PostgreSQL, SQLite >= 3.24); PostgreSQL gets
``FOR UPDATE SKIP LOCKED`` and, where a read and a write can share one statement, one
statement (``STATE_HOLD_SQL``).

Issue 13 counted statements per verdict: each is a round trip (~1 ms under load), so the
state read carries the k-th answer's agreement tallies (``STATE_AGREE_SQL``) and, on
PostgreSQL, the next item's state read takes its hold in the same statement."""

from __future__ import annotations

from curation.models import Judgment
from review.models import ReviewItem, ReviewLock, ReviewSubmission

ITEM, SUB, LOCK = (m._meta.db_table for m in (ReviewItem, ReviewSubmission, ReviewLock))
JUDGMENT = Judgment._meta.db_table

ROW_LOCK_SQL = f"SELECT id FROM {ITEM} WHERE id = %s AND campaign_id = %s"

# The hold, or a longer one if it exists.
HOLD_SQL = f"""
INSERT INTO {LOCK} (item_id, user_id, expires_at) VALUES (%s, %s, %s)
ON CONFLICT (item_id, user_id) DO UPDATE SET expires_at = excluded.expires_at
"""


# An item and what one user's request needs to know of it (queue_rules.item_state_read).
# Parameters (queue_rules.item_state_params): user, user, now, user, now, client token, user,
# user. ``token``: the SQL the client token is compared with (the list-wise submit appends
# each row's item id to one token per list).
def state_columns(*, token: str = "%s") -> str:
    return f"""i.id, i.campaign_id, i.candidate_id, i.stratum, i.position, i.judgment_count,
  i.done,
  EXISTS (SELECT 1 FROM {SUB} s
          WHERE s.item_id = i.id AND s.user_id = %s AND s.undone_at IS NULL) AS answered_by_me,
  EXISTS (SELECT 1 FROM {LOCK} l
          WHERE l.item_id = i.id AND l.user_id = %s AND l.expires_at > %s) AS held_by_me,
  (SELECT COUNT(*) FROM {LOCK} l
   WHERE l.item_id = i.id AND l.user_id <> %s AND l.expires_at > %s) AS held_by_others,
  EXISTS (SELECT 1 FROM {SUB} s WHERE s.client_token = {token}) AS token_used,
  (SELECT s.id FROM {SUB} s WHERE s.item_id = i.id AND s.user_id = %s AND s.blind)
    AS blind_answer_id,
  EXISTS (SELECT 1 FROM {SUB} s WHERE s.item_id = i.id AND s.user_id = %s) AS answered_before"""


_STATE_COLUMNS = state_columns()

STATE_SQL = f"SELECT {_STATE_COLUMNS} FROM {ITEM} i WHERE i.id = %s"

# The tallies of an item's active answers that decide whether its k answers agree
# (queue.answers_agree). Parameters: relevant, not relevant, the query-edit tag × 3, item.
AGREE_COLUMNS = """COUNT(*) AS answers,
  SUM(CASE WHEN j.verdict = %s THEN 1 ELSE 0 END) AS relevant,
  SUM(CASE WHEN j.verdict = %s THEN 1 ELSE 0 END) AS not_relevant,
  SUM(CASE WHEN j.tag = %s THEN 1 ELSE 0 END) AS edits,
  MIN(CASE WHEN j.tag = %s THEN j.rationale END) AS edit_min,
  MAX(CASE WHEN j.tag = %s THEN j.rationale END) AS edit_max,
  SUM(CASE WHEN bj.id IS NOT NULL AND (bj.verdict <> j.verdict OR bj.tag <> j.tag
                                       OR bj.rationale <> j.rationale) THEN 1 ELSE 0 END)
    AS changed"""
AGREE_FROM = f"""{SUB} s JOIN {JUDGMENT} j ON j.id = s.judgment_id
  LEFT JOIN {SUB} b ON b.id = s.revises_id
  LEFT JOIN {JUDGMENT} bj ON bj.id = b.judgment_id"""
AGREE_SQL = f"""
SELECT {AGREE_COLUMNS}
FROM {AGREE_FROM}
WHERE s.item_id = %s AND s.undone_at IS NULL
"""

# The state and the tallies in one statement, for the submit (its answer may be the k-th).
# Parameters: the state's, then the tallies', then the item.
STATE_AGREE_SQL = f"SELECT {_STATE_COLUMNS}, a.* FROM {ITEM} i, ({AGREE_SQL}) a WHERE i.id = %s"

# PostgreSQL: the state of a picked item and, when it has room for the user, their hold, in
# one statement (both see the same snapshot, taken after the row lock). Parameters: the
# state's, the item, then user, expiry, overlap. The last column says whether the hold was
# taken. The room test is queue_rules.item_has_room's.
STATE_HOLD_SQL = f"""
WITH st AS (SELECT {_STATE_COLUMNS} FROM {ITEM} i WHERE i.id = %s),
h AS (
  INSERT INTO {LOCK} (item_id, user_id, expires_at)
  SELECT st.id, %s, %s FROM st
  WHERE NOT st.done AND NOT st.answered_by_me AND st.judgment_count + st.held_by_others < %s
  ON CONFLICT (item_id, user_id) DO UPDATE SET expires_at = excluded.expires_at
  RETURNING item_id
)
SELECT st.*, EXISTS (SELECT 1 FROM h) FROM st
"""

# The first open item for a user, least answered first. Formatted with ``skipped`` (ids to
# look past) and ``for_update``. Parameters: campaign, user, user, now, overlap, *skipped.
PICK_SQL = f"""
SELECT i.id FROM {ITEM} i
WHERE i.campaign_id = %s AND NOT i.done
  AND NOT EXISTS (SELECT 1 FROM {SUB} s
                  WHERE s.item_id = i.id AND s.user_id = %s AND s.undone_at IS NULL)
  AND (SELECT COUNT(*) FROM {LOCK} l
       WHERE l.item_id = i.id AND l.user_id <> %s AND l.expires_at > %s) < %s - i.judgment_count
  {{skipped}}
ORDER BY i.judgment_count, i.position
LIMIT 1 {{for_update}}
"""
