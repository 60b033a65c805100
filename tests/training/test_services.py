"""Training runs through the services and the ``train`` command, in-process: validation with
field errors, queueing on commit, cancel, the folder a run owns, and a real LoRA run whose
row ends with its loss curve, throughput, log and a merged artifact."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from core.errors import ApplicationError
from core.jobs import job_request_cancel
from core.models import JobStatus
from curation.datasets.snapshots import snapshot_file_path
from curation.models import Snapshot
from tests.factories import DatasetFactory
from training.core.artifacts import load_trained_model
from training.core.checkpoints import COMPLETE_MARKER
from training.core.config import TrainConfig
from training.core.model import resolve_device, use_bf16
from training.models import TrainingRun
from training.services import (
    OWNER_FILE,
    training_config_defaults,
    training_run_create,
    training_run_execute,
)

from . import minilm_path, scifact_snapshots

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _folders(folders):
    pass


def test_defaults_are_lora_on_the_configured_model():
    defaults = training_config_defaults()
    assert defaults["base_model"] == minilm_path() and defaults["method"] == "lora"
    assert TrainConfig.from_dict(defaults).to_dict() == defaults


def test_a_run_is_validated_recorded_and_queued_once_committed(
    snapshot, curator, sent, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run = training_run_create(
            snapshot=snapshot, config={"max_steps": 3}, user=curator, name="first"
        )
        assert sent == []
    assert sent == [run.pk]
    run.refresh_from_db()
    assert run.status == JobStatus.QUEUED and run.celery_task_id == sent.ids[0] != ""
    assert (run.name, run.method, run.base_model) == ("first", "lora", minilm_path())
    assert run.output_dir == str(Path(settings.SIEVE_MODEL_DIR) / f"training-{run.pk}")
    # Stored resolved: MiniLM has no prefixes, and every default is written out.
    assert run.config["query_prefix"] == "" and run.config["passage_prefix"] == ""
    assert run.config["max_steps"] == 3 and run.config["base_model"] == minilm_path()
    assert TrainConfig.from_dict(run.config).to_dict() == run.config
    assert "@" in run.metrics["base_model_revision"]  # name@digest of the folder
    assert run.created_by == curator


def _no_usable_examples(tmp_path):
    dataset = DatasetFactory()
    path = Path(tmp_path / "snapshots" / "empty.jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"query": "q", "pos": [], "neg": ["n"]}) + "\n")
    return Snapshot.objects.create(
        dataset=dataset, policy="default", format="bge", sha256="0" * 64, file_path="empty.jsonl"
    )


@pytest.mark.parametrize(
    "case, field",
    [
        ("bad setting", "lora_r"),
        ("missing folder", "base_model"),
        ("unknown hub id", "base_model"),
        ("snapshot file gone", "snapshot"),
        ("no usable examples", "snapshot"),
        ("long name", "name"),
    ],
)
def test_bad_input_is_refused_with_its_field(case, field, snapshot, tmp_path, monkeypatch, sent):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    kwargs = {"snapshot": snapshot, "config": {}, "name": ""}
    if case == "bad setting":
        kwargs["config"] = {"lora_r": 0}
    elif case == "missing folder":
        kwargs["config"] = {"base_model": str(tmp_path / "no-model-here")}
    elif case == "unknown hub id":
        kwargs["config"] = {"base_model": "no-such-org/no-such-embedding-model"}
    elif case == "snapshot file gone":
        snapshot_file_path(snapshot=snapshot).unlink()
    elif case == "no usable examples":
        kwargs["snapshot"] = _no_usable_examples(tmp_path)
    else:
        kwargs["name"] = "n" * 201
    with pytest.raises(ApplicationError) as caught:
        training_run_create(**kwargs)
    assert caught.value.detail["field"] == field
    assert not TrainingRun.objects.exists() and sent == []


def test_a_queued_run_that_is_cancelled_never_trains(snapshot):
    run = training_run_create(snapshot=snapshot, config={}, enqueue=False)
    job_request_cancel(job=run)
    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED
    training_run_execute(run_id=run.pk)  # the message delivered anyway
    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED and not Path(run.output_dir).exists()


def test_a_cancel_seen_before_training_ends_the_run_and_a_foreign_folder_is_set_aside(snapshot):
    run = training_run_create(snapshot=snapshot, config={}, enqueue=False)
    # What a recreated database beside an old SIEVE_MODEL_DIR looks like: same name, other run.
    folder = Path(run.output_dir)
    old = folder / "checkpoints" / "checkpoint-99"
    old.mkdir(parents=True)
    (old / COMPLETE_MARKER).write_text("{}")
    (old / "trainer_state.json").write_text("{}")
    (folder / OWNER_FILE).write_text(json.dumps({"run": run.pk, "created_at": "2020-01-01"}))
    TrainingRun.objects.filter(pk=run.pk).update(cancel_requested=True)

    training_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED and run.error == "cancelled by a user"
    assert run.artifact_path == "" and run.step == 0
    aside = [p for p in folder.parent.iterdir() if p.name.startswith(f"{folder.name}.stale-")]
    assert len(aside) == 1 and (aside[0] / "checkpoints" / "checkpoint-99").is_dir()
    owner = json.loads((folder / OWNER_FILE).read_text())
    assert owner == {"run": run.pk, "created_at": run.created_at.isoformat()}
    assert not (folder / "checkpoints").exists()


def test_the_command_queues_a_run_and_names_a_bad_field(
    snapshot, sent, capsys, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        call_command(
            "train", "--snapshot", str(snapshot.pk), "--max-steps", "5", "--no-gradient-cache",
            "--config", '{"lora_r": 4, "max_steps": 9}', "--enqueue",
        )  # fmt: skip
    run = TrainingRun.objects.get()
    assert run.config["max_steps"] == 5 and run.config["lora_r"] == 4
    assert not run.config["gradient_cache"] and sent == [run.pk]
    assert f"queued training run #{run.pk}" in capsys.readouterr().out
    with pytest.raises(CommandError, match="temperature"):
        call_command("train", "--snapshot", str(snapshot.pk), "--temperature", "0")
    with pytest.raises(CommandError, match="no snapshot"):
        call_command("train", "--snapshot", "999999")


TEXTS = ["Vitamin D lowers the risk of fractures.", "Aspirin thins the blood."]


@pytest.mark.slow
def test_a_merged_lora_run_in_process_leaves_a_complete_row(shared_data, tmp_path, capsys):
    made = scifact_snapshots(shared_data, tmp_path / "data", formats=("tevatron",), queries=32)
    call_command(
        "train", "--snapshot", str(made["tevatron"].pk), "--name", "cli",
        "--max-steps", "4", "--batch-size", "8", "--num-negatives", "2",
        "--query-max-length", "32", "--passage-max-length", "64", "--learning-rate", "1e-3",
        "--logging-steps", "1", "--save-steps", "2", "--merge-adapter",
    )  # fmt: skip
    out = capsys.readouterr().out
    run = TrainingRun.objects.get()
    assert f"training run #{run.pk}: 4 steps" in out
    assert run.status == JobStatus.SUCCEEDED and run.progress == 1.0 and not run.error
    assert (run.step, run.total_steps, run.resumed_from_step) == (4, 4, None)
    assert run.artifact_kind == "merged"
    assert Path(run.artifact_path) == Path(run.output_dir) / "merged"
    assert (Path(run.output_dir) / "adapter" / "adapter_config.json").is_file()
    assert not (Path(run.output_dir) / "checkpoints").exists()

    assert [p["step"] for p in run.history] == [1, 2, 3, 4]
    assert all(math.isfinite(p["loss"]) for p in run.history)
    assert set(run.history[0]) == {"step", "loss", "learning_rate", "epoch", "elapsed_s"}
    elapsed = [p["elapsed_s"] for p in run.history]
    assert elapsed == sorted(elapsed)
    metrics = run.metrics
    for key in ("samples_per_s", "tokens_per_s", "train_loss", "trainable_params",
                "total_params", "base_model_revision"):  # fmt: skip
        assert key in metrics, key
    # The device and precision it really trained with: a CUDA worker's run says so.
    assert metrics["eta_s"] == 0 and metrics["device"] == resolve_device(None)
    assert metrics["precision"] == ("bf16" if use_bf16("auto", metrics["device"]) else "fp32")
    assert metrics["data"]["examples_used"] == 32 and metrics["data"]["num_negatives"] == 2
    assert run.stats["rows"] == metrics["data"]["rows"] and run.stats["steps"] == 4
    assert "step 4/4" in run.log_tail and "saved the merged" in run.log_tail
    assert len(run.log_tail.splitlines()) <= 60
    assert "step 4/4" in (Path(run.output_dir) / "train.log").read_text()

    merged = load_trained_model(run.base_model, run.artifact_path, "merged", device="cpu")
    adapter = load_trained_model(
        run.base_model, str(Path(run.output_dir) / "adapter"), "adapter", device="cpu"
    )
    np.testing.assert_allclose(merged.encode(TEXTS), adapter.encode(TEXTS), atol=1e-5)

    training_run_execute(run_id=run.pk)  # delivered twice: a finished run stays as it is
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and run.step == 4
