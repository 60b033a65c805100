"""Mining on real data: SciFact's 300 test claims over their cited abstracts plus distractors,
with the real all-MiniLM-L6-v2 (fp32, 128 tokens to keep the CPU cost to seconds)."""

from collections import defaultdict

import numpy as np
import pytest

from core.ml.encoder import Encoder, EncoderSettings, passage_text
from core.models import JobStatus
from curation.datasets.imports import dataset_import
from curation.mining.services import mining_run_create, mining_run_execute
from curation.models import (
    Candidate,
    CandidateOrigin,
    CandidateRole,
    Dataset,
    Judgment,
    MiningRun,
    Verdict,
)
from tests.curation.mining_support import minilm_path, scifact_subset

MAX_LEN = 128


@pytest.fixture
def scifact(db, shared_data, tmp_path, settings):
    settings.SIEVE_EMBEDDING_CACHE_DIR = tmp_path / "embeddings"
    settings.SIEVE_EMBEDDING_PRECISION = "fp32"
    truth = scifact_subset(shared_data, tmp_path / "scifact")
    result = dataset_import(
        source=tmp_path / "scifact", dataset_name="scifact", options={"split": "test"}
    )
    return result.dataset, truth


@pytest.fixture
def count_passage_encodes(monkeypatch):
    calls = []
    original = Encoder.encode_passages

    def counting(self, texts, **kwargs):
        calls.append(len(texts))
        return original(self, texts, **kwargs)

    monkeypatch.setattr(Encoder, "encode_passages", counting)
    return calls


def _mine(dataset, **options) -> MiningRun:
    run = mining_run_create(
        dataset=dataset, model_name=minilm_path(), max_seq_length=MAX_LEN, enqueue=False,
        **options,
    )  # fmt: skip
    mining_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, run.error
    return run


def _scores_in(rationale: str) -> tuple[float, float]:
    """(teacher score, lowest positive score) as the judgment's rationale states them."""
    score = float(rationale.split("teacher score ")[1].split(" ")[0])
    reference = float(rationale.split("lowest positive ")[1].split(";")[0])
    return score, reference


def _mined(dataset):
    by_query = defaultdict(list)
    rows = Candidate.objects.filter(query__dataset=dataset, origin=CandidateOrigin.MINED)
    for query_id, doc_id, rank, score in rows.values_list(
        "query__query_id", "passage__doc_id", "rank", "teacher_score"
    ):
        by_query[query_id].append((rank, doc_id, score))
    return {q: sorted(v) for q, v in by_query.items()}


@pytest.mark.slow
def test_mining_scifact_end_to_end(scifact, count_passage_encodes):
    dataset, truth = scifact
    n_passages = len(truth["docs"])
    assert dataset.query_count == 300

    first = _mine(dataset, range_max=20, num_negatives=5)
    stats = first.stats
    # The corpus was encoded once, every passage exactly once.
    assert sum(count_passage_encodes) == n_passages and stats["corpus_encoded"] is True
    assert stats["queries_with_positives"] == 300
    # A fresh dataset has no negatives: anything "already present" would be a positive that
    # the miner proposed as a negative.
    assert stats["negatives_already_present"] == 0
    assert stats["negatives_added"] == 300 * 5
    dataset.refresh_from_db()
    assert dataset.negative_count == 300 * 5

    mined = _mined(dataset)
    assert len(mined) == 300
    for query_id, negatives in mined.items():
        assert not {doc for _, doc, _ in negatives} & truth["qrels"][query_id]
        ranks = [rank for rank, _, _ in negatives]
        scores = [score for _, _, score in negatives]
        assert ranks == [1, 2, 3, 4, 5]  # top sampling, no margin: the best non-positives
        assert scores == sorted(scores, reverse=True)

    # Teacher scores equal a direct SentenceTransformer.encode + numpy dot product.
    from sentence_transformers import SentenceTransformer

    direct = SentenceTransformer(minilm_path(), device="cpu")
    direct.max_seq_length = MAX_LEN
    sample = sorted(mined)[:12]
    query_vectors = direct.encode(
        [truth["queries"][q] for q in sample], normalize_embeddings=True, show_progress_bar=False
    )
    sample_docs = sorted({doc for q in sample for _, doc, _ in mined[q]})
    doc_vectors = direct.encode(
        [passage_text(*truth["docs"][d]) for d in sample_docs],
        normalize_embeddings=True,
        show_progress_bar=False,
    )
    doc_row = {d: i for i, d in enumerate(sample_docs)}
    for qi, query_id in enumerate(sample):
        for _, doc_id, score in mined[query_id]:
            expected = float(query_vectors[qi] @ doc_vectors[doc_row[doc_id]])
            assert score == pytest.approx(expected, abs=1e-4)

    # Ranks agree with a full numpy ranking over the corpus (scores checked above).
    from curation.embeddings import corpus_embeddings_get

    ids, matrix = corpus_embeddings_get(
        corpus=dataset.corpus,
        model=minilm_path(),
        settings=EncoderSettings(max_seq_length=MAX_LEN, precision="fp32"),
    )
    assert sum(count_passage_encodes) == n_passages  # that read came from the cache too
    doc_of = dict(dataset.corpus.passages.values_list("id", "doc_id"))
    doc_ids = [doc_of[int(pk)] for pk in ids]
    vectors = direct.encode(
        [truth["queries"][q] for q in sample], normalize_embeddings=True, show_progress_bar=False
    )
    for qi, query_id in enumerate(sample):
        order = np.argsort(-(np.asarray(matrix) @ vectors[qi]), kind="stable")
        non_positive = [doc_ids[i] for i in order if doc_ids[i] not in truth["qrels"][query_id]]
        assert [doc for _, doc, _ in mined[query_id]] == non_positive[:5]

    # The stage-0 teacher judged every negative of every query, with its two scores.
    judgments = Judgment.objects.filter(source_run=f"mining:{first.pk}")
    assert judgments.count() == 300 * 5 == stats["teacher_judgments"]
    assert set(judgments.values_list("rater", flat=True)) == {"teacher:all-minilm-l6-v2:margin"}
    relevant = judgments.filter(verdict=Verdict.RELEVANT).count()
    assert relevant == stats["teacher_flagged_relevant"] > 0
    for judgment in judgments.select_related("candidate")[:200]:
        score, reference = _scores_in(judgment.rationale)
        assert score == pytest.approx(judgment.candidate.teacher_score, abs=1e-4)
        if abs(score - 0.95 * reference) > 2e-4:  # the rationale rounds to 4 decimals
            assert (judgment.verdict == Verdict.RELEVANT) == (score >= 0.95 * reference)

    # Running the same run again (a redelivered task after a crash) adds nothing.
    MiningRun.objects.filter(pk=first.pk).update(status=JobStatus.RUNNING)
    mining_run_execute(run_id=first.pk)
    first.refresh_from_db()
    assert first.status == JobStatus.SUCCEEDED
    assert first.stats["negatives_added"] == 0 and first.stats["teacher_judgments"] == 0
    assert first.stats["corpus_encoded"] is False
    dataset.refresh_from_db()
    assert dataset.negative_count == 300 * 5
    assert Judgment.objects.count() == 300 * 5

    # A second run with the same model reuses the cache; with the 95% rule and a deeper
    # window it adds negatives below the margin, keeps the pairs already there, and the
    # teacher judges only the new ones.
    second = _mine(dataset, range_max=40, num_negatives=8, relative_margin=0.05)
    assert sum(count_passage_encodes) == n_passages
    assert second.stats["corpus_encoded"] is False
    assert second.stats["negatives_already_present"] > 0
    added = second.stats["negatives_added"]
    assert added > 0
    dataset.refresh_from_db()
    assert (
        dataset.negative_count
        == 300 * 5 + added
        == Candidate.objects.filter(query__dataset=dataset, role=CandidateRole.NEGATIVE).count()
    )
    assert second.stats["teacher_judgments"] == added
    new_rows = Candidate.objects.filter(
        query__dataset=dataset, origin=CandidateOrigin.MINED, rank__gt=5
    )
    assert new_rows.exists()
    # Every negative the second run added sits under 95% of its query's lowest positive.
    for candidate in new_rows.select_related("query")[:100]:
        rationale = candidate.judgments.get(source_run=f"mining:{second.pk}").rationale
        _, reference = _scores_in(rationale)
        assert candidate.teacher_score <= 0.95 * reference + 1e-4
        assert candidate.rank <= 40
    assert Dataset.objects.get(pk=dataset.pk).positive_count == 339
