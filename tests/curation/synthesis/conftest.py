"""The synthesis tests' corpus: six passages, each built to meet one case of the generator
and the teacher filter (``test_synthesis.CASES``)."""

import pytest

from tests.factories import DatasetFactory, PassageFactory

from .test_synthesis import PASSAGES


@pytest.fixture
def corpus_dataset(db, settings, tmp_path, monkeypatch):
    settings.SIEVE_EMBEDDING_CACHE_DIR = tmp_path / "embeddings"
    settings.SIEVE_EMBEDDING_PRECISION = "fp32"
    monkeypatch.setenv("SIEVE_TEST_SYNTH_KEY", "sk-test-secret")
    dataset = DatasetFactory(name="synthetic")
    for marker, text in PASSAGES.items():
        PassageFactory(corpus=dataset.corpus, doc_id=f"doc-{marker.lower()}", text=text)
    dataset.corpus.passage_count = len(PASSAGES)
    dataset.corpus.save()
    return dataset
