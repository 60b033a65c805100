"""The training loop: sentence-transformers' ``SentenceTransformerTrainer`` (the Hugging Face
trainer underneath) with peft LoRA through ``model.add_adapter`` or full fine-tuning,
``MultipleNegativesRankingLoss`` — InfoNCE over in-batch negatives plus the row's k hard
negatives, scale = 1 / temperature — or its gradient-cached variant for batches larger than
memory, the no-duplicates batch sampler, checkpoints and resume. Written here is only what the
library lacks: a callback that reports progress to a ``TrainListener`` and stops within a
step when asked, and the loss curve's bounded history. Pure: no Django; torch, transformers
and sentence-transformers are imported inside the functions. Flow, resume and cancel:
``training/training.md``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .artifacts import save_artifact
from .checkpoints import CHECKPOINTS_DIR, latest_checkpoint, mark_complete, prune_checkpoints
from .config import ConfigError, TrainConfig
from .data import TaskRows, TrainingRows
from .model import (
    build_model,
    make_collator,
    make_loss,
    parameter_counts,
    resolve_device,
    use_bf16,
)
from .throughput import BatchMeter, counting_trainer, model_shape, peak_flops

logger = logging.getLogger(__name__)

HISTORY_LIMIT = 2000


class TrainingCancelled(Exception):
    """Raised inside the training loop when the listener asks to stop."""

    def __init__(self, step: int):
        super().__init__(f"cancelled at step {step}")
        self.step = step


# --- the loss curve ----------------------------------------------------------------------


def history_append(history: list[dict], point: dict, *, limit: int = HISTORY_LIMIT) -> list[dict]:
    """Append ``point``; past ``limit`` points, every other older point is dropped, so a long
    run keeps its whole curve at a coarser grain and the row stays small."""
    history.append(point)
    if len(history) > limit:
        history[:] = history[:-1][::2] + [history[-1]]
    return history


def training_arguments(
    config: TrainConfig,
    *,
    checkpoints_dir: str | Path,
    device: str,
    bf16: bool,
    processes: int = 1,
    several_tasks: bool = False,
    loader_workers: int = 0,
):
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    arguments_class = SentenceTransformerTrainingArguments
    if config.model_kind == "reranker":
        from sentence_transformers.cross_encoder import CrossEncoderTrainingArguments

        arguments_class = CrossEncoderTrainingArguments
    cuda = device.startswith("cuda")
    extra = {}
    if several_tasks:
        from .sampler import task_batch_sampler

        # A partial of a module-level function: the arguments are pickled into checkpoints.
        extra["multi_dataset_batch_sampler"] = functools.partial(
            task_batch_sampler,
            order=config.task_order,
            mixed_steps=config.mixed_steps,
            max_steps=config.max_steps,
        )
    return arguments_class(
        output_dir=str(checkpoints_dir),
        # Several processes: config.batch_size stays the batch the loss sees (each process
        # takes its share; the loss gathers the others' embeddings), and so do the steps.
        per_device_train_batch_size=per_process_batch_size(config.batch_size, processes),
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        # transformers 5 reads a float below 1 as a ratio of the total steps.
        warmup_steps=config.warmup_ratio,
        logging_strategy="steps",
        logging_steps=config.logging_steps,
        save_strategy="steps" if config.save_steps else "no",
        save_steps=config.save_steps or 500,
        # Rotation is ours (prune_checkpoints), after a checkpoint is known to be complete.
        save_total_limit=None,
        eval_strategy="no",
        seed=config.seed,
        data_seed=config.seed,
        bf16=bf16,
        use_cpu=not cuda,
        # Batches are collated (tokenized) by `loader_workers` processes while the GPU trains
        # on the one before, and copied to it from pinned memory without waiting: a blocking
        # copy would wait for the step in flight, leaving the GPU idle while the next batch
        # is tokenized (default_loader_workers).
        dataloader_pin_memory=cuda,
        dataloader_num_workers=loader_workers,
        # Not persistent: a new epoch starts its workers again, drawing the workers' seed
        # from the random state as a run without workers does, so that both train alike.
        dataloader_persistent_workers=False,
        dataloader_prefetch_factor=2 if loader_workers else None,
        accelerator_config={"non_blocking": cuda},
        ddp_backend=("nccl" if cuda else "gloo") if processes > 1 else None,
        # The trainer's NaN/inf filter reads the loss back from the GPU after every step (a
        # host sync per step); a NaN loss shows in the loss curve instead of being averaged
        # away.
        logging_nan_inf_filter=False,
        activation_checkpointing=config.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False}
        if config.gradient_checkpointing
        else None,
        # Every LoRA / model parameter takes part in every step: no search for unused ones.
        ddp_find_unused_parameters=False if processes > 1 else None,
        # Duplicate texts in a batch (SciFact cites one abstract from several claims) would be
        # in-batch "negatives" that are positives.
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        report_to="none",
        disable_tqdm=True,
        **extra,
    )


# --- the run ------------------------------------------------------------------------------


class TrainListener:
    """What a run tells its caller. The service's subclass writes the job row; every method
    is called in the training process between optimizer steps."""

    def started(self, *, step: int, total_steps: int, resumed_from_step: int | None,
                metrics: dict) -> None:  # fmt: skip
        pass

    def step(self, *, step: int, total_steps: int, metrics: dict) -> None:
        pass

    def logged(self, *, point: dict, metrics: dict) -> None:
        pass

    def checkpoint(self, *, step: int, path: str) -> None:
        pass

    def should_stop(self) -> bool:
        return False


@dataclass
class TrainResult:
    artifact_path: str
    artifact_kind: str
    step: int
    total_steps: int
    resumed_from_step: int | None
    metrics: dict
    model: Any = field(default=None, repr=False)  # the trained model, in memory


class _Progress:
    """Throughput, ETA and the loss curve to the listener; a stop request raises
    TrainingCancelled at the end of the step in which it was seen. Mixed into a
    ``TrainerCallback`` by ``_progress_callback`` (transformers is imported only there)."""

    def __init__(self, *, listener: TrainListener, meter: BatchMeter, metrics: dict,
                 device: str, resumed_from_step: int | None, stop_check=None,
                 barrier=None):  # fmt: skip
        self.listener = listener
        # (state) -> bool; several processes agree on it (distributed.CollectiveStop).
        self.stop_check = stop_check or (lambda state: listener.should_stop())
        self.barrier = barrier
        self.meter = meter
        self.peak_flops = metrics.get("peak_tflops", 0.0) * 1e12
        self.metrics = metrics
        self.device = device
        self.resumed_from_step = resumed_from_step
        self.started_at = time.monotonic()
        self.first_step_at: float | None = None
        self.first_step = 0

    def _elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def _update(self, state) -> None:
        if self.first_step_at is None:
            return
        metrics = self.metrics
        seconds = max(time.monotonic() - self.first_step_at, 1e-9)
        steps = state.global_step - self.first_step
        # Each process counts its own share; every one takes the same share per step.
        processes = metrics.get("processes", 1)
        metrics["samples_per_s"] = round(processes * self.meter.samples / seconds, 3)
        metrics["tokens_per_s"] = round(processes * self.meter.tokens / seconds, 1)
        flops_per_s = self.meter.flops() / seconds  # one process's
        if flops_per_s:
            metrics["model_tflops_per_s"] = float(f"{processes * flops_per_s / 1e12:.4g}")
            if self.peak_flops:
                metrics["mfu"] = float(f"{flops_per_s / self.peak_flops:.4g}")
        if steps > 0:
            metrics["eta_s"] = round((state.max_steps - state.global_step) * seconds / steps, 1)
        metrics["epoch"] = round(state.epoch or 0.0, 4)
        if self.device.startswith("cuda"):
            import torch

            metrics["gpu_memory_max_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)

    def _stop_if_asked(self, state) -> None:
        if self.stop_check(state):
            raise TrainingCancelled(state.global_step)

    def on_train_begin(self, args, state, control, **kwargs):
        self.first_step = state.global_step
        self.listener.started(
            step=state.global_step,
            total_steps=state.max_steps,
            resumed_from_step=self.resumed_from_step,
            metrics=self.metrics,
        )
        self._stop_if_asked(state)

    def on_step_begin(self, args, state, control, **kwargs):
        if self.first_step_at is None:
            self.first_step_at = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        self._update(state)
        self.listener.step(
            step=state.global_step, total_steps=state.max_steps, metrics=self.metrics
        )
        self._stop_if_asked(state)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return
        point = {
            "step": state.global_step,
            "loss": float(logs["loss"]),
            "learning_rate": float(logs.get("learning_rate", 0.0)),
            "epoch": round(float(logs.get("epoch", state.epoch or 0.0)), 4),
            "elapsed_s": round(self._elapsed(), 2),
        }
        self.metrics["train_loss"] = point["loss"]
        logger.info(
            "step %d/%d · loss %.4f · lr %.2e · epoch %.2f · %.1f samples/s",
            point["step"],
            state.max_steps,
            point["loss"],
            point["learning_rate"],
            point["epoch"],
            self.metrics.get("samples_per_s", 0.0),
        )
        self.listener.logged(point=point, metrics=self.metrics)

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if self.barrier is not None:
            self.barrier()  # every process has written its part (RNG state) of the checkpoint
        if not state.is_world_process_zero or not folder.is_dir():
            return
        mark_complete(folder)
        prune_checkpoints(Path(args.output_dir))
        self.metrics["checkpoint_step"] = state.global_step
        logger.info("checkpoint saved at step %d", state.global_step)
        self.listener.checkpoint(step=state.global_step, path=str(folder))


def default_loader_workers(device: str, model_kind: str, processes: int = 1) -> int:
    """Processes that tokenize the next batches while a GPU trains: 2 per training process
    where the cores allow it, none on CPU (the model's threads use every core, and collating
    in the trainer's process costs nothing extra there) nor for a reranker (its loss
    tokenizes, in the trainer's process)."""
    if not device.startswith("cuda") or model_kind == "reranker":
        return 0
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(0, min(2, (cores or 1) // processes - 1))


@contextlib.contextmanager
def _children_allowed(needed: bool):
    """Let this process start the loader workers although it is daemonic, as a Celery prefork
    worker's task process is (Python refuses children there, for they could outlive it).
    torch's loader workers cannot: they exit when their parent is gone, and a run without
    persistent workers ends them with each epoch."""
    import multiprocessing

    process = multiprocessing.current_process()
    daemonic = needed and process.daemon
    if daemonic:
        process.daemon = False
    try:
        yield
    finally:
        if daemonic:
            process.daemon = True


def plain_forward(model) -> None:
    """Undo the trainer's mixed precision on ``model``: with bf16, accelerate replaces the
    model's ``forward`` by one under ``torch.autocast`` and leaves it there after training,
    so the in-memory model would keep encoding in bf16 (up to ~1e-3 off) while the saved
    artifact loads in fp32. Puts the model's own ``forward`` back."""
    from accelerate.utils import extract_model_from_parallel

    extract_model_from_parallel(model, keep_fp32_wrapper=False)


def _progress_callback(**kwargs) -> _Progress:
    from transformers import TrainerCallback

    class ProgressCallback(_Progress, TrainerCallback):
        pass

    return ProgressCallback(**kwargs)


def _parts(config: TrainConfig, *, device: str, processes: int):
    """(model, collator, loss, trainer class) of an embedder — InfoNCE over in-batch and
    hard negatives — or of a reranker (``reranker.py``)."""
    if config.model_kind == "reranker":
        from .reranker import reranker_parts

        parts = reranker_parts(config, device=device)
        return parts.model, parts.collator, parts.loss, parts.trainer_class
    from sentence_transformers import SentenceTransformerTrainer

    model = build_model(config, device=device)
    collator = make_collator(
        model,
        query_max_length=config.query_max_length,
        passage_max_length=config.passage_max_length,
    )
    loss = make_loss(config, model, gather_across_devices=processes > 1)
    return model, collator, loss, SentenceTransformerTrainer


def _dataset(rows: TrainingRows | TaskRows):
    """What the trainer reads: one ``Dataset``, or a ``DatasetDict`` of one per snapshot
    (sentence-transformers then asks the multi-dataset batch sampler for the batches)."""
    from datasets import Dataset, DatasetDict

    if isinstance(rows, TaskRows):
        return DatasetDict(
            {name: Dataset.from_dict(part.columns) for name, part in rows.tasks.items()}
        )
    return Dataset.from_dict(rows.columns)


def per_process_batch_size(batch_size: int, processes: int) -> int:
    """Each process's share of the batch; rounded up, so the loss never sees fewer
    candidates than ``batch_size``."""
    return -(-batch_size // processes)


def default_processes(device: str) -> int:
    """One process per visible GPU (``CUDA_VISIBLE_DEVICES`` decides which); one on CPU."""
    if device != "cuda":  # "cuda:1" names one GPU
        return 1
    import torch

    return max(1, torch.cuda.device_count())


def train(
    *,
    config: TrainConfig,
    rows: TrainingRows | TaskRows,
    output_dir: str | Path,
    listener: TrainListener | None = None,
    device: str | None = None,
    processes: int | None = None,
    loader_workers: int | None = None,
) -> TrainResult:
    """Train ``config.base_model`` on ``rows``; checkpoints go to ``output_dir/checkpoints``
    and the artifact to ``output_dir/adapter`` (LoRA), ``merged`` or ``model`` (full).
    Resumes from the newest complete checkpoint found there. Raises ``TrainingCancelled``
    when ``listener.should_stop()`` says so (no artifact is written).

    ``processes`` (default: every visible GPU, one on CPU): more than one trains with DDP
    in that many processes started by torch's launcher (``distributed.py``); the result's
    ``model`` is then None (the model lives in those processes; load the artifact).
    ``loader_workers``: processes that tokenize batches per training process (default:
    ``default_loader_workers``)."""
    config.check()
    if not config.base_model:
        raise ConfigError("a base model is required", "base_model")
    if len(rows) == 0:
        raise ValueError("no training rows: every example lacked a positive or negatives")
    listener = listener or TrainListener()
    device = resolve_device(device)
    processes = processes or default_processes(device)
    if processes > 1:
        from .distributed import train_distributed

        return train_distributed(
            config=config,
            rows=rows,
            output_dir=Path(output_dir),
            listener=listener,
            device=device,
            processes=processes,
            loader_workers=loader_workers,
        )
    return run_training(config=config, rows=rows, output_dir=output_dir, listener=listener,
                        device=device, loader_workers=loader_workers)  # fmt: skip


def run_training(
    *,
    config: TrainConfig,
    rows: TrainingRows | TaskRows,
    output_dir: str | Path,
    listener: TrainListener,
    device: str,
    rank=None,
    loader_workers: int | None = None,
) -> TrainResult:
    """The trainer in this process: all of a single-process run, or one rank of a
    distributed one (``rank``: a ``distributed.Rank``; rank 0 alone writes the artifact)."""
    started = time.monotonic()
    from transformers import set_seed

    processes = rank.world_size if rank else 1
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    checkpoints = output / CHECKPOINTS_DIR
    # Several processes: the launcher chose the checkpoint before starting them.
    resume = rank.resume if rank else latest_checkpoint(checkpoints)
    bf16 = use_bf16(config.bf16, device)
    set_seed(config.seed)
    model, collator, loss, trainer_class = _parts(config, device=device, processes=processes)
    if loader_workers is None:
        loader_workers = default_loader_workers(device, config.model_kind, processes)
    trainable, total = parameter_counts(model)
    logger.info(
        "%s on %s (%s%s): %s of %s parameters trainable (%.2f%%), %d rows, k=%d",
        config.method,
        config.base_model,
        device,
        f" x {processes} processes" if processes > 1 else "",
        f"{trainable:,}",
        f"{total:,}",
        100.0 * trainable / total,
        len(rows),
        rows.num_negatives,
    )
    if resume:
        logger.info("resuming from the checkpoint at step %d", resume.step)
    metrics: dict = {
        "model_kind": config.model_kind,
        "device": device,
        "precision": "bf16" if bf16 else "fp32",
        "trainable_params": trainable,
        "total_params": total,
        "trainable_percent": round(100.0 * trainable / total, 4),
        "rows": len(rows),
        "num_negatives": rows.num_negatives,
        "processes": processes,
        "loader_workers": loader_workers,
    }
    if config.quantize_4bit:  # QLoRA: the frozen base in 4-bit NF4, the adapter in `precision`
        metrics["base_weights"] = "nf4"
    if processes > 1:
        metrics["batch_size_per_process"] = per_process_batch_size(config.batch_size, processes)
    peak = peak_flops(device, bf16=bf16)
    if peak:  # per GPU; MFU is measured against it
        metrics["peak_tflops"] = peak / 1e12

    several_tasks = isinstance(rows, TaskRows)
    dataset = _dataset(rows)
    if several_tasks:
        # A list: a JSON object's key order does not survive PostgreSQL's jsonb.
        metrics["tasks"] = [{"name": name, "rows": len(part)} for name, part in rows.tasks.items()]
        metrics["task_order"] = config.task_order
        metrics["mixed_steps"] = config.mixed_steps
    shape = model_shape(model) if config.model_kind != "reranker" else None
    meter = BatchMeter(shape=shape, full=config.method == "full")
    callback = _progress_callback(
        listener=listener,
        meter=meter,
        metrics=metrics,
        device=device,
        resumed_from_step=resume.step if resume else None,
        stop_check=rank.stop_check(listener, config) if rank else None,
        barrier=rank.barrier if rank else None,
    )
    trainer = counting_trainer(trainer_class, meter)(
        model=model,
        args=training_arguments(
            config,
            checkpoints_dir=checkpoints,
            device=device,
            bf16=bf16,
            processes=processes,
            several_tasks=several_tasks,
            loader_workers=loader_workers,
        ),
        train_dataset=dataset,
        loss=loss,
        data_collator=collator,
        callbacks=[callback],
    )
    # The trainer prints every log dict to stdout; ProgressCallback logs them instead.
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    with _children_allowed(loader_workers > 0):
        output_ = trainer.train(resume_from_checkpoint=str(resume.path) if resume else None)
    plain_forward(model)
    step, total_steps = trainer.state.global_step, trainer.state.max_steps
    metrics["train_runtime_s"] = round(float(output_.metrics.get("train_runtime", 0.0)), 3)
    metrics["train_loss"] = float(output_.training_loss)
    if callback.first_step_at is not None:
        # Every process takes the same number of samples per step.
        metrics["samples_per_s"] = round(
            processes * meter.samples / max(time.monotonic() - callback.first_step_at, 1e-9),
            3,
        )
    # What this run trained on (a resumed run: since it resumed), across its processes.
    metrics["samples_trained"] = processes * meter.samples
    metrics["tokens_trained"] = processes * meter.tokens
    metrics["eta_s"] = 0.0
    metrics.pop("checkpoint_step", None)
    if rank and rank.index != 0:
        return TrainResult("", "", step, total_steps, None, metrics)

    artifact, kind = save_artifact(config, model, output, device=device)
    metrics["wall_s"] = round(time.monotonic() - started, 2)
    logger.info("saved the %s to %s", kind, artifact)
    return TrainResult(
        artifact_path=str(artifact),
        artifact_kind=kind,
        step=step,
        total_steps=total_steps,
        resumed_from_step=resume.step if resume else None,
        metrics=metrics,
        model=model,
    )
