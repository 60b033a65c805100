"""One run in two processes (DDP with gloo on the CPU, through torch's launcher): the same
trainer as a single-process run, with progress, checkpoints and cancel coming back to the
caller's listener, and one artifact."""

import pytest

from training.core.artifacts import load_trained_model
from training.core.checkpoints import COMPLETE_MARKER
from training.core.config import TrainConfig
from training.core.loop import TrainingCancelled, TrainListener, train

from . import tiny_model, toy_rows


class Recorder(TrainListener):
    def __init__(self, stop_after_step: int | None = None):
        self.started_with, self.steps, self.points, self.checkpoints = None, [], [], []
        self.stop_after_step = stop_after_step

    def started(self, *, step, total_steps, resumed_from_step, metrics):
        self.started_with = (step, total_steps, resumed_from_step, metrics["processes"])

    def step(self, *, step, total_steps, metrics):
        self.steps.append(step)

    def logged(self, *, point, metrics):
        self.points.append(point)

    def checkpoint(self, *, step, path):
        self.checkpoints.append(step)

    def should_stop(self):
        return self.stop_after_step is not None and bool(self.steps)


def config_for(model: str, **overrides) -> TrainConfig:
    values = {"base_model": model, "num_negatives": 1, "batch_size": 8, "max_steps": 3,
              "query_max_length": 16, "passage_max_length": 24, "learning_rate": 1e-3,
              "logging_steps": 1, "save_steps": 2, "query_prefix": "",
              "passage_prefix": ""}  # fmt: skip
    return TrainConfig.from_dict({**values, **overrides})


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("tiny-bert"), "bert")


def test_two_processes_train_one_run_and_report_to_the_callers_listener(model, tmp_path):
    listener = Recorder()
    # Each process tokenizes in a loader worker of its own, as on GPUs.
    result = train(
        config=config_for(model), rows=toy_rows(24), output_dir=tmp_path / "run",
        listener=listener, device="cpu", processes=2, loader_workers=1,
    )  # fmt: skip
    assert (result.step, result.total_steps, result.resumed_from_step) == (3, 3, None)
    assert result.model is None and result.artifact_kind == "adapter"
    metrics = result.metrics
    assert metrics["processes"] == 2 and metrics["batch_size_per_process"] == 4
    assert metrics["device"] == "cpu" and metrics["samples_per_s"] > 0
    assert metrics["loader_workers"] == 1 and metrics["samples_trained"] == 3 * 8
    assert listener.started_with == (0, 3, None, 2)
    # Checkpoints every 2 steps and at the end, as in one process.
    assert [p["step"] for p in listener.points] == [1, 2, 3] and listener.checkpoints == [2, 3]
    assert listener.steps[-1] == 3
    # One checkpoint, complete, with both processes' RNG state; one artifact that loads.
    checkpoint = tmp_path / "run" / "checkpoints" / "checkpoint-2"
    assert (checkpoint / COMPLETE_MARKER).is_file()
    assert {p.name for p in checkpoint.glob("rng_state*")} == {"rng_state_0.pth", "rng_state_1.pth"}
    reloaded = load_trained_model(model, result.artifact_path, "adapter", device="cpu")
    assert reloaded.encode(["a query"]).shape == (1, 32)


def test_a_stop_request_ends_every_process_at_the_same_step(model, tmp_path):
    listener = Recorder(stop_after_step=1)
    with pytest.raises(TrainingCancelled) as caught:
        train(
            config=config_for(model, max_steps=400, save_steps=0), rows=toy_rows(24),
            output_dir=tmp_path / "run", listener=listener, device="cpu", processes=2,
        )  # fmt: skip
    assert 1 <= caught.value.step < 400
    assert max(p["step"] for p in listener.points) <= caught.value.step
    assert not (tmp_path / "run" / "adapter").exists()


def test_two_processes_train_a_mix_of_snapshots(model, tmp_path):
    """Several snapshots in a DDP run: the rows reach both ranks per snapshot, and the run
    takes the planned steps (homogeneous steps of two shares each, then the mixed ones)."""
    from training.core.data import TaskRows

    rows = TaskRows({"a": toy_rows(24), "b": toy_rows(12, seed=1)})
    listener = Recorder()
    result = train(
        config=config_for(model, max_steps=0, mixed_steps=1, task_order="round_robin",
                          save_steps=0),
        rows=rows, output_dir=tmp_path / "run", listener=listener, device="cpu", processes=2,
    )  # fmt: skip
    # Batches of 4 per process: a → 6 batches = 3 steps, b → 3 batches = 2 steps; round robin
    # takes 2 steps of each, then 1 mixed.
    assert (result.step, result.total_steps) == (5, 5)
    assert result.metrics["processes"] == 2 and [t["rows"] for t in result.metrics["tasks"]] == [
        24,
        12,
    ]
    assert result.artifact_kind == "adapter"
