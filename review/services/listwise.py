"""List-wise review: every item of one query that I can still answer, on one screen, held
for me together and answered with one submit (``review/review_queue.md``, "List-wise mode").

Judging a query's negatives side by side is faster than one at a time (the query and its
positive are read once) and closer to how the LLM judges saw them. The queue's rules stay
the one-item queue's (``queue_rules.py``, ``queue.py``), applied to each row:

* the list is the query of the first item the one-item queue would serve me (or the query I
  was working on: a live hold of mine), and its rows are the query's items with room for me
  (``item_has_room``); I hold every row I am shown, and holds elsewhere in the campaign go;
* the submit locks the answered rows (in id order), reads their state fresh in ONE
  statement, and accepts or refuses each row with the one-item submit's own checks
  (``verdict_check``, ``review_answer_check``) and plans its write the same way
  (``review_answer_plan``: blind answers, revisions, the k-th answer's agreement);
* reads are set-based (``listwise_sql.py``) and, on PostgreSQL, the accepted rows are
  written in one statement (``verdict_write.verdicts_write``): a list of forty rows costs
  the statements of a list of two.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.errors import ApplicationError
from curation.models import Verdict
from review.models import CampaignStatus, ReviewCampaign, ReviewItem, ReviewLock, ReviewSubmission
from review.services import listwise_sql as sql

# The one-item queue's rules: the list applies exactly them, row by row.
from review.services.queue import review_answer_check, review_answer_plan
from review.services.queue_rules import (
    BUSY,
    CLIENT_TOKEN_RE,
    PICK_ATTEMPTS,
    QUERY_EDIT_TAG,
    hold_expiry,
    item_from_state_row,
    item_has_room,
    item_pick,
    item_state_params,
    item_wait_for_busy,
    verdict_check,
)
from review.services.verdict_write import verdicts_write

# A query has tens of candidates at most; a screen of more would not be read.
LIST_MAX = 50
# A row's client token is the list's token, "-" and the item id: it must stay a valid token.
LIST_TOKEN_MAX = 40


def review_list_next_for_user(*, campaign: ReviewCampaign, user) -> list[ReviewItem]:
    """The rows ``user`` should judge next in ``campaign``: the open items of one query that
    have room for them, each held for them (``LOCK_SECONDS``); empty when nothing is left.
    A list they were working on (live holds) is served again, less the rows answered."""
    found = _list_next(campaign=campaign, user=user)
    if found is BUSY:
        # What is left is locked by other people's verdicts right now: the one-item queue's
        # slow path waits for one such item and holds it; its query is then the list.
        if item_wait_for_busy(campaign=campaign, user=user) is None:
            return []
        found = _list_next(campaign=campaign, user=user)
    return [] if found is BUSY else found


def _list_next(*, campaign: ReviewCampaign, user):
    """One try without waiting on anyone: the rows, [] (nothing left) or ``BUSY``."""
    if campaign.status != CampaignStatus.ACTIVE:
        return []
    now = timezone.now()
    with transaction.atomic(savepoint=False):
        with connection.cursor() as cursor:
            cursor.execute(sql.HELD_SQL, [user.pk, campaign.pk, _at(now), user.pk])
            held = cursor.fetchone()
        if held is not None:
            rows = _list_take(campaign=campaign, user=user, now=now, anchor=held[0])
            if rows:
                return rows
            # The query I held has no room for me any more: let those holds go.
            ReviewLock.objects.filter(user=user, item__campaign=campaign).delete()
        skipped: list[int] = []
        for _ in range(PICK_ATTEMPTS):
            picked = item_pick(campaign=campaign, user=user, now=now, skipped=skipped)
            if picked is None:
                break
            rows = _list_take(campaign=campaign, user=user, now=now, anchor=picked)
            if rows:
                return rows
            skipped.append(picked)
        else:
            return BUSY
        if item_pick(campaign=campaign, user=user, now=now, skipped=skipped, lock=False) is None:
            return []
        return BUSY


def _list_take(*, campaign: ReviewCampaign, user, now, anchor: int) -> list[ReviewItem]:
    """Lock the open items of ``anchor``'s query (skipping rows other transactions have
    locked), read their state fresh, and hold the ones with room for ``user``: the list.
    Four statements whatever the number of rows."""
    lock = ""
    if connection.features.has_select_for_update_skip_locked:
        lock = "FOR UPDATE OF i SKIP LOCKED"
    with connection.cursor() as cursor:
        cursor.execute(sql.ROWS_SQL.format(limit=LIST_MAX, for_update=lock), [campaign.pk, anchor])
        ids = [row[0] for row in cursor.fetchall()]
    if not ids:
        return []
    # A fresh read, as the one-item queue's: the locking statement's snapshot may predate a
    # hold another annotator committed on one of these rows a moment ago.
    items = _list_state(ids=ids, user=user, now=now)
    rows = [
        item
        for item in items
        if not item.done
        and not item.answered_by_me
        and (item.held_by_me or item_has_room(item, campaign.overlap))
    ]
    if rows:
        _list_hold(campaign=campaign, user=user, now=now, ids=[item.pk for item in rows])
    return rows


def _list_state(*, ids: list[int], user, now, token: str = "") -> list[ReviewItem]:
    """Each item's state (``item_state_read``'s columns) with its agreement tallies, in one
    statement; ``token``: the list's client token (a row's is the token + its id)."""
    marks = ", ".join(["%s"] * len(ids))
    params = item_state_params(user=user, now=now, client_token=f"{token}-")
    params += [Verdict.RELEVANT, Verdict.NOT_RELEVANT, *[QUERY_EDIT_TAG] * 3, *ids, *ids]
    with connection.cursor() as cursor:
        cursor.execute(sql.STATE_SQL.format(ids=marks), params)
        return [item_from_state_row(row) for row in cursor.fetchall()]


def _list_hold(*, campaign: ReviewCampaign, user, now, ids: list[int]) -> None:
    """Hold every row of the list for ``user`` and drop their holds elsewhere in the
    campaign (a person works on one list at a time, as on one item)."""
    expires = _at(hold_expiry(now))
    values = ", ".join(["(%s, %s, %s)"] * len(ids))
    with connection.cursor() as cursor:
        params = [value for item_id in ids for value in (item_id, user.pk, expires)]
        cursor.execute(sql.HOLDS_SQL.format(values=values), params)
        marks = ", ".join(["%s"] * len(ids))
        cursor.execute(sql.DROP_OTHER_HOLDS_SQL.format(ids=marks), [user.pk, campaign.pk, *ids])


def _at(moment):
    return connection.ops.adapt_datetimefield_value(moment)


@dataclass
class ListSubmitResult:
    # The answers of this submit, by item id: written now, or found (the same token sent
    # twice writes nothing the second time).
    submissions: list[ReviewSubmission]
    # Rows not saved, with why (another annotator filled the item meanwhile, …).
    refused: list[tuple[int, str]] = field(default_factory=list)
    next_items: list[ReviewItem] = field(default_factory=list)


def review_list_submit(
    *, campaign: ReviewCampaign, user, answers: list[tuple[int, str]], client_token: str
) -> ListSubmitResult:
    """Save ``user``'s verdicts on the rows of a list (``answers``: (item id, verdict)) and
    serve the next list, in ONE transaction, each row by the one-item submit's rules: a row
    another annotator filled while it waited, or one already answered, is refused on its
    own and the others are saved. Rows left unanswered stay held and come back in the next
    list. The same ``client_token`` twice saves nothing new."""
    token = client_token or ""
    if not CLIENT_TOKEN_RE.match(token) or len(token) > LIST_TOKEN_MAX:
        raise ApplicationError("a missing or malformed client token", detail={"field": "token"})
    verdicts = dict(answers)
    if not verdicts:
        raise ApplicationError("answer at least one row", detail={"code": "empty"})
    if len(verdicts) > LIST_MAX:
        raise ApplicationError("too many rows in one list", detail={"code": "too_many"})
    try:
        with transaction.atomic():
            result = _list_record(campaign=campaign, user=user, verdicts=verdicts, token=token)
            found = _list_next(campaign=campaign, user=user)
    except IntegrityError:
        # A race the row locks did not see (the same token sent at once from two tabs).
        raise ApplicationError(
            "these answers were saved already", detail={"code": "already_answered"}
        ) from None
    if found is BUSY:
        found = review_list_next_for_user(campaign=campaign, user=user)
    result.next_items = found
    return result


def _list_record(
    *, campaign: ReviewCampaign, user, verdicts: dict[int, str], token: str
) -> ListSubmitResult:
    """Lock the answered rows (id order), read their state fresh in one statement, and write
    the answers the one-item rules accept; the others are refused one by one."""
    now = timezone.now()
    ids = sorted(verdicts)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        marks = ", ".join(["%s"] * len(ids))
        cursor.execute(sql.LOCK_ROWS_SQL.format(ids=marks) + lock, [campaign.pk, *ids])
        ids = [row[0] for row in cursor.fetchall()]
    if campaign.status != CampaignStatus.ACTIVE:
        raise ApplicationError("this campaign is closed", detail={"code": "closed"})
    result = ListSubmitResult(submissions=[])
    result.refused = [
        (i, "no such item in this campaign") for i in sorted(set(verdicts) - set(ids))
    ]
    duplicates, plans = [], []
    for item in _list_state(ids=ids, user=user, now=now, token=token) if ids else []:
        if item.token_used:
            duplicates.append(f"{token}-{item.pk}")
            continue
        verdict = verdicts[item.pk]
        try:
            verdict_check(item=item, verdict=verdict, edited_query="")
            review_answer_check(item=item, campaign=campaign)
        except ApplicationError as exc:
            result.refused.append((item.pk, exc.message))
            continue
        plans.append(
            review_answer_plan(
                campaign=campaign,
                item=item,
                user=user,
                verdict=verdict,
                edited_query="",
                note="",
                client_token=f"{token}-{item.pk}",
                now=now,
            )
        )
    # Every accepted row in one statement (PostgreSQL), each planned by the one-item rules.
    result.submissions = verdicts_write(plans=plans)
    if duplicates:
        found = ReviewSubmission.objects.filter(client_token__in=duplicates, user=user)
        result.submissions += found.select_related("judgment", "item")
        result.submissions.sort(key=lambda submission: submission.item_id)
    return result
