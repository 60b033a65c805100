"""training.core without Django: config validation, the bounded loss curve, checkpoint
selection, and real LoRA training of all-MiniLM-L6-v2 on SciFact-train claims."""

import json
import math
import shutil

import numpy as np
import pytest

from core.errors import ApplicationError
from tests.support.environment import missing
from training.core.artifacts import load_trained_model
from training.core.checkpoints import COMPLETE_MARKER, latest_checkpoint, prune_checkpoints
from training.core.config import ConfigError, TrainConfig, config_fields, planned_steps
from training.core.data import build_rows, read_examples
from training.core.loop import (
    TrainingCancelled,
    TrainListener,
    history_append,
    plain_forward,
    train,
)

from . import minilm_path, scifact_train_bge

# --- config --------------------------------------------------------------------------------


def test_defaults_round_trip_and_depend_on_the_method():
    config = TrainConfig.from_dict({})
    assert (config.method, config.lora_r, config.lora_alpha) == ("lora", 8, 16)
    assert config.temperature == 0.05 and config.learning_rate == 2e-4
    assert config.query_prefix is None and config.bf16 == "auto"
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert TrainConfig.from_dict({"method": "full"}).learning_rate == 2e-5
    assert TrainConfig.from_dict({"method": "full", "learning_rate": 1e-4}).learning_rate == 1e-4
    assert [f.name for f in config_fields()] == list(config.to_dict())


def test_form_and_command_line_values_are_converted():
    config = TrainConfig.from_dict(
        {
            "lora_r": "16",
            "learning_rate": "3e-4",
            "gradient_cache": "on",
            "merge_adapter": True,
            "lora_target_modules": "query, value",
            "bf16": False,
            "query_prefix": "",
        }
    )
    assert config.lora_r == 16 and config.learning_rate == 3e-4 and config.gradient_cache
    assert config.lora_target_modules == ["query", "value"] and config.bf16 == "off"
    assert config.query_prefix == ""


@pytest.mark.parametrize(
    "data, field",
    [
        ({"method": "qlora"}, "method"),
        ({"lora_r": 0}, "lora_r"),
        ({"lora_r": 2.5}, "lora_r"),
        ({"lora_r": True}, "lora_r"),
        ({"lora_dropout": 1.0}, "lora_dropout"),
        ({"temperature": 0}, "temperature"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"num_negatives": -1}, "num_negatives"),
        ({"max_steps": -5}, "max_steps"),
        ({"passage_max_length": 0}, "passage_max_length"),
        ({"warmup_ratio": 1.0}, "warmup_ratio"),
        ({"bf16": "maybe"}, "bf16"),
        ({"gradient_cache": "sometimes"}, "gradient_cache"),
        ({"lora_target_modules": [1, 2]}, "lora_target_modules"),
        ({"query_prefix": 3}, "query_prefix"),
        ({"method": "full", "merge_adapter": True}, "merge_adapter"),
        ({"base_model": "x" * 501}, "base_model"),
        ({"epochs": 0}, "epochs"),
        ({"no_such_setting": 1}, "no_such_setting"),
    ],
)
def test_a_bad_value_names_its_field(data, field):
    with pytest.raises(ConfigError) as caught:
        TrainConfig.from_dict(data)
    assert isinstance(caught.value, ApplicationError)
    assert caught.value.detail == {"field": field}
    assert field.replace("_", " ") in caught.value.message or field in caught.value.message


def test_prefixes_default_to_the_model_familys_and_empty_means_none():
    e5 = TrainConfig(base_model="intfloat/e5-base-v2").resolved()
    assert (e5.query_prefix, e5.passage_prefix) == ("query: ", "passage: ")
    explicit = TrainConfig(base_model="intfloat/e5-base-v2", query_prefix="").resolved()
    assert (explicit.query_prefix, explicit.passage_prefix) == ("", "passage: ")
    minilm = TrainConfig(base_model=minilm_path()).resolved()
    assert (minilm.query_prefix, minilm.passage_prefix) == ("", "")


def test_planned_steps():
    assert planned_steps(TrainConfig(batch_size=8, epochs=2), 33) == 10
    assert planned_steps(TrainConfig(batch_size=8, max_steps=3), 33) == 3


# --- loss curve and checkpoints ---------------------------------------------------------------


def test_the_loss_curve_stays_bounded_and_keeps_its_span():
    history: list[dict] = []
    for step in range(1, 10_001):
        history_append(history, {"step": step, "loss": 1.0 / step}, limit=100)
        assert len(history) <= 100
    steps = [p["step"] for p in history]
    assert steps[0] == 1 and steps[-1] == 10_000 and steps == sorted(steps)
    assert len(history) >= 50


def _checkpoint(folder, step, *, complete=True):
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "adapter_model.safetensors").write_bytes(b"weights")
    (path / "trainer_state.json").write_text("{}")
    if complete:
        (path / COMPLETE_MARKER).write_text("{}")
    return path


def test_a_half_written_checkpoint_is_never_resumed_from(tmp_path):
    assert latest_checkpoint(tmp_path / "none") is None
    _checkpoint(tmp_path, 2)
    _checkpoint(tmp_path, 4)
    half = _checkpoint(tmp_path, 6, complete=False)  # killed while writing step 6
    (tmp_path / "checkpoint-x").mkdir()
    found = latest_checkpoint(tmp_path)
    assert found.step == 4 and found.path == tmp_path / "checkpoint-4"
    assert not half.exists()
    prune_checkpoints(tmp_path, keep=1)
    assert not (tmp_path / "checkpoint-2").exists() and (tmp_path / "checkpoint-4").exists()


# --- real training ----------------------------------------------------------------------------

TEXTS = [
    "Mitochondria are the powerhouse of the cell.",
    "0-dimensional biomaterials show inductive properties.",
    "A claim about vitamin D and bone density.",
]


def small_config(**overrides) -> TrainConfig:
    values = {
        "base_model": minilm_path(),
        "num_negatives": 2,
        "batch_size": 8,
        "max_steps": 4,
        "query_max_length": 32,
        "passage_max_length": 64,
        "learning_rate": 1e-3,
        "logging_steps": 1,
        "save_steps": 2,
    }
    return TrainConfig.from_dict({**values, **overrides})


@pytest.fixture(scope="module")
def scifact_rows(tmp_path_factory):
    from tests.conftest import SHARED_DATA

    if not SHARED_DATA.is_dir():
        missing(f"real data folder {SHARED_DATA} is not present")
    path = tmp_path_factory.mktemp("scifact") / "train.jsonl"
    scifact_train_bge(SHARED_DATA, path, queries=32)
    return build_rows(read_examples(path, "bge"), num_negatives=2, seed=0)


class Recorder(TrainListener):
    def __init__(self):
        self.points, self.steps, self.checkpoints, self.started_with = [], [], [], None

    def started(self, *, step, total_steps, resumed_from_step, metrics):
        self.started_with = (step, total_steps, resumed_from_step, dict(metrics))

    def step(self, *, step, total_steps, metrics):
        self.steps.append(step)

    def logged(self, *, point, metrics):
        self.points.append(point)

    def checkpoint(self, *, step, path):
        self.checkpoints.append(step)


@pytest.mark.slow
def test_a_lora_adapter_trains_and_reloads_to_the_same_embeddings(scifact_rows, tmp_path):
    listener = Recorder()
    result = train(
        config=small_config(), rows=scifact_rows, output_dir=tmp_path / "run", listener=listener
    )
    assert (result.step, result.total_steps, result.resumed_from_step) == (4, 4, None)
    assert listener.started_with[:3] == (0, 4, None)
    assert listener.steps == [1, 2, 3, 4] and listener.checkpoints == [2, 4]
    assert [p["step"] for p in listener.points] == [1, 2, 3, 4]
    assert all(math.isfinite(p["loss"]) and p["loss"] > 0 for p in listener.points)
    assert math.isfinite(result.metrics["train_loss"])
    metrics = result.metrics
    # LoRA r=8 on query/key/value of MiniLM's 6 layers: 6 x 3 x (384 x 8 + 8 x 384).
    assert metrics["trainable_params"] == 6 * 3 * 2 * 384 * 8
    assert metrics["total_params"] > 100 * metrics["trainable_params"]
    assert metrics["samples_per_s"] > 0 and metrics["tokens_per_s"] > 0
    assert result.artifact_kind == "adapter"
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").is_file()

    # The artifact, loaded on the device it was trained on, encodes as the trained model does
    # (bf16 on a GPU is the trainer's autocast, which the returned model no longer carries).
    device = metrics["device"]
    trained = result.model.encode(TEXTS, convert_to_numpy=True)
    reloaded = load_trained_model(minilm_path(), result.artifact_path, "adapter", device=device)
    np.testing.assert_allclose(reloaded.encode(TEXTS, convert_to_numpy=True), trained, atol=1e-5)

    # The adapter's own record of its base (an absolute path) is not what loads it.
    moved = tmp_path / "elsewhere" / "adapter"
    shutil.copytree(result.artifact_path, moved)
    adapter_config = json.loads((moved / "adapter_config.json").read_text())
    adapter_config["base_model_name_or_path"] = "/nonexistent/base-model"
    (moved / "adapter_config.json").write_text(json.dumps(adapter_config))
    again = load_trained_model(minilm_path(), str(moved), "adapter", device=device)
    np.testing.assert_allclose(again.encode(TEXTS, convert_to_numpy=True), trained, atol=1e-5)

    from sentence_transformers import SentenceTransformer

    base = SentenceTransformer(minilm_path(), device="cpu").encode(TEXTS, convert_to_numpy=True)
    assert np.abs(base - trained).max() > 1e-3


@pytest.mark.slow
def test_a_resumed_run_ends_exactly_where_an_uninterrupted_one_does(scifact_rows, tmp_path):
    config = small_config(max_steps=4, save_steps=2)
    whole = train(config=config, rows=scifact_rows, output_dir=tmp_path / "whole")

    # The same run killed while it wrote its step-4 checkpoint: step 2 is the last complete.
    shutil.copytree(tmp_path / "whole" / "checkpoints", tmp_path / "killed" / "checkpoints")
    (tmp_path / "killed" / "checkpoints" / "checkpoint-4" / COMPLETE_MARKER).unlink()
    listener = Recorder()
    resumed = train(
        config=config, rows=scifact_rows, output_dir=tmp_path / "killed", listener=listener
    )
    assert resumed.resumed_from_step == 2 and listener.started_with[:3] == (2, 4, 2)
    assert listener.steps == [3, 4]
    assert resumed.step == 4
    np.testing.assert_allclose(
        resumed.model.encode(TEXTS, convert_to_numpy=True),
        whole.model.encode(TEXTS, convert_to_numpy=True),
        atol=1e-6,
    )


@pytest.mark.slow
def test_a_full_fine_tune_with_gradient_caching_on_pairs(scifact_rows, tmp_path):
    pairs = type(scifact_rows)(
        columns={k: scifact_rows.columns[k] for k in ("anchor", "positive")}, stats={}
    )
    config = small_config(
        method="full", learning_rate=1e-4, gradient_cache=True, mini_batch_size=4, max_steps=2,
        save_steps=0,
    )  # fmt: skip
    result = train(config=config, rows=pairs, output_dir=tmp_path / "full")
    assert result.artifact_kind == "full" and result.step == 2
    assert result.metrics["trainable_params"] == result.metrics["total_params"]
    assert not (tmp_path / "full" / "checkpoints").exists() or not any(
        (tmp_path / "full" / "checkpoints").iterdir()
    )
    reloaded = load_trained_model(
        "ignored-for-a-full-model", result.artifact_path, "full", device=result.metrics["device"]
    )
    np.testing.assert_allclose(
        reloaded.encode(TEXTS), result.model.encode(TEXTS, convert_to_numpy=True), atol=1e-5
    )


def test_the_trained_model_sheds_the_trainers_bf16_autocast():
    """What accelerate does to a model it trains in bf16 (its forward under autocast, the
    original kept as ``_original_forward``), done here on the CPU: ``plain_forward`` puts
    the model's own fp32 forward back, so the returned model encodes like its artifact."""
    from types import MethodType

    import torch
    from accelerate.utils import convert_outputs_to_fp32
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(minilm_path(), device="cpu")
    fp32 = model.encode(TEXTS, convert_to_numpy=True)
    model._original_forward = model.forward
    autocast = torch.autocast("cpu", dtype=torch.bfloat16)(model.forward.__func__)
    model.forward = MethodType(convert_outputs_to_fp32(autocast), model)
    assert np.abs(model.encode(TEXTS, convert_to_numpy=True) - fp32).max() > 1e-4
    plain_forward(model)
    np.testing.assert_array_equal(model.encode(TEXTS, convert_to_numpy=True), fp32)


class StopAtStep(Recorder):
    def __init__(self, stop_at: int):
        super().__init__()
        self.stop_at = stop_at

    def should_stop(self):
        return bool(self.steps) and self.steps[-1] >= self.stop_at


@pytest.mark.slow
def test_a_stop_request_ends_training_in_the_step_it_was_seen(scifact_rows, tmp_path):
    listener = StopAtStep(2)
    with pytest.raises(TrainingCancelled) as caught:
        train(
            config=small_config(max_steps=50, save_steps=1),
            rows=scifact_rows,
            output_dir=tmp_path / "run",
            listener=listener,
        )
    assert caught.value.step == 2 and listener.steps == [1, 2]
    # Step 2's log point and checkpoint never happen; nothing is published.
    assert [p["step"] for p in listener.points] == [1] and listener.checkpoints == [1]
    assert not (tmp_path / "run" / "adapter").exists()


def test_batches_tokenized_in_loader_workers_train_the_same_run(tmp_path):
    """On a GPU, batches are tokenized in loader worker processes while the GPU trains on
    the one before. The run must be the one a single process trains, step for step, and its
    throughput counts (which the collator makes in the worker's process) must reach the
    trainer."""
    from . import tiny_model, toy_rows

    base = tiny_model(tmp_path / "tiny")
    rows = toy_rows(24, negatives=1)
    config = small_config(base_model=base, num_negatives=1, lora_target_modules=["query"])
    runs = {}
    for workers in (0, 2):
        listener = Recorder()
        result = train(config=config, rows=rows, output_dir=tmp_path / f"w{workers}",
                       listener=listener, device="cpu", loader_workers=workers)  # fmt: skip
        runs[workers] = (result, listener)
    (single, single_log), (pooled, pooled_log) = runs[0], runs[2]
    assert pooled.metrics["loader_workers"] == 2 and single.metrics["loader_workers"] == 0
    assert pooled_log.steps == [1, 2, 3, 4] and pooled_log.checkpoints == [2, 4]
    assert [p["loss"] for p in pooled_log.points] == pytest.approx(
        [p["loss"] for p in single_log.points], abs=1e-6
    )
    for result in (single, pooled):
        assert result.metrics["samples_trained"] == 4 * 8
        assert result.metrics["samples_per_s"] > 0 and result.metrics["tokens_per_s"] > 0
    assert pooled.metrics["tokens_trained"] == single.metrics["tokens_trained"] > 4 * 8 * 3

    # Resumed from the step-2 checkpoint with workers, it ends where the whole run did.
    shutil.copytree(tmp_path / "w0" / "checkpoints", tmp_path / "resumed" / "checkpoints")
    (tmp_path / "resumed" / "checkpoints" / "checkpoint-4" / COMPLETE_MARKER).unlink()
    listener = Recorder()
    resumed = train(config=config, rows=rows, output_dir=tmp_path / "resumed",
                    listener=listener, device="cpu", loader_workers=2)  # fmt: skip
    assert resumed.resumed_from_step == 2 and listener.steps == [3, 4]
    assert resumed.metrics["samples_trained"] == 2 * 8
    assert [p["loss"] for p in listener.points] == pytest.approx(
        [p["loss"] for p in single_log.points[2:]], abs=1e-6
    )


def test_on_a_gpu_batches_are_tokenized_ahead_and_copied_without_blocking(monkeypatch):
    """The GPU settings, checked where CI runs (no GPU): 2 loader workers per training
    process while the cores allow (one core stays with each process), none on CPU or for a
    reranker; pinned memory and a copy that does not wait for the step in flight."""
    import os

    from training.core.loop import default_loader_workers, training_arguments

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert default_loader_workers("cuda", "embedder") == 2
    assert default_loader_workers("cuda", "embedder", processes=8) == 1
    assert default_loader_workers("cuda", "embedder", processes=16) == 0
    assert default_loader_workers("cuda", "reranker") == 0
    assert default_loader_workers("cpu", "embedder") == 0

    config = TrainConfig.from_dict({"base_model": "m"})
    gpu = training_arguments(config, checkpoints_dir="c", device="cuda", bf16=False,
                             loader_workers=2)  # fmt: skip
    assert gpu.dataloader_num_workers == 2 and gpu.dataloader_prefetch_factor == 2
    assert gpu.dataloader_pin_memory and gpu.accelerator_config.non_blocking
    assert not gpu.dataloader_persistent_workers  # see the loader-workers test above
    cpu = training_arguments(config, checkpoints_dir="c", device="cpu", bf16=False)
    assert cpu.dataloader_num_workers == 0 and not cpu.accelerator_config.non_blocking
