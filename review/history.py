"""The annotator's recent answers in a campaign, each undoable while the campaign allows it:
history beyond the one "last answer" of the review pane (issue 10).

Read only when the annotator opens it (the pane's "Your recent answers", key H, loads it with
htmx; without JavaScript it is a page of its own), never on a verdict's request. It shows
what the person answered, never a machine verdict: in a blind campaign the reveal stays in
the last-answer panel. Undoing any of them goes through ``review_submission_undo``, which
keeps the blind-campaign rules: a blind answer stays the person's rating, and the new answer
is recorded as a revision of it.
"""

from __future__ import annotations

from django.db.models import Exists, OuterRef

from curation.models import Decision, DecisionSource
from review.models import CampaignStatus, ReviewCampaign, ReviewSubmission

HISTORY_SIZE = 20


def review_history(
    *, campaign: ReviewCampaign, user, limit: int = HISTORY_SIZE
) -> list[ReviewSubmission]:
    """``user``'s latest active answers in ``campaign``, newest first (one query), each with
    ``undoable``: the campaign is open and no curator's Decision on the candidate is newer
    than the answer (``review_submission_undo`` refuses those)."""
    settled = Decision.objects.filter(
        candidate_id=OuterRef("item__candidate_id"),
        source__in=[DecisionSource.REVIEW, DecisionSource.ADJUDICATION],
        created_at__gte=OuterRef("created_at"),
    )
    answers = list(
        ReviewSubmission.objects.filter(user=user, item__campaign=campaign, undone_at__isnull=True)
        .select_related(
            "judgment", "item__candidate__query", "item__candidate__passage", "revises__judgment"
        )
        .annotate(settled=Exists(settled))
        .order_by("-created_at", "-id")[:limit]
    )
    open_campaign = campaign.status == CampaignStatus.ACTIVE
    for answer in answers:
        answer.undoable = open_campaign and not answer.settled
    return answers
