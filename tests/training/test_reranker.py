"""Rerankers (issue 12: RLHN fine-tunes rerankers on the relabelled data too): a cross-encoder
trained from a snapshot — refused as LoRA, its artifact reloading to the same scores — then
evaluated by reranking the top results of the first-stage model, beside the embedders on the
leaderboard with its Δ against the base reranker."""

import numpy as np
import pytest

from core.errors import ApplicationError
from core.models import JobStatus
from training.core.config import TrainConfig
from training.core.loop import train
from training.core.reranker import load_reranker
from training.services import training_run_create, training_run_execute

from . import minilm_path, toy_rows

pytestmark = pytest.mark.django_db

RERANKER = {
    "model_kind": "reranker", "method": "full", "num_negatives": 2, "batch_size": 8,
    "max_steps": 4, "query_max_length": 32, "passage_max_length": 64, "logging_steps": 1,
    "save_steps": 2, "learning_rate": 5e-5,
}  # fmt: skip


def test_a_reranker_is_a_full_fine_tune(snapshot):
    with pytest.raises(ApplicationError, match="a reranker trains as a full fine-tune") as caught:
        training_run_create(snapshot=snapshot, config={"model_kind": "reranker", "method": "lora"})
    assert caught.value.detail["field"] == "method"
    # Not given, a reranker's method is full, with a full fine-tune's learning rate.
    chosen = TrainConfig.from_dict({"model_kind": "reranker"})
    assert (chosen.method, chosen.learning_rate) == ("full", 2e-5)


@pytest.mark.slow
def test_a_reranker_trains_resumably_and_reloads_to_the_same_scores(tmp_path):
    rows = toy_rows(32, negatives=2)
    config = TrainConfig.from_dict({**RERANKER, "base_model": minilm_path()})
    result = train(config=config, rows=rows, output_dir=tmp_path / "run")
    assert (result.step, result.artifact_kind) == (4, "full")
    assert result.metrics["model_kind"] == "reranker" and result.metrics["samples_per_s"] > 0
    pairs = [(rows.columns["anchor"][i], rows.columns[c][i]) for i in range(4)
             for c in ("positive", "negative_1")]  # fmt: skip
    trained = result.model.predict(pairs)
    reloaded = load_reranker(result.artifact_path, device="cpu").predict(pairs)
    np.testing.assert_allclose(reloaded, trained, atol=1e-5)

    # The same run killed while it wrote its step-4 checkpoint: it resumes from step 2 and
    # ends where the whole run ended (the optimizer, schedule and RNG states come back).
    import shutil

    from training.core.checkpoints import COMPLETE_MARKER

    shutil.copytree(tmp_path / "run" / "checkpoints", tmp_path / "killed" / "checkpoints")
    (tmp_path / "killed" / "checkpoints" / "checkpoint-4" / COMPLETE_MARKER).unlink()
    again = train(config=config, rows=rows, output_dir=tmp_path / "killed")
    assert again.resumed_from_step == 2 and again.step == 4
    np.testing.assert_allclose(again.model.predict(pairs), trained, atol=1e-5)


@pytest.fixture
def eval_data(settings, tmp_path, shared_data):
    from tests.evaluation import scifact_mini

    root = tmp_path / "eval-data"
    scifact_mini(shared_data, root / "mini", queries=10, distractors=40)
    settings.SIEVE_EVAL_DATA_DIRS = [root]
    settings.SIEVE_EMBEDDING_CACHE_DIR = tmp_path / "embeddings"
    settings.SIEVE_EVAL_RESULTS_DIR = tmp_path / "results"


@pytest.mark.slow
def test_a_trained_reranker_is_evaluated_over_the_first_stage_and_ranked_beside_embedders(
    snapshot, eval_data, client, viewer
):
    from django.urls import reverse

    from evaluation.selectors import leaderboard_get
    from evaluation.services.execution import evaluation_run_execute
    from evaluation.services.runs import evaluation_run_create

    run = training_run_create(snapshot=snapshot, config=RERANKER, enqueue=False)
    training_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and run.artifact_kind == "full", run.error

    evaluations = [
        evaluation_run_create(training_run=run, tasks=["beir:mini"], enqueue=False,
                              config={"max_seq_length": 128}),
        evaluation_run_create(model_ref=minilm_path(), first_stage="", tasks=["beir:mini"],
                              enqueue=False, config={"max_seq_length": 128}),
        evaluation_run_create(model_ref=minilm_path(), tasks=["beir:mini"], enqueue=False,
                              config={"max_seq_length": 128}),
    ]  # fmt: skip
    for evaluation in evaluations:
        evaluation_run_execute(run_id=evaluation.pk)
        evaluation.refresh_from_db()
        assert evaluation.status == JobStatus.SUCCEEDED, evaluation.error
    fine_tuned, base_reranker, embedder = evaluations
    result = fine_tuned.results.get()
    first = result.metrics["first_stage"]
    # The first stage is the embedder's own run: the same nDCG@10 before reranking.
    assert first["ndcg_at_10"] == pytest.approx(embedder.results.get().ndcg_at_10, abs=1e-9)
    assert fine_tuned.stats["tasks"]["beir:mini"]["pairs_reranked"] > 0
    assert fine_tuned.stats["reranker"]["top_k"] == 100

    board = leaderboard_get()
    rows = {row.key: row for row in board.rows}
    assert set(rows) == {fine_tuned.model_key, base_reranker.model_key, embedder.model_key}
    tuned_row = rows[fine_tuned.model_key]
    assert tuned_row.has_base_row and tuned_row.entry.info["reranker"]["top_k"] == 100
    assert tuned_row.mean_delta == pytest.approx(
        result.main_score - base_reranker.results.get().main_score
    )
    client.force_login(viewer)
    page = client.get(reverse("evaluation:leaderboard")).content.decode()
    assert page.count('<span class="badge">reranker</span>') == 2
    # The run page says which model re-ordered what, and the first stage's own score.
    detail = client.get(reverse("evaluation:run_detail", args=[fine_tuned.pk])).content.decode()
    assert "<dt>Reranker</dt>" in detail and "<dt>First stage</dt>" in detail
    assert "First stage nDCG@10" in detail and "re-orders the top 100" in detail
    assert fine_tuned.stats["model"]["ref"] == minilm_path()


def test_the_form_launches_a_reranker_as_a_full_fine_tune(client, curator, snapshot, sent):
    from django.urls import reverse

    from training.models import TrainingRun

    from .test_web import form_data

    client.force_login(curator)
    response = client.post(
        reverse("training:launch", args=[snapshot.pk]), form_data(model_kind="reranker")
    )
    assert response.status_code == 302
    run = TrainingRun.objects.get()
    assert run.config["model_kind"] == "reranker" and run.method == "full"
    assert run.config["learning_rate"] == 2e-5
