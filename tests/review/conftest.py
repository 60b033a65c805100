import pytest

from curation.models import CandidateOrigin, CandidateRole, Judgment, RaterKind, Verdict
from review.services.campaigns import review_campaign_create
from tests.factories import CandidateFactory, DatasetFactory, PassageFactory, QueryFactory
from tests.support.users import user_with_role

RATIONALE = "Doc (2) names the same drug and dose as the positive: a machine rationale 7f3a"


@pytest.fixture
def make_annotator(db, django_user_model):
    return lambda username, role="annotator": user_with_role(django_user_model, username, role)


def rationale_for(candidate) -> str:
    return f"{RATIONALE} (candidate {candidate.pk})"


def judge(candidate, rater: str, verdict: str, rationale: str = "", tag: str = "", source_run=""):
    if rationale == RATIONALE:
        rationale = rationale_for(candidate)
    return Judgment.objects.create(
        candidate=candidate,
        rater=rater,
        rater_kind=RaterKind.MACHINE,
        verdict=verdict,
        rationale=rationale,
        tag=tag,
        source_run=source_run,
    )


@pytest.fixture
def review_dataset(db):
    """Six queries, each with one positive and four negatives. Per query: negative 1 flagged
    by stage 1 and stage 2, negative 2 by stage 1 only, negatives 3 and 4 judged by stage 1 as
    not relevant; and two synthetic queries (generated positive + negative)."""
    dataset = DatasetFactory(name="review-demo")
    for q in range(6):
        query = QueryFactory(dataset=dataset, query_id=f"q{q}", text=f"aspirin dose for child {q}")
        CandidateFactory(
            query=query,
            role=CandidateRole.POSITIVE,
            passage=PassageFactory(
                corpus=dataset.corpus, text=f"The aspirin dose for a child is {q} mg per kg."
            ),
        )
        negatives = [
            CandidateFactory(
                query=query,
                role=CandidateRole.NEGATIVE,
                rank=rank,
                passage=PassageFactory(
                    corpus=dataset.corpus, text=f"negative passage {rank} about query {q}"
                ),
            )
            for rank in (1, 2, 3, 4)
        ]
        judge(negatives[0], "llm:gpt-4o-mini:stage1", Verdict.RELEVANT, RATIONALE, "better")
        judge(negatives[0], "llm:gpt-4o:stage2", Verdict.RELEVANT, RATIONALE, "better")
        judge(negatives[1], "llm:gpt-4o-mini:stage1", Verdict.RELEVANT, RATIONALE, "worse")
        judge(negatives[1], "llm:gpt-4o:stage2", Verdict.NOT_RELEVANT, RATIONALE)
        for negative in negatives[2:]:
            judge(negative, "llm:gpt-4o-mini:stage1", Verdict.NOT_RELEVANT, RATIONALE)
    for s in range(2):
        query = QueryFactory(dataset=dataset, query_id=f"s{s}", text=f"when was bridge {s} built")
        CandidateFactory(
            query=query,
            role=CandidateRole.POSITIVE,
            origin=CandidateOrigin.GENERATED,
            passage=PassageFactory(corpus=dataset.corpus, text=f"Bridge {s} was built in 19{s}0."),
        )
        CandidateFactory(
            query=query,
            role=CandidateRole.NEGATIVE,
            origin=CandidateOrigin.GENERATED,
            passage=PassageFactory(corpus=dataset.corpus, text=f"Bridge {s} is 300 m long."),
        )
    return dataset


@pytest.fixture
def make_campaign(review_dataset, curator):
    def make(annotators, *, overlap=1, blind=True, strata=None, seed=0, name="camp"):
        return review_campaign_create(
            name=name,
            dataset=review_dataset,
            strata=strata or {"unflagged": 12},
            annotators=annotators,
            overlap=overlap,
            blind=blind,
            seed=seed,
            created_by=curator,
        )

    return make
