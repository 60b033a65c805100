"""Evaluation runs through the services, in this process, on small SciFact folders with the real
all-MiniLM-L6-v2: validation, results and mteb's JSON, the embedding cache across runs,
streamlined vs full, a fine-tuned adapter, resume, cancel, and the management command."""

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from core.errors import ApplicationError
from core.jobs import job_request_cancel
from core.ml.encoder import resolve_device
from core.models import JobStatus
from evaluation import tasks
from evaluation.core import four_bit_support
from evaluation.models import EvalResult, EvaluationRun
from evaluation.services.deltas import eval_result_delta_vs_full
from evaluation.services.execution import evaluation_run_execute
from evaluation.services.runs import evaluation_run_create
from evaluation.services.task_specs import evaluation_tasks_available
from tests.conftest import SHARED_DATA
from tests.factories import EvalResultFactory, TrainingRunFactory
from tests.support.environment import missing
from tests.support.sends import capture_sends

from . import TEST_MAX_SEQ_LENGTH, minilm_path, scifact_mini

pytestmark = pytest.mark.django_db


SMALL = {"max_seq_length": TEST_MAX_SEQ_LENGTH, "precision": "fp32"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Two small SciFact folders: ``mini`` (30 claims) and ``mini2`` (10 other claims)."""
    if not SHARED_DATA.is_dir():
        missing(f"real data folder {SHARED_DATA} is not present")
    root = tmp_path_factory.mktemp("eval-data")
    info = scifact_mini(SHARED_DATA, root / "mini", queries=30, distractors=70)
    scifact_mini(SHARED_DATA, root / "mini2", queries=10, distractors=20, skip_queries=30)
    return root, info


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("embeddings")


@pytest.fixture
def eval_settings(settings, data_dir, shared_cache, tmp_path):
    settings.SIEVE_EVAL_DATA_DIRS = [data_dir[0]]
    settings.SIEVE_EMBEDDING_CACHE_DIR = shared_cache
    settings.SIEVE_EVAL_RESULTS_DIR = tmp_path / "results"
    return settings


@pytest.fixture
def sent(monkeypatch):
    return capture_sends(monkeypatch, tasks.evaluation_run)


def _run(**kwargs) -> EvaluationRun:
    run = evaluation_run_create(enqueue=False, **kwargs)
    evaluation_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


# --- what is on offer, and validation -----------------------------------------------------


def test_tasks_on_offer_are_the_local_folders_then_mteb_registry(eval_settings):
    options = evaluation_tasks_available()
    local = [o for o in options if o.source == "local"]
    assert [(o.spec, o.name, o.splits) for o in local] == [
        ("beir:mini", "mini", ("test",)),
        ("beir:mini2", "mini2", ("test",)),
    ]
    registry = {o.spec: o for o in options if o.source == "registry"}
    assert registry["SciFact"].splits == ("test",) and "claims" in registry["SciFact"].description
    assert "MSMARCO" in registry and registry["MSMARCO"].splits[0] == "dev"
    assert options.index(local[-1]) < options.index(registry["SciFact"])


def test_creating_validates_up_front(eval_settings, tmp_path):
    def error(**kwargs):
        with pytest.raises(ApplicationError) as caught:
            evaluation_run_create(enqueue=False, **kwargs)
        return caught.value

    e = error(model_ref=minilm_path(), tasks=["beir:nope"])
    assert e.detail == {"field": "tasks", "task": "beir:nope"} and "beir:nope" in e.message
    assert error(model_ref=minilm_path(), tasks=["NoSuchTask"]).detail["field"] == "tasks"
    assert error(model_ref=minilm_path(), tasks=[]).detail["field"] == "tasks"
    e = error(model_ref=str(tmp_path / "missing"), tasks=["beir:mini"])
    assert e.detail == {"field": "model_ref"} and "no model folder" in e.message
    (tmp_path / "empty").mkdir()
    assert error(model_ref=str(tmp_path / "empty"), tasks=["beir:mini"]).detail["field"] == (
        "model_ref"
    )
    e = error(model_ref="no-such-org/no-such-model", tasks=["beir:mini"])
    assert e.detail == {"field": "model_ref"} and "unknown model" in e.message
    pending = TrainingRunFactory(status=JobStatus.RUNNING, artifact_path="")
    e = error(training_run=pending, tasks=["beir:mini"])
    assert e.detail == {"field": "training_run"} and "no artifact yet" in e.message
    e = error(model_ref=minilm_path(), tasks=["beir:mini"], config={"batch_sise": 8})
    assert e.detail == {"field": "batch_sise"}
    assert error(model_ref=minilm_path(), tasks=["beir:mini"], config={"batch_size": 0}).detail == {
        "field": "batch_size"
    }
    assert error(model_ref=minilm_path(), tasks=["beir:mini"], mode="fast").detail == {
        "field": "mode"
    }
    assert not EvaluationRun.objects.exists()


def test_a_local_model_is_stored_by_its_absolute_path(
    eval_settings, sent, django_capture_on_commit_callbacks, curator
):
    folder = Path(minilm_path())
    roundabout = str(folder / ".." / folder.name)
    with django_capture_on_commit_callbacks(execute=True):
        run = evaluation_run_create(
            model_ref=roundabout, tasks=["beir:mini", "SciFact", "MSMARCO"], user=curator
        )
        assert sent == []  # only once the transaction commits
    assert sent == [run.pk]
    run.refresh_from_db()
    assert run.celery_task_id == sent.ids[0] != "" and run.status == JobStatus.QUEUED
    assert run.model_ref == run.model_key == run.base_model == str(folder.resolve())
    assert run.model_label == "all-minilm-l6-v2" and run.created_by == curator
    assert run.config["task_splits"] == {"beir:mini": "test", "SciFact": "test", "MSMARCO": "dev"}
    assert run.config["batch_size"] == 32 and run.config["query_prefix"] == ""
    assert "corpus_sample" not in run.config
    assert run.results_dir == str(eval_settings.SIEVE_EVAL_RESULTS_DIR / f"run-{run.pk}")


# --- running ------------------------------------------------------------------------------


def test_full_and_streamlined_share_vectors_and_report_their_difference(
    eval_settings, data_dir, tmp_path
):
    _, info = data_dir
    eval_settings.SIEVE_EMBEDDING_CACHE_DIR = tmp_path / "fresh-cache"
    corpus = len(info["corpus"])
    judged = len(info["judged"])

    streamlined = _run(
        model_ref=minilm_path(),
        tasks=["beir:mini"],
        mode="streamlined",
        config={**SMALL, "corpus_sample": 10, "seed": 1},
    )
    assert streamlined.status == JobStatus.SUCCEEDED, streamlined.error
    lite = streamlined.results.get()
    assert lite.corpus_size == judged + 10 and lite.query_count == 30
    assert streamlined.stats["tasks"]["beir:mini"]["documents_encoded"] == judged + 10
    # 4-bit loading is used where this machine allows it (a CUDA GPU with bitsandbytes);
    # elsewhere the run loads normally and says why (no CUDA; bitsandbytes missing).
    four_bit = streamlined.stats["four_bit"]
    device = resolve_device(None)
    usable, reason = four_bit_support(device)
    assert four_bit == {"requested": True, "used": usable, "reason": reason}
    if device == "cpu":
        assert "CUDA" in four_bit["reason"]
    assert "delta_vs_full" not in lite.metrics  # no full run yet

    full = _run(model_ref=minilm_path(), tasks=["beir:mini"], config=SMALL)
    assert full.status == JobStatus.SUCCEEDED, full.error
    result = full.results.get()
    assert (result.task, result.split, result.corpus_size) == ("beir:mini", "test", corpus)
    assert result.main_score == result.ndcg_at_10 == result.metrics["ndcg_at_10"]
    assert result.recall_at_100 == result.metrics["recall_at_100"]
    assert result.mrr_at_10 == result.metrics["mrr_at_10"]
    assert result.evaluation_seconds > 0
    # Only what the streamlined run did not encode — unless that run encoded in 4-bit,
    # whose vectors are another family in the cache.
    shared = 0 if four_bit["used"] else judged + 10
    assert full.stats["tasks"]["beir:mini"]["documents_encoded"] == corpus - shared
    assert full.stats["tasks"]["beir:mini"]["documents_cached"] == shared
    # mteb's own JSON, on disk under the run's folder and in the row.
    on_disk = Path(full.stats["tasks"]["beir:mini"]["result_path"])
    assert on_disk.is_relative_to(full.results_dir)
    # (NaN, which mteb writes for metrics undefined on a split, is stored as null.)
    assert json.loads(on_disk.read_text(), parse_constant=lambda _: None) == result.mteb_result
    assert result.mteb_result["scores"]["test"][0]["main_score"] == result.main_score
    # The full result arrived second: it wrote the delta into the streamlined result.
    lite.refresh_from_db()
    delta = lite.metrics["delta_vs_full"]
    assert delta["full_run"] == full.pk
    assert delta["main_score"] == pytest.approx(lite.main_score - result.main_score, abs=1e-6)
    assert delta["corpus_size"] == judged + 10 and delta["full_corpus_size"] == corpus

    again = _run(model_ref=minilm_path(), tasks=["beir:mini"], config=SMALL)
    stats = again.stats["tasks"]["beir:mini"]
    assert stats["documents_encoded"] == 0 and stats["documents_cached"] == corpus
    assert stats["queries_encoded"] == 30
    assert again.results.get().metrics == result.metrics
    # The status line names the task as pages do (the folder's name), not by its spec.
    assert again.progress == 1.0 and again.progress_message.startswith("nDCG@10 mini ")
    # Streamlined second: it compares with the newest full run right away.
    second = _run(
        model_ref=minilm_path(),
        tasks=["beir:mini"],
        mode="streamlined",
        config={**SMALL, "corpus_sample": 10, "seed": 1},
    )
    lite2 = second.results.get()
    assert lite2.metrics["delta_vs_full"]["full_run"] == again.pk
    assert second.stats["tasks"]["beir:mini"]["delta_vs_full"]["full_run"] == again.pk
    assert eval_result_delta_vs_full(result=lite2)["full_run"] == again.pk
    assert eval_result_delta_vs_full(result=result) is None  # a full result has none


def test_a_training_runs_adapter_is_evaluated_on_the_base_from_the_database(
    eval_settings, tmp_path
):
    from peft import LoraConfig
    from sentence_transformers import SentenceTransformer

    base = SentenceTransformer(minilm_path(), device="cpu")
    # Random A and B: an adapter that changes the embeddings (peft's default B = 0 would not).
    base.add_adapter(LoraConfig(r=4, target_modules=["query", "value"], init_lora_weights=False))
    artifact = tmp_path / "training-7" / "adapter"
    base.save_pretrained(str(artifact))
    config_path = artifact / "adapter_config.json"
    adapter_config = json.loads(config_path.read_text())
    # As after a move to another machine: the base path written in the adapter is wrong.
    adapter_config["base_model_name_or_path"] = "/nowhere/all-MiniLM-L6-v2"
    config_path.write_text(json.dumps(adapter_config))
    training = TrainingRunFactory(
        name="lora-test",
        base_model=minilm_path(),
        artifact_path=str(artifact),
        artifact_kind="adapter",
        config={"query_prefix": "", "passage_prefix": ""},
    )

    tuned = _run(training_run=training, tasks=["beir:mini2"], config=SMALL)
    assert tuned.status == JobStatus.SUCCEEDED, tuned.error
    assert (tuned.model_key, tuned.model_label) == (f"training:{training.pk}", "lora-test")
    assert tuned.model_ref == str(artifact) and tuned.base_model == minilm_path()
    assert tuned.stats["model"]["identity"]["adapter"]
    assert tuned.stats["model"]["mteb_name"] == f"sieve/training-{training.pk}"
    plain = _run(model_ref=minilm_path(), tasks=["beir:mini2"], config=SMALL)
    # Its own cache family: the adapter's vectors are encoded, never the base's reused.
    assert tuned.stats["tasks"]["beir:mini2"]["documents_encoded"] > 0
    # Ten easy claims: both rank every cited abstract first, but the scores differ.
    assert tuned.results.get().metrics != plain.results.get().metrics


def test_a_resumed_run_skips_the_tasks_already_stored(eval_settings):
    run = evaluation_run_create(
        model_ref=minilm_path(), tasks=["beir:mini", "beir:mini2"], config=SMALL, enqueue=False
    )
    # Its previous life stored the first task, then the worker died.
    earlier = EvalResultFactory(run=run, task="beir:mini", split="test", main_score=0.123)
    EvaluationRun.objects.filter(pk=run.pk).update(status=JobStatus.RUNNING)
    evaluation_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert run.results.get(task="beir:mini").pk == earlier.pk
    assert run.results.get(task="beir:mini").main_score == 0.123
    assert run.results.get(task="beir:mini2").query_count == 10
    assert run.stats["tasks"]["beir:mini"]["resumed"] == "already stored"


def test_cancel_before_and_between_tasks(eval_settings, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        queued = evaluation_run_create(model_ref=minilm_path(), tasks=["beir:mini"], config=SMALL)
    job_request_cancel(job=queued)
    evaluation_run_execute(run_id=queued.pk)  # the message arrives anyway
    queued.refresh_from_db()
    assert queued.status == JobStatus.CANCELLED and not queued.results.exists()

    running = evaluation_run_create(
        model_ref=minilm_path(), tasks=["beir:mini"], config=SMALL, enqueue=False
    )
    EvaluationRun.objects.filter(pk=running.pk).update(
        status=JobStatus.RUNNING, cancel_requested=True
    )
    evaluation_run_execute(run_id=running.pk)
    running.refresh_from_db()
    assert running.status == JobStatus.CANCELLED and running.error == "cancelled by a user"
    assert not EvalResult.objects.filter(run=running).exists()


def test_a_registry_task_without_the_hub_fails_with_its_name(eval_settings, monkeypatch):
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    run = _run(model_ref=minilm_path(), tasks=["SciFact"], config=SMALL)
    assert run.status == JobStatus.FAILED
    assert 'task "SciFact"' in run.error and "Hugging Face hub" in run.error
    assert run.error_detail == {"field": "tasks", "task": "SciFact"}


def test_the_evaluate_command(eval_settings, capsys):
    call_command("evaluate", "--list-tasks")
    listing = capsys.readouterr().out
    assert "beir:mini " in listing and "SciFact" in listing
    call_command(
        "evaluate", "--model", minilm_path(), "--task", "beir:mini2",
        "--max-seq-length", str(TEST_MAX_SEQ_LENGTH), "--precision", "fp32",
    )  # fmt: skip
    out = capsys.readouterr().out
    run = EvaluationRun.objects.get()
    result = run.results.get()
    assert f"evaluation run #{run.pk} of all-minilm-l6-v2 (full)" in out
    assert f"beir:mini2 [test]  nDCG@10 {result.ndcg_at_10:.4f}" in out
    assert "(10 queries" in out and run.results_dir in out
    with pytest.raises(CommandError, match='unknown task "beir:none"'):
        call_command("evaluate", "--task", "beir:none")
    with pytest.raises(CommandError, match="at least one --task"):
        call_command("evaluate")
