"""Turn human review into ``curation.Decision`` rows, which is what snapshots read.

* ``adjudication_decide`` — a curator settles one item whose answers disagree
  (source ``adjudication``);
* ``campaign_consensus_decide`` — a curator turns every finished item whose answers all agree
  into a Decision at once (source ``review``).

For a synthetic triplet the decision is on the triplet's positive: ``relevant`` keeps the
triplet, ``not_relevant`` rejects it. An agreed (or adjudicated) rewrite of the query is
applied to ``Query.text``; the Decision's note records the original text, so nothing is lost.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from core.errors import ApplicationError
from curation.models import Decision, DecisionLabel, DecisionSource, Query
from review.models import ReviewCampaign, ReviewItem, Stratum
from review.selectors import items_in_consensus

CHUNK = 1000


def _query_edit(*, query_id: int, new_text: str) -> str:
    """Apply a rewritten query; returns the note that keeps the original, or "" when the
    text did not change."""
    query = Query.objects.select_for_update().get(pk=query_id)
    new_text = new_text.strip()
    if not new_text or new_text == query.text:
        return ""
    original = query.text
    Query.objects.filter(pk=query_id).update(text=new_text)
    return f"query edited; original text: {original!r}; new text: {new_text!r}"


def adjudication_decide(
    *,
    campaign: ReviewCampaign,
    item_id: int,
    label: str,
    user,
    note: str = "",
    query_text: str = "",
) -> Decision:
    """Record a curator's final label for one finished item of ``campaign``."""
    if label not in DecisionLabel.values:
        raise ApplicationError(f"unknown label {label!r}", detail={"field": "label"})
    with transaction.atomic():
        item = (
            ReviewItem.objects.select_for_update()
            .select_related("candidate")
            .filter(pk=item_id, campaign=campaign)
            .first()
        )
        if item is None:
            raise ApplicationError("no such item in this campaign", detail={"field": "item"})
        if not item.done:
            raise ApplicationError(
                "this item does not have its answers yet", detail={"field": "item"}
            )
        parts = [f"campaign {campaign.pk}: adjudicated"]
        if note.strip():
            parts.append(note.strip())
        if query_text.strip():
            if item.stratum != Stratum.SYNTHETIC:
                raise ApplicationError(
                    "only synthetic triplets have an editable query",
                    detail={"field": "query_text"},
                )
            if label == DecisionLabel.RELEVANT:
                edit = _query_edit(query_id=item.candidate.query_id, new_text=query_text)
                if edit:
                    parts.append(edit)
        return Decision.objects.create(
            candidate_id=item.candidate_id,
            label=label,
            source=DecisionSource.ADJUDICATION,
            note="; ".join(parts),
            created_by=user,
        )


@dataclass
class ConsensusResult:
    decided: int
    relevant: int
    not_relevant: int
    queries_edited: int


def campaign_consensus_decide(*, campaign: ReviewCampaign, user) -> ConsensusResult:
    """A Decision (source ``review``) for every finished item of ``campaign`` whose active
    answers all give the same label, not yet settled. Runs in chunks of item ids, each in its
    own transaction with the chunk's item rows locked, so an annotator's undo either lands
    before the chunk (and the item is no longer in consensus) or is refused after it."""
    result = ConsensusResult(0, 0, 0, 0)
    after = 0
    while True:
        with transaction.atomic():
            ids = list(
                ReviewItem.objects.filter(campaign=campaign, done=True, pk__gt=after)
                .order_by("pk")
                .select_for_update()
                .values_list("pk", flat=True)[:CHUNK]
            )
            if not ids:
                return result
            after = ids[-1]
            # Evaluated after the rows are locked, in a statement that sees every undo that
            # committed before we got the locks.
            rows = list(
                items_in_consensus(campaign=campaign)
                .filter(pk__in=ids)
                .values_list(
                    "candidate_id", "candidate__query_id", "stratum", "judgment_count",
                    "n_relevant", "n_edits", "edit_min",
                )
            )  # fmt: skip
            decisions = []
            for cid, query_id, stratum, count, n_relevant, n_edits, edit in rows:
                label = (
                    DecisionLabel.RELEVANT if n_relevant == count else DecisionLabel.NOT_RELEVANT
                )
                note = f"campaign {campaign.pk}: {count} of {count} reviewers agreed"
                if stratum == Stratum.SYNTHETIC and n_edits and label == DecisionLabel.RELEVANT:
                    edit_note = _query_edit(query_id=query_id, new_text=edit)
                    if edit_note:
                        note += "; " + edit_note
                        result.queries_edited += 1
                decisions.append(
                    Decision(
                        candidate_id=cid,
                        label=label,
                        source=DecisionSource.REVIEW,
                        note=note,
                        created_by=user,
                    )
                )
                if label == DecisionLabel.RELEVANT:
                    result.relevant += 1
                else:
                    result.not_relevant += 1
            Decision.objects.bulk_create(decisions, batch_size=CHUNK)
            result.decided += len(decisions)
