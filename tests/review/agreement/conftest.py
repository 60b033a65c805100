"""A reviewed dataset for the agreement report: two campaigns, three annotators, undone and
re-submitted verdicts, a teacher and two LLM stages (stage 2 only on the queries stage 1
flagged, one stage-1 re-run whose later verdict wins), judgments spread over three weeks, and
noise the report must ignore (a human judgment without a submission, a candidate outside the
campaigns, an unknown machine rater)."""

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from curation.models import Candidate, CandidateRole, Judgment, Passage, Query, RaterKind, Verdict
from review.models import ReviewCampaign, ReviewItem, ReviewSubmission, Stratum
from tests.factories import DatasetFactory

VERDICTS = [Verdict.RELEVANT, Verdict.NOT_RELEVANT, Verdict.PARTLY_RELEVANT, Verdict.UNSURE]
STAGE1 = "llm:gpt-4o-mini:stage1"
STAGE2 = "llm:gpt-4o:stage2"
TEACHER = "teacher:all-minilm-l6-v2:margin"
STRATA = [Stratum.STAGE2_FLAGGED, Stratum.STAGE1_ONLY, Stratum.UNFLAGGED]
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday

_tokens = itertools.count()


@dataclass
class Reviewed:
    dataset: object
    full: ReviewCampaign  # every item judged by all three annotators
    partial: ReviewCampaign  # two annotators, the third on some items only
    annotators: list
    outside_candidate: object


class _Writes:
    """Rows collected while building, written with a few bulk statements."""

    def __init__(self):
        self.human: list[tuple[Judgment, ReviewSubmission, datetime | None]] = []
        self.machine: list[Judgment] = []

    def human_judge(self, *, item, user, verdict, when=None, undone=False):
        judgment = Judgment(
            candidate_id=item.candidate_id,
            rater=f"user:{user.username}",
            rater_kind=RaterKind.HUMAN,
            user=user,
            verdict=verdict,
            source_run=f"campaign:{item.campaign_id}",
        )
        submission = ReviewSubmission(
            item=item,
            user=user,
            client_token=f"t{next(_tokens)}",
            undone_at=timezone.now() if undone else None,
        )
        self.human.append((judgment, submission, when))

    def machine_judge(self, *, candidate_id, rater, verdict):
        self.machine.append(
            Judgment(
                candidate_id=candidate_id, rater=rater, rater_kind=RaterKind.MACHINE,
                verdict=verdict,
            )
        )  # fmt: skip

    def flush(self):
        # Judgment ids follow the order of the calls (bulk_create keeps it on PostgreSQL and
        # SQLite), so "the later judgment wins" means what the builder says.
        judgments = Judgment.objects.bulk_create([j for j, _, _ in self.human])
        timed = []
        for judgment, submission, when in self.human:
            submission.judgment = judgment
            if when is not None:
                judgment.created_at = when
                timed.append(judgment)
        Judgment.objects.bulk_update(timed, ["created_at"], batch_size=500)
        ReviewSubmission.objects.bulk_create([s for _, s, _ in self.human])
        Judgment.objects.bulk_create(self.machine)
        self.human, self.machine = [], []
        return judgments


def machine_judge(*, candidate_id, rater, verdict):
    return Judgment.objects.create(
        candidate_id=candidate_id, rater=rater, rater_kind=RaterKind.MACHINE, verdict=verdict
    )


def build_reviewed(django_user_model, *, seed: int = 3) -> Reviewed:
    rng = np.random.default_rng(seed)
    annotators = _annotators(django_user_model)
    dataset, negatives = _dataset_with_negatives()
    candidates, outside = negatives[:80], negatives[80]

    # Each candidate's hidden truth: a false negative about a third of the time.
    truth = {c.pk: rng.random() < 0.35 for c in negatives}
    full, partial = _human_reviews(rng, truth, dataset, annotators, candidates, seed=seed)
    _machine_judgments(rng, truth, negatives, candidates)
    return Reviewed(dataset, full, partial, annotators, outside)


def _annotators(django_user_model) -> list:
    annotators = []
    group = Group.objects.get_or_create(name="annotator")[0]
    for name in ("alice", "bob", "carol"):
        user = django_user_model.objects.create_user(username=name, password="pw-" + name)
        user.groups.add(group)
        annotators.append(user)
    return annotators


def _dataset_with_negatives():
    dataset = DatasetFactory(name="reviewed")
    queries = Query.objects.bulk_create(
        [Query(dataset=dataset, query_id=f"q{q}", text=f"question {q}") for q in range(17)]
    )
    passages = Passage.objects.bulk_create(
        [
            Passage(
                corpus=dataset.corpus, doc_id=f"d{n}", text=f"passage {n}", text_hash=f"{n:032x}"
            )
            for n in range(len(queries) * 6)
        ]
    )
    rows = []
    for q, query in enumerate(queries):
        rows.append(Candidate(query=query, passage=passages[q * 6], role=CandidateRole.POSITIVE))
        rows += [
            Candidate(query=query, passage=passages[q * 6 + r], role=CandidateRole.NEGATIVE, rank=r)
            for r in range(1, 6)
        ]
    negatives = [c for c in Candidate.objects.bulk_create(rows) if c.role == CandidateRole.NEGATIVE]
    return dataset, negatives


def _human_reviews(rng, truth, dataset, annotators, candidates, *, seed):
    """Two campaigns (4 candidates in both) and the annotators' answers, undos included."""

    def judge(candidate_id):
        if rng.random() < 0.12:
            return VERDICTS[int(rng.integers(0, 4))]
        if truth[candidate_id]:
            return Verdict.PARTLY_RELEVANT if rng.random() < 0.25 else Verdict.RELEVANT
        return Verdict.PARTLY_RELEVANT if rng.random() < 0.1 else Verdict.NOT_RELEVANT

    # Open campaigns: an undone answer replaced by a new one is a correction, the new one
    # counts (blind campaigns keep the blind answer: test_blind_revisions.py).
    full = ReviewCampaign.objects.create(
        name="full", dataset=dataset, overlap=3, seed=seed, blind=False
    )
    partial = ReviewCampaign.objects.create(
        name="partial", dataset=dataset, overlap=2, seed=seed, blind=False
    )
    full_items = ReviewItem.objects.bulk_create(
        ReviewItem(campaign=full, candidate=c, stratum=STRATA[i % 3], position=i, judgment_count=3)
        for i, c in enumerate(candidates[:48])
    )
    partial_items = ReviewItem.objects.bulk_create(
        ReviewItem(
            campaign=partial, candidate=c, stratum=STRATA[i % 2], position=i, judgment_count=2
        )
        for i, c in enumerate(candidates[44:])  # 4 candidates are in both campaigns
    )
    writes = _Writes()
    bob_undone = []
    for i, item in enumerate(full_items + partial_items):
        when = START + timedelta(days=int(i // 25) * 7 + int(rng.integers(0, 5)), hours=i % 8)
        reviewers = annotators if item.campaign_id == full.pk else annotators[:2]
        if item.campaign_id == partial.pk and i % 3 == 0:
            reviewers = annotators  # carol joins on a third of the partial campaign
        for user in reviewers:
            if i % 7 == 0 and user is annotators[0]:
                # Alice answered, undid it, then answered again: only the second counts.
                writes.human_judge(
                    item=item, user=user, verdict=Verdict.UNSURE, when=when, undone=True
                )
            writes.human_judge(item=item, user=user, verdict=judge(item.candidate_id), when=when)
        if i % 11 == 5:
            bob_undone.append(item)
    writes.flush()
    # Bob's verdict on these was undone and never replaced.
    ReviewSubmission.objects.filter(item__in=bob_undone, user=annotators[1]).update(
        undone_at=timezone.now()
    )
    # A human judgment that was never submitted through a campaign does not count.
    Judgment.objects.create(
        candidate_id=candidates[0].pk, rater="user:alice", rater_kind=RaterKind.HUMAN,
        user=annotators[0], verdict=Verdict.UNSURE,
    )  # fmt: skip
    return full, partial


def _machine_judgments(rng, truth, negatives, candidates) -> None:
    """The teacher and stage 1 on every negative, stage 2 on the queries stage 1 flagged."""
    writes = _Writes()

    def flag(candidate_id, accuracy):
        hit = truth[candidate_id] if rng.random() < accuracy else not truth[candidate_id]
        return Verdict.RELEVANT if hit else Verdict.NOT_RELEVANT

    flagged_queries = set()
    for c in negatives:
        writes.machine_judge(candidate_id=c.pk, rater=TEACHER, verdict=flag(c.pk, 0.6))
        verdict = flag(c.pk, 0.75)
        if c.pk % 9 == 0:
            # An earlier stage-1 run said the opposite; the later judgment wins.
            other = Verdict.NOT_RELEVANT if verdict == Verdict.RELEVANT else Verdict.RELEVANT
            writes.machine_judge(candidate_id=c.pk, rater=STAGE1, verdict=other)
        writes.machine_judge(candidate_id=c.pk, rater=STAGE1, verdict=verdict)
        if verdict == Verdict.RELEVANT:
            flagged_queries.add(c.query_id)
    for c in candidates:
        if c.query_id in flagged_queries:
            writes.machine_judge(candidate_id=c.pk, rater=STAGE2, verdict=flag(c.pk, 0.85))
    writes.machine_judge(
        candidate_id=candidates[1].pk, rater="mystery:judge", verdict=Verdict.RELEVANT
    )
    writes.flush()


@pytest.fixture
def reviewed(db, django_user_model) -> Reviewed:
    return build_reviewed(django_user_model)
