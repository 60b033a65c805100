"""The mteb adapter on a small SciFact subset with the real all-MiniLM-L6-v2: the same scores
as ``mteb.evaluate`` on the plain model, a second run that encodes only the queries, the
streamlined subsample served from the full run's vectors, progress and cancellation."""

import dataclasses
import json

import pytest

from core.ml.beir import beir_folder_open
from core.ml.encoder import EncoderSettings
from evaluation.beir import beir_task_build
from evaluation.core import (
    EvalEncoder,
    ModelSource,
    TaskDataError,
    model_load,
    registry_task_get,
    split_scores,
    task_evaluate,
)
from tests.support.environment import missing

from . import TEST_MAX_SEQ_LENGTH, minilm_path, scifact_mini

SETTINGS = EncoderSettings(batch_size=32, max_seq_length=TEST_MAX_SEQ_LENGTH, precision="fp32")


def test_split_scores_average_several_subsets():
    scores = split_scores(
        [
            {"hf_subset": "en", "main_score": 0.5, "ndcg_at_10": 0.5, "mrr_at_10": 0.6},
            {"hf_subset": "de", "main_score": 0.3, "ndcg_at_10": 0.3, "mrr_at_10": 0.2},
        ]
    )
    assert scores.main_score == pytest.approx(0.4) and scores.mrr_at_10 == pytest.approx(0.4)
    assert scores.recall_at_100 is None
    assert set(scores.metrics["subsets"]) == {"en", "de"}


# --- the real model -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    from tests.conftest import SHARED_DATA

    if not SHARED_DATA.is_dir():
        missing(f"real data folder {SHARED_DATA} is not present")
    folder = tmp_path_factory.mktemp("beir") / "mini"
    info = scifact_mini(SHARED_DATA, folder, queries=30, distractors=70)
    return beir_folder_open(folder), info


@pytest.fixture(scope="module")
def loaded():
    return model_load(ModelSource(model=minilm_path()), settings=SETTINGS)


@pytest.fixture(scope="module")
def cold(mini, loaded, tmp_path_factory):
    """mteb.evaluate on the plain SentenceTransformer, then our first (cold-cache) run."""
    import mteb
    from sentence_transformers import SentenceTransformer

    folder, _ = mini
    plain = SentenceTransformer(minilm_path(), device="cpu")
    plain.max_seq_length = TEST_MAX_SEQ_LENGTH
    direct = mteb.evaluate(
        plain,
        beir_task_build(folder),
        cache=None,
        encode_kwargs={"batch_size": SETTINGS.batch_size},
        show_progress_bar=False,
        co2_tracker=False,
    )
    store_root = tmp_path_factory.mktemp("embeddings")
    encoder = EvalEncoder(loaded, settings=SETTINGS, store_root=store_root)
    try:
        outcome = task_evaluate(
            beir_task_build(folder),
            encoder,
            split="test",
            results_dir=tmp_path_factory.mktemp("results"),
            batch_size=SETTINGS.batch_size,
        )
    finally:
        encoder.close()
    return direct.task_results[0].scores["test"][0], outcome, store_root


def _numeric(scores: dict) -> dict:
    return {k: v for k, v in scores.items() if isinstance(v, float)}


def test_a_cold_run_scores_exactly_like_mteb_on_the_plain_model(mini, cold):
    _, info = mini
    direct, outcome, _ = cold
    assert outcome.scores.main_score == direct["main_score"]
    assert _numeric(outcome.scores.metrics) == _numeric(direct)  # every metric, not only one
    assert outcome.scores.ndcg_at_10 == direct["ndcg_at_10"]
    assert outcome.corpus_size == len(info["corpus"]) and outcome.query_count == 30
    assert outcome.counts["documents_encoded"] == len(info["corpus"])
    assert outcome.counts["documents_cached"] == 0 and outcome.counts["queries_encoded"] == 30
    # mteb's own result file, filed under the explicit model name and revision.
    written = json.loads(open(outcome.result_path).read())
    assert written == outcome.task_result and written["task_name"] == "beir:mini"
    assert "local__all-minilm-l6-v2" in outcome.result_path
    assert written["scores"]["test"][0]["main_score"] == direct["main_score"]


def test_a_second_run_encodes_only_the_queries_with_identical_scores(mini, loaded, cold, tmp_path):
    folder, info = mini
    _, first, store_root = cold
    encoder = EvalEncoder(loaded, settings=SETTINGS, store_root=store_root)
    try:
        second = task_evaluate(
            beir_task_build(folder), encoder, split="test", results_dir=tmp_path, batch_size=32
        )
    finally:
        encoder.close()
    assert second.counts["documents_encoded"] == 0
    assert second.counts["documents_cached"] == len(info["corpus"])
    assert second.counts["queries_encoded"] == 30
    assert second.scores.metrics == first.scores.metrics


def test_the_streamlined_subsample_is_served_from_the_full_runs_vectors(
    mini, loaded, cold, tmp_path
):
    folder, info = mini
    _, full, store_root = cold
    encoder = EvalEncoder(loaded, settings=SETTINGS, store_root=store_root)
    try:
        outcome = task_evaluate(
            beir_task_build(folder),
            encoder,
            split="test",
            results_dir=tmp_path,
            batch_size=32,
            corpus_sample=10,
            seed=3,
        )
    finally:
        encoder.close()
    assert outcome.corpus_size == len(info["judged"]) + 10
    assert outcome.counts["documents_encoded"] == 0
    assert outcome.counts["documents_cached"] == outcome.corpus_size
    # Fewer distractors can only make retrieval easier.
    assert outcome.scores.main_score >= full.scores.main_score


def test_the_cache_key_follows_prompt_length_precision_and_adapter(mini, loaded):
    folder, _ = mini
    metadata = beir_task_build(folder).metadata
    base = EvalEncoder(loaded, settings=SETTINGS)
    prefixed = EvalEncoder(
        loaded, settings=dataclasses.replace(SETTINGS, passage_prefix="passage: ")
    )
    shorter = EvalEncoder(dataclasses.replace(loaded, max_seq_length=64), settings=SETTINGS)
    bf16 = EvalEncoder(dataclasses.replace(loaded, precision="bf16"), settings=SETTINGS)
    adapter = EvalEncoder(
        dataclasses.replace(loaded, identity={**loaded.identity, "adapter": "abc"}),
        settings=SETTINGS,
    )
    try:
        parts = [e.cache_parts(metadata) for e in (base, prefixed, shorter, bf16, adapter)]
    finally:
        for encoder in (base, prefixed, shorter, bf16, adapter):
            encoder.close()
    assert parts[0]["document_prompt"] == "" and parts[1]["document_prompt"] == "passage: "
    assert parts[0]["model"].startswith("all-minilm-l6-v2@")
    assert len({json.dumps(p, sort_keys=True) for p in parts}) == 5


def test_progress_comes_per_batch_and_an_exception_stops_the_encoding(mini, loaded, tmp_path):
    folder, _ = mini
    seen = []

    class Stop(Exception):
        pass

    def progress(fraction, message):
        seen.append((fraction, message))
        if "encoding documents" in message:
            raise Stop  # what ProgressReporter does when a user cancels

    encoder = EvalEncoder(loaded, settings=SETTINGS, store_root=tmp_path / "cache")
    try:
        with pytest.raises(Stop):
            task_evaluate(
                beir_task_build(folder),
                encoder,
                split="test",
                results_dir=tmp_path / "results",
                batch_size=32,
                progress=progress,
            )
    finally:
        encoder.close()
    messages = [m for _, m in seen]
    assert "beir:mini: encoding queries 30 of 30" in messages
    assert messages[-1].startswith("beir:mini: encoding documents 32 of ")  # after one batch
    fractions = [f for f, _ in seen]
    # What a person watching the bar sees: it only moves forward, the encoded queries move it,
    # and one batch of documents moves it further without reaching the end.
    assert fractions == sorted(fractions) and 0.0 <= fractions[0]
    queries_done = max(f for f, m in seen if "encoding queries 30 of 30" in m)
    assert 0.0 < queries_done < fractions[-1] < 1.0
    # Nothing half-encoded was stored.
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.npy"))


def test_a_registry_task_without_the_hub_is_a_clear_error(loaded, tmp_path, monkeypatch):
    import datasets.config
    import huggingface_hub.constants

    # The hub unreachable, whatever this machine's network: offline mode, read by both.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    encoder = EvalEncoder(loaded, settings=SETTINGS)
    try:
        with pytest.raises(TaskDataError, match='task "SciFact".*Hugging Face hub') as caught:
            task_evaluate(registry_task_get("SciFact"), encoder, split="test", results_dir=tmp_path)
    finally:
        encoder.close()
    assert caught.value.task_name == "SciFact"
    with pytest.raises(KeyError):
        registry_task_get("NoSuchTask")
