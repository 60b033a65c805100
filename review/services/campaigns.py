"""Create a review campaign: a stratified, seeded sample of a dataset's candidates.

Strata (disjoint; see ``review/review_queue.md``):

* ``stage2_flagged`` — negatives a stage-2 LLM judged ``relevant`` (a confirmed false
  negative candidate);
* ``stage1_only`` — negatives stage 1 judged ``relevant`` and stage 2 did not;
* ``unflagged`` — imported or mined negatives no LLM judged ``relevant`` (imported hard
  negatives count as mined: whoever built the dataset mined them); when the campaign is tied to
  a cascade run, only the negatives that run judged, so every item has an LLM verdict to
  compare with;
* ``synthetic`` — the positive of every query that holds a generated (``origin=generated``)
  candidate: one item per synthetic triplet, which the annotator approves, edits or rejects.

Each stratum is one SQL statement: filter with EXISTS on the judgments' (candidate, rater)
index, order by a seeded md5 of the candidate id, LIMIT the sample size. Only the sampled ids
come back to Python, so the cost does not depend on holding the dataset in memory.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from django.db import transaction
from django.db.models import CharField, Exists, OuterRef, QuerySet, Value
from django.db.models.functions import MD5, Cast, Concat

from core.db import tables_analyze
from core.errors import ApplicationError
from curation.models import (
    Candidate,
    CandidateOrigin,
    CandidateRole,
    CascadeRun,
    Dataset,
    Judgment,
    RaterKind,
    Verdict,
)
from review.models import CampaignStatus, ReviewCampaign, ReviewItem, ReviewLock, Stratum

MAX_ITEMS = 200_000


def cascade_run_default(*, dataset: Dataset) -> CascadeRun | None:
    """The dataset's latest cascade run: where the stage strata come from when none is named."""
    return CascadeRun.objects.filter(dataset=dataset).order_by("-id").first()


def stratum_candidates(
    *, dataset: Dataset, stratum: str, cascade_run: CascadeRun | None
) -> QuerySet[Candidate]:
    """The candidates of ``dataset`` that belong to ``stratum`` (a lazy queryset)."""
    candidates = Candidate.objects.filter(query__dataset=dataset)
    if stratum == Stratum.SYNTHETIC:
        generated = Candidate.objects.filter(
            query_id=OuterRef("query_id"), origin=CandidateOrigin.GENERATED
        )
        return candidates.filter(Exists(generated), role=CandidateRole.POSITIVE)

    llm = Judgment.objects.filter(
        candidate_id=OuterRef("pk"), rater_kind=RaterKind.MACHINE, rater__startswith="llm:"
    )
    if cascade_run is not None:
        llm = llm.filter(source_run=f"cascade:{cascade_run.pk}")
    flagged = llm.filter(verdict=Verdict.RELEVANT)
    negatives = candidates.filter(role=CandidateRole.NEGATIVE).exclude(
        origin=CandidateOrigin.GENERATED
    )
    if stratum == Stratum.STAGE2_FLAGGED:
        return negatives.filter(Exists(flagged.filter(rater__endswith=":stage2")))
    if stratum == Stratum.STAGE1_ONLY:
        return negatives.filter(Exists(flagged.filter(rater__endswith=":stage1"))).exclude(
            Exists(flagged.filter(rater__endswith=":stage2"))
        )
    if stratum == Stratum.UNFLAGGED:
        unflagged = negatives.exclude(Exists(flagged))
        if cascade_run is not None:
            unflagged = unflagged.filter(Exists(llm))
        return unflagged
    raise ApplicationError(f"unknown stratum {stratum!r}", detail={"field": "strata"})


def stratum_sample(
    *, dataset: Dataset, stratum: str, size: int, seed: int, cascade_run: CascadeRun | None
) -> list[int]:
    """``size`` candidate ids of the stratum, the same ones for the same seed and data."""
    if size <= 0:
        return []
    key = Concat(Value(f"{seed}:{stratum}:"), Cast("id", CharField()), output_field=CharField())
    return list(
        stratum_candidates(dataset=dataset, stratum=stratum, cascade_run=cascade_run)
        .annotate(sample_key=MD5(key))
        .order_by("sample_key", "id")
        .values_list("id", flat=True)[:size]
    )


def review_campaign_create(
    *,
    name: str,
    dataset: Dataset,
    strata: dict[str, int],
    annotators: Sequence,
    overlap: int = 1,
    blind: bool = True,
    seed: int = 0,
    cascade_run: CascadeRun | None = None,
    guidelines: str = "",
    created_by=None,
) -> ReviewCampaign:
    """Sample the strata and create the campaign with its items in a seeded shuffled order."""
    annotators = list(annotators)
    unknown = set(strata) - set(Stratum.values)
    if unknown:
        raise ApplicationError(
            f"unknown strata: {', '.join(sorted(unknown))}", detail={"field": "strata"}
        )
    if any(int(size) < 0 for size in strata.values()):
        raise ApplicationError("a sample size cannot be negative", detail={"field": "strata"})
    if sum(int(size) for size in strata.values()) > MAX_ITEMS:
        raise ApplicationError(
            f"at most {MAX_ITEMS:,} items per campaign", detail={"field": "strata"}
        )
    if not annotators:
        raise ApplicationError("a campaign needs annotators", detail={"field": "annotators"})
    if overlap < 1:
        raise ApplicationError("overlap must be at least 1", detail={"field": "overlap"})
    if overlap > len(annotators):
        # Otherwise no item could ever reach k answers.
        raise ApplicationError(
            f"overlap {overlap} needs at least {overlap} annotators, got {len(annotators)}",
            detail={"field": "overlap"},
        )
    if cascade_run is None:
        cascade_run = cascade_run_default(dataset=dataset)
    elif cascade_run.dataset_id != dataset.pk:
        raise ApplicationError(
            "the cascade run belongs to another dataset", detail={"field": "cascade_run"}
        )

    sampled: list[tuple[int, str]] = []
    for stratum in Stratum.values:  # fixed order: the shuffle below must see the same list
        ids = stratum_sample(
            dataset=dataset,
            stratum=stratum,
            size=int(strata.get(stratum, 0)),
            seed=seed,
            cascade_run=cascade_run,
        )
        sampled.extend((candidate_id, stratum) for candidate_id in ids)
    if not sampled:
        raise ApplicationError(
            "no candidate of this dataset falls into the chosen strata",
            detail={"field": "strata"},
        )
    random.Random(seed).shuffle(sampled)

    with transaction.atomic():
        campaign = ReviewCampaign.objects.create(
            name=name,
            dataset=dataset,
            cascade_run=cascade_run,
            strata={s: int(n) for s, n in strata.items() if int(n) > 0},
            seed=seed,
            overlap=overlap,
            blind=blind,
            guidelines=guidelines.strip(),
            item_count=len(sampled),
            created_by=created_by,
        )
        campaign.annotators.set(annotators)
        ReviewItem.objects.bulk_create(
            (
                ReviewItem(campaign=campaign, candidate_id=cid, stratum=stratum, position=pos)
                for pos, (cid, stratum) in enumerate(sampled)
            ),
            batch_size=5000,
        )
        # The new items must be known to the planner before the first annotator asks for
        # one (core/db.py): analysed as soon as they are committed.
        transaction.on_commit(lambda: tables_analyze(ReviewItem))
    return campaign


GUIDELINES_MAX = 20_000


def review_campaign_guidelines_set(*, campaign: ReviewCampaign, guidelines: str) -> ReviewCampaign:
    """Replace the campaign's guidelines (annotators see the new text on their next page)."""
    guidelines = guidelines.strip()
    if len(guidelines) > GUIDELINES_MAX:
        raise ApplicationError(
            f"guidelines are at most {GUIDELINES_MAX:,} characters", detail={"field": "guidelines"}
        )
    ReviewCampaign.objects.filter(pk=campaign.pk).update(guidelines=guidelines)
    campaign.guidelines = guidelines
    return campaign


def review_campaign_status_set(*, campaign: ReviewCampaign, status: str) -> ReviewCampaign:
    """Close a campaign (annotators get no more items and cannot submit; what they answered
    stays, and curators still settle it) or reopen it. Closing drops the live holds, so a
    reopened campaign starts with every open item free."""
    if status not in CampaignStatus.values:
        raise ApplicationError(f"unknown status {status!r}", detail={"field": "status"})
    with transaction.atomic():
        campaign = ReviewCampaign.objects.select_for_update().get(pk=campaign.pk)
        if campaign.status == status:
            return campaign
        campaign.status = status
        campaign.save(update_fields=["status"])
        if status == CampaignStatus.CLOSED:
            ReviewLock.objects.filter(item__campaign=campaign).delete()
    return campaign
