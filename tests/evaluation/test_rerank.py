"""Rerankers evaluated in two stages (issue 12): the same nDCG@10 as mteb's own two-stage run
(first stage with ``prediction_folder``, then ``convert_to_reranking`` and a cross-encoder),
and the run's settings: which runs are rerankers, their leaderboard key and base."""

import pytest

from core.errors import ApplicationError
from core.ml.beir import beir_folder_open
from core.ml.encoder import EncoderSettings
from evaluation.beir import beir_task_build
from evaluation.core import EvalEncoder, ModelSource, model_load
from evaluation.models import EvaluationRun
from evaluation.rerank import RerankerScorer, reranker_load, task_rerank_evaluate
from evaluation.services.runs import evaluation_run_create
from tests.conftest import SHARED_DATA
from tests.factories import TrainingRunFactory
from tests.support.environment import missing

from . import TEST_MAX_SEQ_LENGTH, minilm_path, scifact_mini

SETTINGS = EncoderSettings(batch_size=32, max_seq_length=TEST_MAX_SEQ_LENGTH, precision="fp32")
TOP_K = 20


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    if not SHARED_DATA.is_dir():
        missing(f"real data folder {SHARED_DATA} is not present")
    root = tmp_path_factory.mktemp("rerank-data")
    scifact_mini(SHARED_DATA, root / "mini", queries=10, distractors=40)
    return root, beir_folder_open(root / "mini")


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory):
    """MiniLM as a cross-encoder with a seeded fresh head, saved: both sides load the same."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("reranker") / "model"
    CrossEncoder(minilm_path(), num_labels=1, device="cpu").save_pretrained(str(folder))
    return str(folder)


def test_two_stages_score_what_mtebs_own_reranking_run_scores(mini, cross_encoder, tmp_path):
    import mteb
    from mteb.models.sentence_transformer_wrapper import CrossEncoderWrapper
    from sentence_transformers import CrossEncoder, SentenceTransformer

    _, folder = mini
    plain = SentenceTransformer(minilm_path(), device="cpu")
    plain.max_seq_length = TEST_MAX_SEQ_LENGTH
    run = dict(cache=None, show_progress_bar=False, co2_tracker=False,
               encode_kwargs={"batch_size": 32})  # fmt: skip
    first = mteb.evaluate(plain, beir_task_build(folder), prediction_folder=tmp_path / "p", **run)
    second_task = beir_task_build(folder).convert_to_reranking(tmp_path / "p", top_k=TOP_K)
    reference = CrossEncoderWrapper(CrossEncoder(cross_encoder, device="cpu"))
    direct = mteb.evaluate(reference, second_task, **run)
    direct_scores = direct.task_results[0].scores["test"][0]

    loaded = model_load(ModelSource(model=minilm_path()), settings=SETTINGS)
    encoder = EvalEncoder(loaded, settings=SETTINGS, store_root=tmp_path / "embeddings")
    scorer = RerankerScorer(reranker_load(cross_encoder, device="cpu"), name="local/ce",
                            revision="test")  # fmt: skip
    messages = []
    try:
        outcome = task_rerank_evaluate(
            lambda: beir_task_build(folder), encoder, scorer, split="test",
            results_dir=tmp_path / "ours", top_k=TOP_K,
            progress=lambda fraction, message: messages.append((fraction, message)),
        )  # fmt: skip
    finally:
        scorer.close()
        encoder.close()

    assert outcome.scores.ndcg_at_10 == pytest.approx(direct_scores["ndcg_at_10"], abs=1e-9)
    assert outcome.scores.main_score == pytest.approx(direct_scores["main_score"], abs=1e-9)
    first_scores = first.task_results[0].scores["test"][0]
    assert outcome.counts["first_stage"]["ndcg_at_10"] == pytest.approx(
        first_scores["ndcg_at_10"], abs=1e-9
    )
    # A fresh head ranks at random: reranking must change the list, or nothing was scored.
    assert outcome.scores.ndcg_at_10 != pytest.approx(first_scores["ndcg_at_10"], abs=1e-6)
    assert outcome.counts["pairs_reranked"] == 10 * TOP_K and outcome.counts["top_k"] == TOP_K
    assert outcome.result_path.endswith(".json")
    assert any("reranking 200 of 200" in message for _, message in messages)
    assert messages[-1][0] == 1.0


def test_on_several_devices_the_reranker_scores_in_a_pool_as_one_process_does(
    mini, cross_encoder, tmp_path
):
    """Two CPU processes stand in for two GPUs: every call mteb makes is split across them,
    the scores and the nDCG@10 are those of one process, and progress still counts pairs."""
    from evaluation.multi_gpu import encode_pool_start, encode_pool_stop

    _, folder = mini
    loaded = model_load(ModelSource(model=minilm_path()), settings=SETTINGS)
    encoder = EvalEncoder(loaded, settings=SETTINGS, store_root=tmp_path / "embeddings")
    outcomes, messages = {}, []
    for devices in (None, ["cpu", "cpu"]):
        model = reranker_load(cross_encoder, device="cpu")
        pool = encode_pool_start(model, devices, precision="fp32") if devices else None
        scorer = RerankerScorer(model, name="local/ce", revision="test", pool=pool)
        assert scorer.devices == (2 if devices else 1)
        try:
            outcomes[bool(devices)] = task_rerank_evaluate(
                lambda: beir_task_build(folder), encoder, scorer, split="test",
                results_dir=tmp_path / f"ours-{bool(devices)}", top_k=5,
                progress=lambda fraction, message: messages.append(message),
            )  # fmt: skip
        finally:
            scorer.close()
            if pool is not None:
                encode_pool_stop(pool)
    encoder.close()
    alone, pooled = outcomes[False], outcomes[True]
    assert pooled.scores.ndcg_at_10 == pytest.approx(alone.scores.ndcg_at_10, abs=1e-6)
    assert pooled.scores.main_score == pytest.approx(alone.scores.main_score, abs=1e-6)
    assert pooled.counts["pairs_reranked"] == alone.counts["pairs_reranked"] == 10 * 5
    assert sum("reranking 50 of 50" in message for message in messages) == 2


@pytest.mark.django_db
def test_which_runs_are_rerankers_and_where_they_sit_on_the_leaderboard(mini, settings, tmp_path):
    settings.SIEVE_EVAL_DATA_DIRS = [mini[0]]
    settings.SIEVE_EVAL_RESULTS_DIR = tmp_path / "results"
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "config.json").write_text("{}")
    reranker = TrainingRunFactory(
        artifact_path=str(artifact), artifact_kind="full", base_model=minilm_path(),
        config={"model_kind": "reranker", "method": "full"},
    )  # fmt: skip
    run = evaluation_run_create(training_run=reranker, tasks=["beir:mini"], enqueue=False)
    rerank = run.config["rerank"]
    assert rerank["first_stage"] == minilm_path() and rerank["top_k"] == 100
    suffix = f"|rerank top-100 of {minilm_path()}"
    assert run.model_key == f"training:{reranker.pk}{suffix}"
    assert run.base_model == minilm_path() + suffix  # the base reranker over the same stage
    assert run.model_label.lower().endswith("(reranks the top 100 of all-minilm-l6-v2)")

    base = evaluation_run_create(
        model_ref=minilm_path(), first_stage="", top_k=50, tasks=["beir:mini"], enqueue=False
    )
    assert base.model_key == base.base_model == f"{minilm_path()}|rerank top-50 of {minilm_path()}"
    embedder = evaluation_run_create(model_ref=minilm_path(), tasks=["beir:mini"], enqueue=False)
    assert "rerank" not in embedder.config and embedder.model_key == minilm_path()

    for kwargs, field in [({"top_k": 5}, "top_k"), ({"first_stage": "/no/model"}, "first_stage"),
                          ({"first_stage": "", "top_k": 0}, "top_k")]:  # fmt: skip
        with pytest.raises(ApplicationError) as caught:
            evaluation_run_create(model_ref=minilm_path(), tasks=["beir:mini"], enqueue=False,
                                  **kwargs)  # fmt: skip
        assert caught.value.detail["field"] == field
    assert EvaluationRun.objects.count() == 3


@pytest.mark.django_db
def test_the_form_and_the_api_evaluate_a_published_cross_encoder_as_a_reranker(
    mini, settings, tmp_path, client, curator, api_as, monkeypatch
):
    from django.urls import reverse

    from evaluation import tasks
    from tests.support.sends import capture_sends

    capture_sends(monkeypatch, tasks.evaluation_run)
    settings.SIEVE_EVAL_DATA_DIRS = [mini[0]]
    settings.SIEVE_EVAL_RESULTS_DIR = tmp_path / "results"
    client.force_login(curator)
    form = {"tasks": ["beir:mini"], "mode": "full", "split": "test", "batch_size": 32,
            "seed": 0, "model_ref": minilm_path()}  # fmt: skip
    bad = client.post(reverse("evaluation:launch"), {**form, "first_stage": "/no/such/model"})
    assert bad.status_code == 400
    assert bad.context["form"].errors["first_stage"] == [
        "first stage: no model folder at /no/such/model"
    ]
    response = client.post(
        reverse("evaluation:launch"), {**form, "first_stage": minilm_path(), "top_k": 30}
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    run = EvaluationRun.objects.get()
    assert run.config["rerank"]["top_k"] == 30

    created = api_as(curator).post(
        reverse("api:evaluation-list"),
        {"model_ref": minilm_path(), "tasks": ["beir:mini"], "first_stage": ""},
        format="json",
    )
    assert created.status_code == 202, created.json()
    again = EvaluationRun.objects.get(pk=created.json()["id"])
    assert again.config["rerank"]["first_stage"] == minilm_path()

    from django.core.management import call_command

    call_command("evaluate", "--model", minilm_path(), "--first-stage", minilm_path(),
                 "--top-k", "10", "--task", "beir:mini", "--enqueue")  # fmt: skip
    assert EvaluationRun.objects.latest("id").config["rerank"]["top_k"] == 10
