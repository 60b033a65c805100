"""The review queue: who judges what next, saving a verdict, undo. The flow and the reasons
behind each lock are in ``review/review_queue.md``; in short:

* every write that changes an item's answers or holds (submit, undo, taking a hold) first
  takes the item's ROW lock, so "fewer than k answers and holds" is checked and changed by
  one transaction at a time;
* the next item is picked with ``SELECT … FOR UPDATE SKIP LOCKED``: annotators asking at the
  same moment walk past each other's rows instead of queueing behind them;
* the pick is re-checked in a fresh statement once the row lock is held, because the picking
  statement's snapshot may predate a hold that another annotator committed a moment ago.

On SQLite ``select_for_update`` is a no-op, but Sieve's SQLite transactions are IMMEDIATE
(one writer at a time), so the same code is correct there, only sequential.

The rules for one item (row lock, state read, room, pick, hold, the wait when busy) are in
``queue_rules.py``, shared with the list-wise mode; the statements in ``queue_sql.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction
from django.db.models import F, IntegerField, Subquery
from django.utils import timezone

from core.errors import ApplicationError
from curation.models import Decision, DecisionSource, Judgment, Verdict
from review.models import CampaignStatus, ReviewCampaign, ReviewItem, ReviewLock, ReviewSubmission
from review.services.blind import answer_kind
from review.services.queue_rules import (
    BUSY,
    CLIENT_TOKEN_RE,
    PICK_ATTEMPTS,
    QUERY_EDIT_TAG,
    hold_expiry,
    item_from_state_row,
    item_has_room,
    item_hold,
    item_pick,
    item_row_lock,
    item_state_params,
    item_state_read,
    item_wait_for_busy,
    verdict_check,
)
from review.services.queue_sql import STATE_HOLD_SQL
from review.services.verdict_write import verdict_write


class SubqueryCount(Subquery):
    """``(SELECT COUNT(*) FROM (<subquery>))`` — a count per outer row without a GROUP BY on
    the outer query (PostgreSQL refuses FOR UPDATE together with GROUP BY)."""

    template = "(SELECT COUNT(*) FROM (%(subquery)s) _count)"
    output_field = IntegerField()


def campaign_rater(user) -> str:
    return f"user:{user.get_username()}"


def answers_agree(
    *,
    answers: int,
    relevant: int,
    not_relevant: int,
    edits: int,
    edit_min,
    edit_max,
    changed_after_reveal: int = 0,
) -> bool:
    """Whether a finished item's answers settle it without a curator: every answer says the
    same decidable label (relevant or not relevant; "partly" and "unsure" need a curator)
    and, for synthetic triplets, nobody or everybody proposed the same rewrite of the query.
    An answer revised after the reveal of a blind campaign that differs from its blind
    answer (``changed_after_reveal``) always needs a curator (review/services/blind.py).
    """
    same_label = answers > 0 and answers in (relevant, not_relevant)
    same_edit = edits == 0 or (edits == answers and edit_min == edit_max)
    return same_label and same_edit and not changed_after_reveal


def _agreed_with(
    *, tallies: tuple, verdict: str, tag: str, rationale: str, revises_id: int | None
) -> bool:
    """``answers_agree`` for the item's active answers (``tallies``, read with its state
    under the item's row lock: ``AGREE_SQL``'s columns) plus the one about to be written (its
    k-th), so the write is one statement. ``revises_id``: the new answer revises this blind
    answer (then it counts as changed unless it repeats it)."""
    answers, relevant, not_relevant, edits, edit_min, edit_max, changed = tallies
    edited = [e for e in (edit_min, edit_max) if e is not None]
    if tag == QUERY_EDIT_TAG:
        edited.append(rationale)
    changed = changed or 0
    if revises_id is not None:
        blind = Judgment.objects.filter(submission__id=revises_id)
        changed += not blind.filter(verdict=verdict, tag=tag, rationale=rationale).exists()
    # min == max exactly when every edit is the same text, whatever order the database used.
    return answers_agree(
        answers=answers + 1,
        relevant=(relevant or 0) + (verdict == Verdict.RELEVANT),
        not_relevant=(not_relevant or 0) + (verdict == Verdict.NOT_RELEVANT),
        edits=(edits or 0) + (tag == QUERY_EDIT_TAG),
        edit_min=min(edited, default=None),
        edit_max=max(edited, default=None),
        changed_after_reveal=changed,
    )


def _take(*, item_id: int, campaign: ReviewCampaign, user, now, holds_none: bool):
    """The picked item's fresh state and, when it has room for ``user``, their hold: one
    statement on PostgreSQL when they hold nothing else in the campaign, else the state read
    and ``item_hold``. Returns the item, or None when it has no room (``item.pk`` then in
    ``item_id``). Call with the item's row lock held."""
    if holds_none and connection.vendor == "postgresql":
        expires = connection.ops.adapt_datetimefield_value(hold_expiry(now))
        state = item_state_params(user=user, now=now)
        params = [*state, item_id, user.pk, expires, campaign.overlap]
        with connection.cursor() as cursor:
            cursor.execute(STATE_HOLD_SQL, params)
            row = cursor.fetchone()
        if row is None:
            raise ReviewItem.DoesNotExist(item_id)
        return item_from_state_row(row[:13]) if row[13] else None
    item = item_state_read(item_id=item_id, user=user, now=now)
    if not item_has_room(item, campaign.overlap):
        return None
    item_hold(item=item, user=user, now=now, holds_none=holds_none)
    return item


def review_item_next_for_user(*, campaign: ReviewCampaign, user) -> ReviewItem | None:
    """The item ``user`` should judge next in ``campaign``, held for them for a few minutes;
    None when nothing is left for them.

    Breadth-first: open items with the fewest answers first, then the seeded position. Items
    the user answered are skipped, and so are items whose k answers are all taken by answers
    and holds of other people. A hold the user already has (the item on their screen, or the
    one an undo gave back) is served again.
    """
    found = _next_for_user(campaign=campaign, user=user, holds_none=False)
    return item_wait_for_busy(campaign=campaign, user=user) if found is BUSY else found


def _next_for_user(*, campaign: ReviewCampaign, user, holds_none: bool):
    """One try without waiting on anyone: the item, None (nothing left for the user), or
    ``BUSY`` (there is an open item, but its row is locked by another transaction)."""
    if campaign.status != CampaignStatus.ACTIVE:
        return None
    now = timezone.now()
    # savepoint=False: inside judgment_submit this is part of the submit's transaction (one
    # commit per verdict); called alone it is a transaction of its own.
    with transaction.atomic(savepoint=False):
        held = None
        if not holds_none:
            held = (
                ReviewLock.objects.filter(user=user, item__campaign=campaign, expires_at__gt=now)
                .order_by("-expires_at")
                .values_list("item_id", flat=True)
                .first()
            )
        if held is not None:
            # Taken in the row-lock order every writer uses, then read fresh.
            item_row_lock(item_id=held, campaign_id=campaign.pk)
            item = item_state_read(item_id=held, user=user, now=now)
            # Our own hold reserves our place, so only "open and not answered by us" matters.
            if not item.done and not item.answered_by_me:
                item_hold(item=item, user=user, now=now)
                return item
            ReviewLock.objects.filter(item_id=held, user=user).delete()

        skipped: list[int] = []
        for _ in range(PICK_ATTEMPTS):
            picked = item_pick(campaign=campaign, user=user, now=now, skipped=skipped)
            if picked is None:
                break
            # Fresh read under the row lock: the picking statement's snapshot may be older
            # than a hold another annotator committed on this item a moment ago.
            item = _take(
                item_id=picked, campaign=campaign, user=user, now=now, holds_none=holds_none
            )
            if item is not None:
                return item
            skipped.append(picked)
        else:
            return BUSY
        # SKIP LOCKED found nothing. A plain read tells "nothing left" from "what is left is
        # locked by someone's transaction right now".
        if item_pick(campaign=campaign, user=user, now=now, skipped=skipped, lock=False) is None:
            return None
        return BUSY


@dataclass
class SubmitResult:
    submission: ReviewSubmission
    # True when this token had already been submitted: nothing new was written.
    duplicate: bool
    next_item: ReviewItem | None
    # The submitted item was the user's hold, now released.
    released_hold: bool = False


def judgment_submit(
    *,
    campaign: ReviewCampaign,
    item_id: int,
    user,
    verdict: str,
    client_token: str,
    note: str = "",
    edited_query: str = "",
) -> SubmitResult:
    """Save ``user``'s verdict on an item: an append-only human ``Judgment`` plus the
    ``ReviewSubmission`` that counts it; the item's and campaign's counters move in the
    database (``verdict_write``: one statement on PostgreSQL), the user's hold is released,
    and the next item comes back — all in ONE transaction (one commit, one WAL flush per
    verdict). Only when the open items left are
    locked by other people's transactions right now does the next pick wait, after the
    verdict's commit, in a transaction of its own.

    The same ``client_token`` twice is the same submission (a double click, a retried POST):
    the second call writes nothing and returns the first one (``duplicate`` is True) with the
    next item.
    """
    if not CLIENT_TOKEN_RE.match(client_token or ""):
        raise ApplicationError("a missing or malformed client token", detail={"field": "token"})
    note = (note or "").strip()[:5000]
    edited_query = (edited_query or "").strip()[:2000]
    try:
        with transaction.atomic():
            result = _judgment_record(
                campaign=campaign,
                item_id=item_id,
                user=user,
                verdict=verdict,
                client_token=client_token,
                note=note,
                edited_query=edited_query,
            )
            # A person holds at most one item per campaign: if it was this one, they now
            # hold nothing, and the next pick can skip looking for their holds.
            found = _next_for_user(campaign=campaign, user=user, holds_none=result.released_hold)
        # The verdict is committed; only the rare "what is left is locked right now" case
        # waits, in a transaction of its own.
        result.next_item = (
            item_wait_for_busy(campaign=campaign, user=user) if found is BUSY else found
        )
        return result
    except IntegrityError:
        # The unique token (or "one active submission per person and item") caught a race
        # the row lock did not see, e.g. the same token sent at once for two different items.
        existing = _submission_for_token(client_token=client_token, user=user)
        if existing is None:
            raise ApplicationError(
                "you already answered this item", detail={"code": "already_answered"}
            ) from None
        return SubmitResult(existing, True, review_item_next_for_user(campaign=campaign, user=user))


def _judgment_record(
    *,
    campaign: ReviewCampaign,
    item_id: int,
    user,
    verdict: str,
    client_token: str,
    note: str,
    edited_query: str,
) -> SubmitResult:
    now = timezone.now()
    # The row lock first, then a fresh read in a new statement: a concurrent duplicate or
    # answer that made us wait for the lock is visible to it.
    if not item_row_lock(item_id=item_id, campaign_id=campaign.pk):
        raise ApplicationError("no such item in this campaign", detail={"code": "no_item"})
    item = item_state_read(
        item_id=item_id, user=user, now=now, client_token=client_token, tallies=True
    )
    if item.token_used:
        existing = _submission_for_token(client_token=client_token, user=user)
        return SubmitResult(existing, True, None)
    if campaign.status != CampaignStatus.ACTIVE:
        raise ApplicationError("this campaign is closed", detail={"code": "closed"})
    verdict_check(item=item, verdict=verdict, edited_query=edited_query)
    if edited_query and edited_query == item.candidate.query.text:
        edited_query = ""  # unchanged: a plain approval
    review_answer_check(item=item, campaign=campaign)
    submission = verdict_write(**review_answer_plan(
        campaign=campaign, item=item, user=user, verdict=verdict, edited_query=edited_query,
        note=note, client_token=client_token, now=now,
    ))  # fmt: skip
    return SubmitResult(submission, False, None, released_hold=item.held_by_me)


def review_answer_check(*, item: ReviewItem, campaign: ReviewCampaign) -> None:
    """Refuse an answer to ``item`` (its state read under its row lock) that the queue has no
    place for: the user answered it already, or its k places are taken by answers and other
    people's live holds (the user's own live hold keeps their place). Shared by the
    one-item submit and the list-wise one (``listwise.py``)."""
    if item.answered_by_me:
        raise ApplicationError(
            "you already answered this item", detail={"code": "already_answered"}
        )
    full = item.done or item.judgment_count >= campaign.overlap
    if not item.held_by_me:
        full = full or item.judgment_count + item.held_by_others >= campaign.overlap
    if full:
        raise ApplicationError(
            "this item got its answers from other annotators while it waited on your "
            "screen; here is another one",
            detail={"code": "item_full"},
        )


def review_answer_plan(
    *, campaign, item: ReviewItem, user, verdict: str, edited_query: str, note: str,
    client_token: str, now,
) -> dict:  # fmt: skip
    """How to write an accepted answer (after ``review_answer_check``, under the row lock):
    ``verdict_write``'s arguments. What kind it is (blind answer or revision), whether it is
    the k-th and then whether the k agree, all decided from the state read."""
    kind = answer_kind(
        campaign_blind=campaign.blind,
        blind_answer_id=item.blind_answer_id,
        answered_before=item.answered_before,
    )
    # For a human judgment tagged query_edit, the rationale is the rewritten query.
    tag = QUERY_EDIT_TAG if edited_query else ""
    finishes = item.judgment_count + 1 >= campaign.overlap
    agreed = None
    if finishes:  # the k-th answer: whether the k agree is decided now, under the row lock
        agreed = _agreed_with(
            tallies=item.tallies, verdict=verdict, tag=tag, rationale=edited_query,
            revises_id=kind.revises_id,
        )  # fmt: skip
    return dict(
        campaign=campaign, item=item, user=user, rater=campaign_rater(user), verdict=verdict,
        tag=tag, rationale=edited_query, note=note, client_token=client_token, blind=kind.blind,
        revises_id=kind.revises_id, now=now, finishes=finishes, agreed=agreed,
        release_hold=item.held_by_me,
    )  # fmt: skip


def _submission_for_token(*, client_token: str, user) -> ReviewSubmission | None:
    existing = (
        ReviewSubmission.objects.filter(client_token=client_token)
        .select_related("judgment", "item")
        .first()
    )
    if existing is not None and existing.user_id != user.pk:
        raise ApplicationError("this token belongs to another submission", detail={"code": "token"})
    return existing


def submission_last_active(*, campaign: ReviewCampaign, user) -> ReviewSubmission | None:
    return (
        ReviewSubmission.objects.filter(user=user, item__campaign=campaign, undone_at__isnull=True)
        .select_related("judgment", "item", "revises__judgment")
        # Newest first along the (user, -created_at) index.
        .order_by("-created_at", "-id")
        .first()
    )


def review_submission_undo(
    *, campaign: ReviewCampaign, user, submission_id: int | None = None
) -> ReviewItem:
    """Take back ``user``'s last answer in ``campaign`` (or the one named): the submission is
    marked undone — its Judgment stays in history — the counters go back, and the item is held
    for the user again so the page serves it next.

    Undoing an already undone submission (a double press) changes nothing and serves the item
    again. An answer a curator already turned into a Decision cannot be undone. In a blind
    campaign the undo frees the item for a new answer, but a blind answer stays the person's
    rating for agreement and the new answer is a revision of it (``review/services/blind.py``).
    """
    if campaign.status != CampaignStatus.ACTIVE:  # it could not be answered again
        raise ApplicationError("the campaign is closed", detail={"code": "closed"})
    now = timezone.now()
    with transaction.atomic():
        if submission_id is None:
            target = submission_last_active(campaign=campaign, user=user)
            if target is None:
                raise ApplicationError("nothing to undo", detail={"code": "nothing"})
        else:
            target = ReviewSubmission.objects.filter(
                pk=submission_id, user=user, item__campaign=campaign
            ).first()
            if target is None:
                raise ApplicationError("nothing to undo", detail={"code": "nothing"})
        item_row_lock(item_id=target.item_id, campaign_id=campaign.pk)
        item = item_state_read(item_id=target.item_id, user=user, now=now)
        target.refresh_from_db()
        if target.undone_at is not None:
            if item_has_room(item, campaign.overlap):
                item_hold(item=item, user=user, now=now)
            return item
        settled = Decision.objects.filter(
            candidate_id=item.candidate_id,
            source__in=[DecisionSource.REVIEW, DecisionSource.ADJUDICATION],
            created_at__gte=target.created_at,
        ).exists()
        if settled:
            raise ApplicationError(
                "a curator already settled this item; its answer can no longer be undone",
                detail={"code": "settled"},
            )
        target.undone_at = now
        target.save(update_fields=["undone_at"])
        ReviewItem.objects.filter(pk=item.pk).update(
            judgment_count=F("judgment_count") - 1, done=False, agreed=None
        )
        if item.done:
            ReviewCampaign.objects.filter(pk=campaign.pk).update(done_count=F("done_count") - 1)
        item.refresh_from_db()
        item_hold(item=item, user=user, now=now)
    return item
