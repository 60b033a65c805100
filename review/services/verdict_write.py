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


# Several accepted verdicts of one person in one campaign (the list-wise submit) in ONE
# statement: the rows travel as a VALUES list, numbered so that ids follow the list's order.
# Formatted with ``values``: one row of ``_ROW`` per verdict.
_ROW = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
_FIRST_ROW = (
    "(%s::int, %s::bigint, %s::bigint, %s::text, %s::text, %s::text, %s::text, %s::text,"
    " %s::boolean, %s::bigint, %s::boolean, %s::boolean, %s::boolean)"
)
_WRITE_MANY_SQL = f"""
WITH v (n, item_id, candidate_id, verdict, tag, rationale, note, client_token, blind,
        revises_id, finishes, agreed, release_hold) AS (VALUES {{values}}),
j AS (
  INSERT INTO {_J} (candidate_id, rater, rater_kind, user_id, verdict, tag, rationale, note,
                    model_name, prompt_version, prompt_hash, source_run, created_at)
  SELECT v.candidate_id, %s, %s, %s, v.verdict, v.tag, v.rationale, v.note, '', '', '', %s, %s
  FROM v ORDER BY v.n
  RETURNING id, candidate_id
), s AS (
  INSERT INTO {_S} (item_id, user_id, judgment_id, client_token, created_at, blind, revises_id)
  SELECT v.item_id, %s, j.id, v.client_token, %s, v.blind, v.revises_id
  FROM v JOIN j ON j.candidate_id = v.candidate_id ORDER BY v.n
  RETURNING id, judgment_id, item_id
), i AS (
  UPDATE {_I} it SET judgment_count = it.judgment_count + 1, done = v.finishes, agreed = v.agreed
  FROM v WHERE it.id = v.item_id
), c AS (
  UPDATE {_C} SET done_count = done_count + (SELECT COUNT(*) FROM v WHERE v.finishes)
  WHERE id = %s AND EXISTS (SELECT 1 FROM v WHERE v.finishes)
), l AS (
  DELETE FROM {_L} WHERE user_id = %s AND item_id IN (SELECT item_id FROM v WHERE v.release_hold)
)
SELECT s.item_id, s.id, s.judgment_id FROM s
"""


def verdicts_write(*, plans: list[dict]) -> list[ReviewSubmission]:
    """Write several accepted verdicts of one person in one campaign, each planned exactly as
    ``verdict_write``'s arguments (``queue.review_answer_plan``) and under its item's row
    lock: on PostgreSQL in ONE statement whatever their number (an item appears once: one
    answer per person and item), elsewhere one ``verdict_write`` each. Returns the
    submissions in the order of ``plans``."""
    if connection.vendor != "postgresql" or len(plans) < 2:
        return [verdict_write(**plan) for plan in plans]
    first = plans[0]
    campaign, user, now = first["campaign"], first["user"], first["now"]
    at = connection.ops.adapt_datetimefield_value(now)
    params = []
    for n, p in enumerate(plans):
        params += [
            n, p["item"].pk, p["item"].candidate_id, p["verdict"], p["tag"], p["rationale"],
            p["note"], p["client_token"], p["blind"], p["revises_id"], p["finishes"],
            p["agreed"] if p["finishes"] else None, p["release_hold"],
        ]  # fmt: skip
    params += [
        first["rater"], RaterKind.HUMAN.value, user.pk, f"campaign:{campaign.pk}", at,
        user.pk, at, campaign.pk, user.pk,
    ]  # fmt: skip
    values = ", ".join([_FIRST_ROW] + [_ROW] * (len(plans) - 1))
    with connection.cursor() as cursor:
        cursor.execute(_WRITE_MANY_SQL.format(values=values), params)
        written = {item_id: (sid, jid) for item_id, sid, jid in cursor.fetchall()}
    out = []
    for p in plans:
        submission_id, judgment_id = written[p["item"].pk]
        fields = {
            "candidate_id": p["item"].candidate_id, "rater": p["rater"],
            "rater_kind": RaterKind.HUMAN, "user": user, "verdict": p["verdict"],
            "tag": p["tag"], "rationale": p["rationale"], "note": p["note"],
            "source_run": f"campaign:{campaign.pk}",
        }  # fmt: skip
        judgment = _saved(Judgment(id=judgment_id, created_at=now, **fields))
        out.append(_saved(ReviewSubmission(
            id=submission_id, item=p["item"], user=user, judgment=judgment,
            client_token=p["client_token"], created_at=now, blind=p["blind"],
            revises_id=p["revises_id"],
        )))  # fmt: skip
    return out
