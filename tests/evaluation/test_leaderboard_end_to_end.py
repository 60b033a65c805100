"""The issue's end-to-end check, in-process on CPU: fine-tune a LoRA on SciFact-train for a few
steps, evaluate the base model and the fine-tune on a small SciFact-test folder, and the
leaderboard shows both rows, the fine-tune's Δ being exactly its score minus the base's."""

import pytest
from django.urls import reverse

from evaluation.leaderboard import model_key_for
from evaluation.models import EvalResult
from evaluation.selectors import leaderboard_get
from evaluation.services.execution import evaluation_run_execute
from evaluation.services.runs import evaluation_run_create
from tests.conftest import SHARED_DATA
from tests.support.environment import missing
from tests.training import minilm_path, scifact_snapshots
from training.services import training_run_create, training_run_execute

from . import TEST_MAX_SEQ_LENGTH, scifact_mini

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

SMALL = {"max_seq_length": TEST_MAX_SEQ_LENGTH, "precision": "fp32"}


@pytest.fixture
def folders(settings, tmp_path):
    if not SHARED_DATA.is_dir():
        missing(f"real data folder {SHARED_DATA} is not present")
    settings.SIEVE_SNAPSHOT_DIR = tmp_path / "snapshots"
    settings.SIEVE_MODEL_DIR = tmp_path / "models"
    settings.SIEVE_EVAL_DATA_DIRS = [tmp_path / "eval-data"]
    settings.SIEVE_EMBEDDING_CACHE_DIR = tmp_path / "embeddings"
    settings.SIEVE_EVAL_RESULTS_DIR = tmp_path / "results"
    scifact_mini(SHARED_DATA, tmp_path / "eval-data" / "scifact-mini", queries=20, distractors=60)
    return tmp_path


def test_base_and_fine_tuned_rows_with_the_right_delta(folders, client, viewer):
    snapshot = scifact_snapshots(SHARED_DATA, folders / "data", queries=32)["bge"]
    training = training_run_create(
        snapshot=snapshot,
        name="lora-scifact",
        config={"max_steps": 4, "batch_size": 8, "query_max_length": 32,
                "passage_max_length": 96, "logging_steps": 1, "save_steps": 0},
        enqueue=False,
    )  # fmt: skip
    training_run_execute(run_id=training.pk)
    training.refresh_from_db()
    assert training.status == "succeeded", training.error

    base = evaluation_run_create(
        model_ref=minilm_path(), tasks=["beir:scifact-mini"], config=SMALL, enqueue=False
    )
    tuned = evaluation_run_create(
        training_run=training, tasks=["beir:scifact-mini"], config=SMALL, enqueue=False
    )
    for run in (base, tuned):
        evaluation_run_execute(run_id=run.pk)
        run.refresh_from_db()
        assert run.status == "succeeded", run.error
    base_score = EvalResult.objects.get(run=base).main_score
    tuned_score = EvalResult.objects.get(run=tuned).main_score

    board = leaderboard_get()
    assert board.tasks == ["beir:scifact-mini"]
    rows = {row.key: row for row in board.rows}
    assert set(rows) == {model_key_for(minilm_path()), f"training:{training.pk}"}
    row = rows[f"training:{training.pk}"]
    assert row.has_base_row
    assert row.scores == [tuned_score]
    assert row.deltas == [pytest.approx(tuned_score - base_score)]
    assert row.entry.info["snapshot_id"] == snapshot.pk and row.entry.info["policy"] == "default"

    client.force_login(viewer)
    html = client.get(reverse("evaluation:leaderboard")).content.decode()
    assert "lora-scifact" in html and f"{(tuned_score - base_score) * 100:+.2f}" in html
