"""Writing one accepted verdict: the append-only human ``Judgment``, the ``ReviewSubmission``
that counts it, the item's counters, the campaign's done counter when the item is finished,
and the annotator's hold released.

``judgment_submit`` (``queue.py``) decides everything first, under the item's row lock:
whether the answer is accepted, what kind it is (blind answer, revision), whether it
finishes the item and, if so, whether the item's answers agree. What is left is writing, and
on PostgreSQL that is ONE statement (data-modifying CTEs): five statements each compiled by
the ORM were ~35 % of the service's time and four of the ~20 statements of a verdict's
request (issue 13). Other databases (SQLite, the embedded setup) write the same rows with the
ORM, one statement each.
"""

from __future__ import annotations

from datetime import datetime

from django.db import connection
from django.db.models import F

from curation.models import Judgment, RaterKind
from review.models import ReviewCampaign, ReviewItem, ReviewLock, ReviewSubmission

_J, _S, _I, _C, _L = (
    m._meta.db_table for m in (Judgment, ReviewSubmission, ReviewItem, ReviewCampaign, ReviewLock)
)
# Every DML in a WITH runs exactly once, to completion, whether or not the final SELECT
# reads its output (PostgreSQL docs, "Data-Modifying Statements in WITH"); a unique
# violation in any of them raises IntegrityError as the ORM's inserts did.
_WRITE_SQL = f"""
WITH j AS (
  INSERT INTO {_J} (candidate_id, rater, rater_kind, user_id, verdict, tag, rationale, note,
                    model_name, prompt_version, prompt_hash, source_run, created_at)
  VALUES (%s, %s, %s, %s, %s, %s, %s, %s, '', '', '', %s, %s)
  RETURNING id
), s AS (
  INSERT INTO {_S} (item_id, user_id, judgment_id, client_token, created_at, blind, revises_id)
  SELECT %s, %s, j.id, %s, %s, %s, %s FROM j
  RETURNING id, judgment_id
), i AS (
  UPDATE {_I} SET judgment_count = judgment_count + 1, done = %s, agreed = %s WHERE id = %s
), c AS (
  UPDATE {_C} SET done_count = done_count + 1 WHERE id = %s AND %s
), l AS (
  DELETE FROM {_L} WHERE item_id = %s AND user_id = %s AND %s
)
SELECT s.id, s.judgment_id FROM s
"""


def verdict_write(
    *,
    campaign: ReviewCampaign,
    item: ReviewItem,
    user,
    rater: str,
    verdict: str,
    tag: str,
    rationale: str,
    note: str,
    client_token: str,
    blind: bool,
    revises_id: int | None,
    now: datetime,
    finishes: bool,
    agreed: bool | None,
    release_hold: bool,
) -> ReviewSubmission:
    """Write the verdict (call under the item's row lock, inside the submit's transaction).
    ``finishes``: this answer is the item's k-th (``done`` and the campaign's counter move,
    ``agreed`` is stored); ``release_hold``: the user held the item. Returns the submission
    with its judgment, as the ORM would have."""
    fields = {
        "candidate_id": item.candidate_id, "rater": rater, "rater_kind": RaterKind.HUMAN,
        "user": user, "verdict": verdict, "tag": tag, "rationale": rationale, "note": note,
        "source_run": f"campaign:{campaign.pk}",
    }  # fmt: skip
    if connection.vendor != "postgresql":
        return _write_orm(
            campaign, item, user, fields, client_token, blind, revises_id, finishes, agreed,
            release_hold,
        )  # fmt: skip
    at = connection.ops.adapt_datetimefield_value(now)
    params = [
        item.candidate_id, rater, RaterKind.HUMAN.value, user.pk, verdict, tag, rationale, note,
        fields["source_run"], at,
        item.pk, user.pk, client_token, at, blind, revises_id,
        finishes, agreed if finishes else None, item.pk,
        campaign.pk, finishes,
        item.pk, user.pk, release_hold,
    ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(_WRITE_SQL, params)
        submission_id, judgment_id = cursor.fetchone()
    judgment = _saved(Judgment(id=judgment_id, created_at=now, **fields))
    return _saved(
        ReviewSubmission(
            id=submission_id, item=item, user=user, judgment=judgment, client_token=client_token,
            created_at=now, blind=blind, revises_id=revises_id,
        )
    )  # fmt: skip


def _saved(instance):
    instance._state.adding = False
    instance._state.db = connection.alias
    return instance


def _write_orm(
    campaign, item, user, fields, client_token, blind, revises_id, finishes, agreed, release_hold
) -> ReviewSubmission:
    judgment = Judgment.objects.create(**fields)
    submission = ReviewSubmission.objects.create(
        item=item, user=user, judgment=judgment, client_token=client_token, blind=blind,
        revises_id=revises_id,
    )  # fmt: skip
    ReviewItem.objects.filter(pk=item.pk).update(
        judgment_count=F("judgment_count") + 1, done=finishes, agreed=agreed if finishes else None
    )
    if finishes:
        ReviewCampaign.objects.filter(pk=campaign.pk).update(done_count=F("done_count") + 1)
    if release_hold:
        ReviewLock.objects.filter(item_id=item.pk, user=user).delete()
    return submission
