"""The queue's rules for one item, which the one-item queue (``queue.py``) and the list-wise
mode (``listwise.py``) both apply: the row lock, the item's state read under it, whether it
has room for a person, the pick, the hold, the verdicts a stratum accepts, and the slow path
when what is left is locked by someone's verdict right now. Why each step is there is in
``review/review_queue.md``; the statements are in ``queue_sql.py``.

Everything here runs inside the caller's transaction, except ``item_wait_for_busy``, which
opens its own (it must hold no other row lock while it waits).
"""

from __future__ import annotations

import re
from datetime import timedelta

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from core.errors import ApplicationError
from curation.models import Verdict
from review.models import CampaignStatus, ReviewCampaign, ReviewItem, ReviewLock, Stratum
from review.services.queue_sql import HOLD_SQL, PICK_SQL, ROW_LOCK_SQL, STATE_AGREE_SQL, STATE_SQL

# How long an annotator holds the item on their screen; an expired hold is simply ignored.
LOCK_SECONDS = getattr(settings, "SIEVE_REVIEW_LOCK_SECONDS", 600)
# A human judgment with this tag proposes a rewrite of a synthetic query (its rationale).
QUERY_EDIT_TAG = "query_edit"
# What a client token looks like (one per submit; the same token twice is the same submit).
CLIENT_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
# Picks looked past (found full a moment ago) before a request takes the slow path.
PICK_ATTEMPTS = 5
# Waits for a row lock in the slow path are short (the holder is one verdict's transaction);
# the timeout only bounds a pathological case, which then answers "nothing left" for now.
WAIT_LOCK_MS = 5000
WAIT_ATTEMPTS = 50

# Returned by a try that waits on no one ("next item", "next list") when an item is open for
# the user but another annotator's transaction has its row locked right now (or every pick
# found the item filled a moment ago). Not the same as "nothing left": at the end of a
# campaign the last open items are often locked by the people answering them, and an
# annotator told "nothing left" then would stop with those items one answer short. The
# caller commits what it has and then calls ``item_wait_for_busy``.
BUSY = object()


def hold_expiry(now):
    """When a hold taken at ``now`` stops counting (``LOCK_SECONDS`` later)."""
    return now + timedelta(seconds=LOCK_SECONDS)


def item_hold(*, item: ReviewItem, user, now, holds_none: bool = False) -> None:
    """Give ``user`` the hold on ``item`` (or a longer one), and drop their holds elsewhere in
    the campaign: one person works on one item at a time, and a stale hold would keep it
    from the others. ``holds_none``: the caller knows the user holds nothing in the campaign
    (skips a statement). Call with the item's row lock held.

    Holds are taken here and by the list-wise mode (``listwise._list_hold``: the rows of one
    query), so a person holds one item, or one query's rows, per campaign."""
    if not holds_none:
        ReviewLock.objects.filter(user=user, item__campaign_id=item.campaign_id).exclude(
            item=item
        ).delete()
    expires = connection.ops.adapt_datetimefield_value(hold_expiry(now))
    with connection.cursor() as cursor:
        cursor.execute(HOLD_SQL, [item.pk, user.pk, expires])


def item_row_lock(*, item_id: int, campaign_id: int) -> bool:
    """Take the item's row lock, which every write to its answers or holds takes first (a
    no-op on SQLite, whose transactions are serialized anyway); False when the campaign has
    no such item."""
    sql = ROW_LOCK_SQL
    if connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(sql, [item_id, campaign_id])
        return cursor.fetchone() is not None


def item_state_read(
    *, item_id: int, user, now, client_token: str = "", tallies: bool = False
) -> ReviewItem:
    """The item freshly read, with in the same statement: whether ``user`` answered it
    (``answered_by_me``), holds it (``held_by_me``), how many live holds other people have on
    it (``held_by_others``), whether ``client_token`` was already used (``token_used``), the
    user's blind answer to it (``blind_answer_id``) and whether they ever answered it, undone
    answers included (``answered_before``); with ``tallies``, its active answers' agreement
    tallies too (``item.tallies``). Call with the item's row lock held, so none of it can
    change before we commit. Raises ``ReviewItem.DoesNotExist`` for an unknown id."""
    params = item_state_params(user=user, now=now, client_token=client_token)
    sql = STATE_SQL
    if tallies:
        sql = STATE_AGREE_SQL
        params += [Verdict.RELEVANT, Verdict.NOT_RELEVANT, *[QUERY_EDIT_TAG] * 3, item_id]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, item_id])
        row = cursor.fetchone()
    if row is None:
        raise ReviewItem.DoesNotExist(item_id)
    return item_from_state_row(row)


def item_state_params(*, user, now, client_token: str = "") -> list:
    """The parameters of ``queue_sql.state_columns``, in its order, for ``user`` at ``now``
    (``client_token``: the token the statement compares with)."""
    at = connection.ops.adapt_datetimefield_value(now)
    return [user.pk, user.pk, at, user.pk, at, client_token, user.pk, user.pk]


def item_from_state_row(row) -> ReviewItem:
    """The ``ReviewItem`` a row of ``state_columns`` describes (plus, when the row goes on,
    the agreement tallies of ``AGREE_COLUMNS`` in ``item.tallies``), with the state read's
    attributes set as ``item_state_read`` documents them. Not saved, not fetched again."""
    item = ReviewItem(
        id=row[0], campaign_id=row[1], candidate_id=row[2], stratum=row[3], position=row[4],
        judgment_count=row[5], done=bool(row[6]),
    )  # fmt: skip
    item.answered_by_me, item.held_by_me = bool(row[7]), bool(row[8])
    item.held_by_others, item.token_used = row[9], bool(row[10])
    item.blind_answer_id, item.answered_before = row[11], bool(row[12])
    item.tallies = tuple(row[13:20])
    return item


def item_has_room(item: ReviewItem, overlap: int) -> bool:
    """Whether the user may take ``item`` (its state from ``item_state_read``, under the row
    lock): it is open, they have not answered it, and its ``overlap`` (k) places are not all
    taken by answers and other people's live holds. ``queue_sql.STATE_HOLD_SQL`` and
    ``PICK_SQL`` test the same in SQL."""
    return (
        not item.done
        and not item.answered_by_me
        and item.judgment_count + item.held_by_others < overlap
    )


def item_pick(
    *, campaign: ReviewCampaign, user, now, skipped: list[int], lock: bool = True
) -> int | None:
    """The id of the first open item, least answered first, then by position, that the user
    has not answered and where other people's live holds leave room; None when there is
    none (``skipped``: ids to look past). ``lock``: its row locked and rows locked by other
    transactions skipped (``FOR UPDATE SKIP LOCKED``); the caller must re-read the item in a
    new statement before trusting it has room. Without ``lock``, a plain read that also sees
    locked rows: "nothing left" told apart from "busy right now"."""
    sql = PICK_SQL.format(
        skipped=f"AND i.id NOT IN ({', '.join(['%s'] * len(skipped))})" if skipped else "",
        for_update="FOR UPDATE OF i SKIP LOCKED"
        if lock and connection.features.has_select_for_update_skip_locked
        else "",
    )
    at = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(sql, [campaign.pk, user.pk, user.pk, at, campaign.overlap, *skipped])
        row = cursor.fetchone()
    return row[0] if row else None


def verdict_check(*, item: ReviewItem, verdict: str, edited_query: str) -> None:
    """Refuse (``ApplicationError`` naming the field) a verdict the item's stratum does not
    take: an unknown verdict; "partly relevant" on a synthetic triplet, or an edited query
    with anything but "relevant"; an edited query on anything but a synthetic triplet."""
    if verdict not in Verdict.values:
        raise ApplicationError(f"unknown verdict {verdict!r}", detail={"field": "verdict"})
    if item.stratum == Stratum.SYNTHETIC:
        if verdict == Verdict.PARTLY_RELEVANT:
            raise ApplicationError(
                "a synthetic triplet is approved, edited, rejected or skipped",
                detail={"field": "verdict"},
            )
        if edited_query and verdict != Verdict.RELEVANT:
            raise ApplicationError(
                "an edited query approves the triplet", detail={"field": "edited_query"}
            )
    elif edited_query:
        raise ApplicationError(
            "only synthetic triplets have an editable query", detail={"field": "edited_query"}
        )


def item_wait_for_busy(*, campaign: ReviewCampaign, user) -> ReviewItem | None:
    """The slow path after ``BUSY``: the next item for ``user``, held for them, or None when
    nothing is left. Call it once the caller's transaction ended: it runs in fresh ones that
    hold no other row lock (so waiting cannot deadlock), reads the first open item plainly, waits
    for its row lock, and takes it if it still has room; otherwise reads again. Each wait
    ends when one other verdict commits, so this converges; the attempt cap and
    ``WAIT_LOCK_MS`` are safety nets."""
    postgres = connection.vendor == "postgresql"
    # Items found full of other people's live holds: those people answer them (or their
    # holds expire and a later request finds them); look past them.
    skipped: list[int] = []
    for _ in range(WAIT_ATTEMPTS):
        campaign.refresh_from_db(fields=["status"])
        if campaign.status != CampaignStatus.ACTIVE:
            return None
        now = timezone.now()
        with transaction.atomic():
            picked = item_pick(campaign=campaign, user=user, now=now, skipped=skipped, lock=False)
            if picked is None:
                return None
            if postgres:
                with connection.cursor() as cursor:
                    cursor.execute(f"SET LOCAL lock_timeout = {int(WAIT_LOCK_MS)}")
            try:
                with transaction.atomic():
                    item_row_lock(item_id=picked, campaign_id=campaign.pk)
            except OperationalError:
                return None
            if postgres:
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = DEFAULT")
            item = item_state_read(item_id=picked, user=user, now=now)
            if item_has_room(item, campaign.overlap):
                item_hold(item=item, user=user, now=now)
                return item
            if not item.done and not item.answered_by_me:
                skipped.append(item.pk)
    return None
