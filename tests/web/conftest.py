import pytest

from curation.models import CandidateRole
from tests.factories import CandidateFactory, DatasetFactory, PassageFactory, QueryFactory


@pytest.fixture
def tiny_dataset(db):
    """Two queries, each with one positive and two ranked negatives; counts denormalized the
    way the importer keeps them."""
    dataset = DatasetFactory(name="tiny", query_count=2, positive_count=2, negative_count=4)
    for q in range(2):
        query = QueryFactory(dataset=dataset, query_id=f"q{q}", text=f"what is thing {q}?")
        CandidateFactory(
            query=query,
            role=CandidateRole.POSITIVE,
            passage=PassageFactory(corpus=dataset.corpus, text=f"thing {q} is a thing"),
            teacher_score=0.9,
        )
        for rank in (1, 2):
            CandidateFactory(
                query=query,
                role=CandidateRole.NEGATIVE,
                rank=rank,
                teacher_score=0.5 - rank / 10,
                passage=PassageFactory(corpus=dataset.corpus, text=f"not thing {q}, rank {rank}"),
            )
    return dataset
