"""Fine-tuning an embedding model on training rows. Pure: no Django; torch, transformers,
sentence-transformers and peft are imported inside the functions that use them, so the web
process can import ``TrainConfig`` for its form without paying for them.

The loop is sentence-transformers' ``SentenceTransformerTrainer`` (the Hugging Face trainer
underneath): peft LoRA through ``model.add_adapter`` or full fine-tuning,
``MultipleNegativesRankingLoss`` — InfoNCE over in-batch negatives plus the row's k hard
negatives, scale = 1 / temperature — or its gradient-cached variant for batches larger than
memory, the no-duplicates batch sampler, checkpoints and resume. Written here is only what the
library lacks: per-column max lengths (queries are short), a callback that reports progress
and stops within a step when asked, checkpoints that are trusted only once complete, and the
artifact layout. Flow, resume and cancel: ``training/training.md``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ApplicationError

from .data import TrainingRows

logger = logging.getLogger(__name__)

METHODS = ("lora", "full")
BF16_CHOICES = ("auto", "on", "off")
CHECKPOINTS_DIR = "checkpoints"
# Written into a checkpoint folder once every file in it is on disk; a folder without it was
# being written when its worker died and is never resumed from.
COMPLETE_MARKER = ".sieve-complete"
KEEP_CHECKPOINTS = 2
ARTIFACT_DIRS = {"adapter": "adapter", "merged": "merged", "full": "model"}
# Written beside the weights: what the artifact was trained from, for whoever copies the
# folder elsewhere (peft's adapter_config.json names the base by an absolute path).
ARTIFACT_INFO = "sieve_training.json"
HISTORY_LIMIT = 2000
FULL_LEARNING_RATE = 2e-5

# LoRA targets per architecture (config.model_type): the attention projections. peft's own
# table stops at query/value for BERT; key too is what most embedding fine-tunes use.
LORA_TARGETS = {
    **{t: ["query", "key", "value"] for t in ("bert", "roberta", "xlm-roberta", "electra")},
    **{t: ["query", "key", "value"] for t in ("camembert", "ernie", "xlm", "megatron-bert")},
    "mpnet": ["q", "k", "v"],
    "distilbert": ["q_lin", "k_lin", "v_lin"],
    "deberta-v2": ["query_proj", "key_proj", "value_proj"],
    "t5": ["q", "k", "v"],
    "mt5": ["q", "k", "v"],
    "modernbert": ["Wqkv"],
    "nomic_bert": ["Wqkv"],
    "new": ["qkv_proj"],
    **{
        t: ["q_proj", "k_proj", "v_proj"]
        for t in ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3")
    },
}
# Module names that are attention projections in architectures not listed above.
_ATTENTION_NAMES = (
    "query", "key", "value", "q_proj", "k_proj", "v_proj", "qkv_proj", "Wqkv", "query_key_value",
)  # fmt: skip


class ConfigError(ApplicationError, ValueError):
    """A hyper-parameter with a bad value; ``detail["field"]`` names it."""

    def __init__(self, message: str, field: str):
        super().__init__(message, detail={"field": field})
        self.field = field


class TrainingCancelled(Exception):
    """Raised inside the training loop when the listener asks to stop."""

    def __init__(self, step: int):
        super().__init__(f"cancelled at step {step}")
        self.step = step


def _meta(label: str, help: str = "", **limits) -> dict:
    return {"label": label, "help": help, **limits}


@dataclass
class TrainConfig:
    """Every hyper-parameter of a run, as stored in ``TrainingRun.config``.

    ``query_prefix`` / ``passage_prefix`` left as None take the base model family's known
    prefixes (E5: ``query: `` / ``passage: ``; none for MiniLM), the rule mining uses; ``""``
    means no prefix. The service stores the resolved strings, so a run's config says exactly
    what the model saw. ``learning_rate`` defaults to 2e-4 for LoRA and, through
    ``from_dict`` / ``defaults``, to 2e-5 for a full fine-tune."""

    base_model: str = field(
        default="",
        metadata=_meta(
            "Base model",
            "Hugging Face id or local folder (default: the configured embedding model)",
        ),
    )
    method: str = field(
        default="lora",
        metadata=_meta("Method", "LoRA adapter (peft) or full fine-tune", choices=METHODS),
    )
    lora_r: int = field(default=8, metadata=_meta("LoRA rank r", minimum=1, maximum=1024))
    lora_alpha: int = field(default=16, metadata=_meta("LoRA alpha", minimum=1, maximum=4096))
    lora_dropout: float = field(default=0.1, metadata=_meta("LoRA dropout", minimum=0.0, below=1.0))
    lora_target_modules: list[str] = field(
        default_factory=list,
        metadata=_meta(
            "LoRA target modules",
            "module names; empty = the attention projections of the architecture "
            "(query/key/value for BERT)",
        ),
    )
    num_negatives: int = field(
        default=3,
        metadata=_meta(
            "Hard negatives per example (k)",
            "InfoNCE over in-batch negatives plus k hard negatives; 0 = pairs only",
            minimum=0,
            maximum=64,
        ),
    )
    temperature: float = field(
        default=0.05,
        metadata=_meta("Temperature", "softmax temperature; scale = 1 / temperature", above=0.0),
    )
    learning_rate: float = field(
        default=2e-4,
        metadata=_meta("Learning rate", "default 2e-4 for LoRA, 2e-5 for full", above=0.0),
    )
    batch_size: int = field(default=32, metadata=_meta("Batch size", minimum=1, maximum=65536))
    epochs: int = field(default=1, metadata=_meta("Epochs", minimum=1, maximum=1000))
    max_steps: int = field(
        default=0, metadata=_meta("Max steps", "0 = as many as the epochs take", minimum=0)
    )
    query_max_length: int = field(
        default=64, metadata=_meta("Query max length (tokens)", minimum=1, maximum=32768)
    )
    passage_max_length: int = field(
        default=256, metadata=_meta("Passage max length (tokens)", minimum=1, maximum=32768)
    )
    query_prefix: str | None = field(
        default=None,
        metadata=_meta("Query prefix", "empty: the model family's known prefix (E5: 'query: ')"),
    )
    passage_prefix: str | None = field(
        default=None, metadata=_meta("Passage prefix", "empty: the model family's known prefix")
    )
    gradient_cache: bool = field(
        default=False,
        metadata=_meta(
            "Gradient caching",
            "CachedMultipleNegativesRankingLoss: large batches in constant memory",
        ),
    )
    mini_batch_size: int = field(
        default=16, metadata=_meta("Mini-batch size (gradient caching)", minimum=1)
    )
    bf16: str = field(
        default="auto",
        metadata=_meta(
            "bf16", "auto: on a CUDA GPU that supports it; never on CPU", choices=BF16_CHOICES
        ),
    )
    seed: int = field(default=42, metadata=_meta("Seed", minimum=0, maximum=2**32 - 1))
    warmup_ratio: float = field(
        default=0.1, metadata=_meta("Warm-up ratio", minimum=0.0, below=1.0)
    )
    weight_decay: float = field(default=0.01, metadata=_meta("Weight decay", minimum=0.0))
    logging_steps: int = field(
        default=10, metadata=_meta("Log every N steps", "one loss-curve point", minimum=1)
    )
    save_steps: int = field(
        default=100,
        metadata=_meta(
            "Checkpoint every N steps", "resume point after a crash; 0 = none", minimum=0
        ),
    )
    merge_adapter: bool = field(
        default=False,
        metadata=_meta("Merge the adapter", "LoRA: also save base + adapter as one model"),
    )

    # --- construction and validation ----------------------------------------------------

    @classmethod
    def defaults(cls, method: str = "lora") -> TrainConfig:
        config = cls(method=method)
        if method == "full":
            config.learning_rate = FULL_LEARNING_RATE
        return config

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """A validated config from ``data`` (JSON, form or command-line values; strings are
        converted). Missing keys take the defaults. Raises ``ConfigError`` naming the field."""
        if not isinstance(data, dict):
            raise ConfigError("the training config must be a JSON object", "config")
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError(f"unknown training setting {unknown[0]!r}", unknown[0])
        method = _convert(names["method"], data.get("method", "lora"))
        config = cls.defaults(method)
        for name, value in data.items():
            setattr(config, name, _convert(names[name], value))
        config.check()
        return config

    def check(self) -> None:
        for f in dataclasses.fields(self):
            _check_limits(f, getattr(self, f.name))
        if self.merge_adapter and self.method != "lora":
            raise ConfigError(
                "merge adapter applies to LoRA only (a full fine-tune is a whole model)",
                "merge_adapter",
            )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def field_help(cls) -> dict[str, dict]:
        """Per field: label, help, type, default and limits, in declaration order (for a form)."""
        out = {}
        defaults = cls()
        for f in dataclasses.fields(cls):
            info = dict(f.metadata)
            info["type"] = _kind(f)
            info["default"] = getattr(defaults, f.name)
            out[f.name] = info
        return out

    def resolved(self) -> TrainConfig:
        """A copy whose None prefixes are the base model family's (``default_prefixes``)."""
        from core.ml.encoder import default_prefixes

        query, passage = default_prefixes(self.base_model)
        return dataclasses.replace(
            self,
            query_prefix=query if self.query_prefix is None else self.query_prefix,
            passage_prefix=passage if self.passage_prefix is None else self.passage_prefix,
        )


def _kind(f: dataclasses.Field) -> str:
    kinds = {"int": "int", "float": "float", "bool": "bool", "str": "str"}
    kinds |= {"list[str]": "list", "str | None": "optional_str"}
    return kinds[str(f.type)]


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _convert(f: dataclasses.Field, value: Any) -> Any:
    kind, name = _kind(f), f.name
    label = name.replace("_", " ")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(f"{label} must be true or false, got {value!r}", name)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, str, float)):
            raise ConfigError(f"{label} must be a whole number, got {value!r}", name)
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{label} must be a whole number, got {value!r}", name) from None
        if not number.is_integer():
            raise ConfigError(f"{label} must be a whole number, got {value!r}", name)
        return int(number)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{label} must be a number, got {value!r}", name)
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{label} must be a number, got {value!r}", name) from None
        if not math.isfinite(number):
            raise ConfigError(f"{label} must be a finite number", name)
        return number
    if kind == "list":
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",")]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{label} must be a list of names", name)
        return [v.strip() for v in value if v.strip()]
    if kind == "optional_str":
        if value is None or isinstance(value, str):
            return value
        raise ConfigError(f"{label} must be text", name)
    # str
    if name == "bf16" and isinstance(value, bool):
        return "on" if value else "off"
    if not isinstance(value, str):
        raise ConfigError(f"{label} must be text, got {value!r}", name)
    value = value.strip()
    if name == "bf16":
        value = value.lower()
        value = {"true": "on", "false": "off", "yes": "on", "no": "off"}.get(value, value)
    return value


def _check_limits(f: dataclasses.Field, value: Any) -> None:
    meta, name = f.metadata, f.name
    label = name.replace("_", " ")
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(
            f"{label} must be one of {', '.join(meta['choices'])}, got {value!r}", name
        )
    if "minimum" in meta and value < meta["minimum"]:
        raise ConfigError(f"{label} must be at least {meta['minimum']}, got {value}", name)
    if "maximum" in meta and value > meta["maximum"]:
        raise ConfigError(f"{label} must be at most {meta['maximum']}, got {value}", name)
    if "above" in meta and not value > meta["above"]:
        raise ConfigError(f"{label} must be above {meta['above']}, got {value}", name)
    if "below" in meta and not value < meta["below"]:
        raise ConfigError(f"{label} must be below {meta['below']}, got {value}", name)
    if name == "base_model" and len(value) > 500:
        raise ConfigError("the base model name is too long (500 characters at most)", name)


def planned_steps(config: TrainConfig, rows: int) -> int:
    """Optimizer steps the run will take (the trainer's own count, before it starts)."""
    if config.max_steps:
        return config.max_steps
    return math.ceil(rows / config.batch_size) * config.epochs


# --- the loss curve ----------------------------------------------------------------------


def history_append(history: list[dict], point: dict, *, limit: int = HISTORY_LIMIT) -> list[dict]:
    """Append ``point``; past ``limit`` points, every other older point is dropped, so a long
    run keeps its whole curve at a coarser grain and the row stays small."""
    history.append(point)
    if len(history) > limit:
        history[:] = history[:-1][::2] + [history[-1]]
    return history


# --- checkpoints -------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path


def _checkpoint_folders(folder: Path) -> list[tuple[int, Path]]:
    found = []
    if not folder.is_dir():
        return found
    for path in folder.iterdir():
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return sorted(found)


def _is_complete(path: Path) -> bool:
    return (path / COMPLETE_MARKER).is_file() and (path / "trainer_state.json").is_file()


def latest_checkpoint(folder: str | Path) -> Checkpoint | None:
    """The newest complete checkpoint under ``folder``. Incomplete folders (a worker killed
    while writing one) are removed: the trainer would write the same step into the same
    folder again, next to whatever the dead process left there."""
    folder = Path(folder)
    latest = None
    for step, path in _checkpoint_folders(folder):
        if _is_complete(path):
            latest = Checkpoint(step=step, path=path)
        else:
            logger.warning("removing the incomplete checkpoint %s", path)
            shutil.rmtree(path, ignore_errors=True)
    return latest


def _fsync_tree(path: Path) -> None:
    for file in path.rglob("*"):
        if file.is_file():
            fd = os.open(file, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def mark_complete(path: Path) -> None:
    """Flush a written checkpoint to disk, then write its marker (itself atomically)."""
    _fsync_tree(path)
    partial = path / (COMPLETE_MARKER + ".partial")
    partial.write_text(json.dumps({"completed_at": time.time()}))
    os.replace(partial, path / COMPLETE_MARKER)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prune_checkpoints(folder: Path, *, keep: int = KEEP_CHECKPOINTS) -> None:
    complete = [(s, p) for s, p in _checkpoint_folders(folder) if _is_complete(p)]
    for _, path in complete[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


def checkpoints_remove(output_dir: str | Path) -> None:
    """Drop a run's checkpoints (optimizer state and all) once it has ended."""
    shutil.rmtree(Path(output_dir) / CHECKPOINTS_DIR, ignore_errors=True)


# --- model -------------------------------------------------------------------------------


def resolve_device(device: str | None = None) -> str:
    from core.ml.encoder import resolve_device as resolve

    return resolve(device)


def use_bf16(setting: str, device: str) -> bool:
    """bf16 mixed precision only on a CUDA GPU that has it: on CPU autocast emulates it
    (slower than fp32 without native support, see core/ml/encoder.py)."""
    if setting == "off" or not device.startswith("cuda"):
        if setting == "on":
            logger.warning("bf16 needs a CUDA GPU with bf16 support; training in fp32")
        return False
    import torch

    supported = torch.cuda.is_bf16_supported()
    if setting == "on" and not supported:
        logger.warning("this GPU has no bf16; training in fp32")
    return supported


def lora_target_modules(transformers_model) -> list[str]:
    """The attention projections of ``transformers_model`` (a transformers PreTrainedModel)."""
    import torch

    linear_names = {
        name.rsplit(".", 1)[-1]
        for name, module in transformers_model.named_modules()
        if isinstance(module, torch.nn.Linear)
    }
    model_type = getattr(transformers_model.config, "model_type", "")
    known = LORA_TARGETS.get(model_type)
    if known and set(known) <= linear_names:
        return list(known)
    found = [name for name in _ATTENTION_NAMES if name in linear_names]
    if found:
        return found
    raise ValueError(
        f"no LoRA target modules known for a {model_type or 'model'} of this kind; "
        "set lora_target_modules"
    )


def build_model(config: TrainConfig, *, device: str):
    """The base model, with a fresh LoRA adapter for ``method="lora"``. Seed first: the
    adapter's initial weights are random."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(config.base_model, device=device)
    if config.method == "lora":
        from peft import LoraConfig, TaskType

        targets = config.lora_target_modules or lora_target_modules(model.transformers_model)
        model.add_adapter(
            LoraConfig(
                task_type=TaskType.FEATURE_EXTRACTION,
                r=config.lora_r,
                lora_alpha=config.lora_alpha,
                lora_dropout=config.lora_dropout,
                target_modules=targets,
            )
        )
    return model


def parameter_counts(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def _position_limit(model) -> int | None:
    config = getattr(model.transformers_model, "config", None)
    limit = getattr(config, "max_position_embeddings", None)
    # RoBERTa-style models reserve two positions for the padding offset.
    if limit and getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        limit -= 2
    return limit


def make_collator(model, *, query_max_length: int, passage_max_length: int):
    """sentence-transformers' collator with the query column (the first) truncated to
    ``query_max_length`` and the passages to ``passage_max_length`` — the library has one
    max length for every column. It also counts samples and real (non-padding) tokens for
    the throughput figures."""
    from sentence_transformers.sentence_transformer.data_collator import (
        SentenceTransformerDataCollator,
    )

    @dataclass
    class QueryPassageCollator(SentenceTransformerDataCollator):
        query_max_length: int = 64
        passage_max_length: int = 256
        samples: int = 0
        tokens: int = 0
        _column_position: int = 0

        def _get_task_for_column(self, column_name, column_position, router_mapping):
            # Called just before _get_max_length_for_task for the same column.
            self._column_position = column_position
            return super()._get_task_for_column(column_name, column_position, router_mapping)

        def _get_max_length_for_task(self, task):
            if self._column_position == 0:
                return self.query_max_length
            return self.passage_max_length

        def __call__(self, features):
            batch = super().__call__(features)
            self.samples += len(features)
            self.tokens += sum(
                int(value.sum()) for key, value in batch.items() if key.endswith("attention_mask")
            )
            return batch

    limit = _position_limit(model)
    lengths = [query_max_length, passage_max_length]
    if limit:
        if max(lengths) > limit:
            logger.warning("max lengths capped at the model's %d positions", limit)
        lengths = [min(n, limit) for n in lengths]
    return QueryPassageCollator(
        preprocess_fn=model.preprocess,
        query_max_length=lengths[0],
        passage_max_length=lengths[1],
    )


def make_loss(config: TrainConfig, model):
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )

    scale = 1.0 / config.temperature
    if config.gradient_cache:
        return CachedMultipleNegativesRankingLoss(
            model, scale=scale, mini_batch_size=config.mini_batch_size
        )
    return MultipleNegativesRankingLoss(model, scale=scale)


def training_arguments(
    config: TrainConfig, *, checkpoints_dir: str | Path, device: str, bf16: bool
):
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    return SentenceTransformerTrainingArguments(
        output_dir=str(checkpoints_dir),
        per_device_train_batch_size=config.batch_size,
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
        use_cpu=not device.startswith("cuda"),
        dataloader_pin_memory=device.startswith("cuda"),
        # Duplicate texts in a batch (SciFact cites one abstract from several claims) would be
        # in-batch "negatives" that are positives.
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        report_to="none",
        disable_tqdm=True,
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


def _progress_callback(*, listener: TrainListener, collator, metrics: dict, device: str,
                       resumed_from_step: int | None):  # fmt: skip
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        """Throughput, ETA and the loss curve to the listener; a stop request raises
        TrainingCancelled at the end of the step in which it was seen."""

        def __init__(self):
            self.started_at = time.monotonic()
            self.first_step_at: float | None = None
            self.first_step = 0

        def _elapsed(self) -> float:
            return time.monotonic() - self.started_at

        def _update(self, state) -> None:
            if self.first_step_at is None:
                return
            seconds = max(time.monotonic() - self.first_step_at, 1e-9)
            steps = state.global_step - self.first_step
            metrics["samples_per_s"] = round(collator.samples / seconds, 3)
            metrics["tokens_per_s"] = round(collator.tokens / seconds, 1)
            if steps > 0:
                metrics["eta_s"] = round((state.max_steps - state.global_step) * seconds / steps, 1)
            metrics["epoch"] = round(state.epoch or 0.0, 4)
            if device.startswith("cuda"):
                import torch

                metrics["gpu_memory_max_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)

        def on_train_begin(self, args, state, control, **kwargs):
            self.first_step = state.global_step
            listener.started(
                step=state.global_step,
                total_steps=state.max_steps,
                resumed_from_step=resumed_from_step,
                metrics=metrics,
            )
            if listener.should_stop():
                raise TrainingCancelled(state.global_step)

        def on_step_begin(self, args, state, control, **kwargs):
            if self.first_step_at is None:
                self.first_step_at = time.monotonic()

        def on_step_end(self, args, state, control, **kwargs):
            self._update(state)
            listener.step(step=state.global_step, total_steps=state.max_steps, metrics=metrics)
            if listener.should_stop():
                raise TrainingCancelled(state.global_step)

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
            metrics["train_loss"] = point["loss"]
            logger.info(
                "step %d/%d · loss %.4f · lr %.2e · epoch %.2f · %.1f samples/s",
                point["step"],
                state.max_steps,
                point["loss"],
                point["learning_rate"],
                point["epoch"],
                metrics.get("samples_per_s", 0.0),
            )
            listener.logged(point=point, metrics=metrics)

        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if not folder.is_dir():
                return
            mark_complete(folder)
            prune_checkpoints(Path(args.output_dir))
            metrics["checkpoint_step"] = state.global_step
            logger.info("checkpoint saved at step %d", state.global_step)
            listener.checkpoint(step=state.global_step, path=str(folder))

    return ProgressCallback()


def _publish(partial: Path, final: Path) -> None:
    """Move a fully written folder into place: a crash leaves the old one or the new one."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(partial, final)


def _save_artifact(config: TrainConfig, model, output: Path, *, device: str) -> tuple[Path, str]:
    info = {"base_model": config.base_model, "method": config.method, "config": config.to_dict()}
    kind = "adapter" if config.method == "lora" else "full"
    final = output / ARTIFACT_DIRS[kind]
    partial = output / f".partial-{final.name}"
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(str(partial))
    (partial / ARTIFACT_INFO).write_text(json.dumps(info, indent=2))
    _fsync_tree(partial)
    _publish(partial, final)
    if not config.merge_adapter:
        return final, kind

    # Merge from the saved adapter (not the in-memory model): what is published is exactly
    # base + the artifact, and the adapter folder is proven loadable on the way.
    from peft import PeftModel
    from sentence_transformers import SentenceTransformer

    merged = SentenceTransformer(config.base_model, device=device)
    peft_model = PeftModel.from_pretrained(merged[0].model, str(final))
    merged[0].model = peft_model.merge_and_unload()
    final = output / ARTIFACT_DIRS["merged"]
    partial = output / f".partial-{final.name}"
    shutil.rmtree(partial, ignore_errors=True)
    merged.save_pretrained(str(partial))
    (partial / ARTIFACT_INFO).write_text(json.dumps({**info, "merged": True}, indent=2))
    _fsync_tree(partial)
    _publish(partial, final)
    return final, "merged"


def train(
    *,
    config: TrainConfig,
    rows: TrainingRows,
    output_dir: str | Path,
    listener: TrainListener | None = None,
    device: str | None = None,
) -> TrainResult:
    """Train ``config.base_model`` on ``rows``; checkpoints go to ``output_dir/checkpoints``
    and the artifact to ``output_dir/adapter`` (LoRA), ``merged`` or ``model`` (full).
    Resumes from the newest complete checkpoint found there. Raises ``TrainingCancelled``
    when ``listener.should_stop()`` says so (no artifact is written)."""
    config.check()
    if not config.base_model:
        raise ConfigError("a base model is required", "base_model")
    if len(rows) == 0:
        raise ValueError("no training rows: every example lacked a positive or negatives")
    listener = listener or TrainListener()
    started = time.monotonic()

    from sentence_transformers import SentenceTransformerTrainer
    from transformers import set_seed

    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    checkpoints = output / CHECKPOINTS_DIR
    resume = latest_checkpoint(checkpoints)
    device = resolve_device(device)
    bf16 = use_bf16(config.bf16, device)
    set_seed(config.seed)
    model = build_model(config, device=device)
    trainable, total = parameter_counts(model)
    logger.info(
        "%s on %s (%s): %s of %s parameters trainable (%.2f%%), %d rows, k=%d",
        config.method,
        config.base_model,
        device,
        f"{trainable:,}",
        f"{total:,}",
        100.0 * trainable / total,
        len(rows),
        rows.num_negatives,
    )
    if resume:
        logger.info("resuming from the checkpoint at step %d", resume.step)
    metrics: dict = {
        "device": device,
        "precision": "bf16" if bf16 else "fp32",
        "trainable_params": trainable,
        "total_params": total,
        "trainable_percent": round(100.0 * trainable / total, 4),
        "rows": len(rows),
        "num_negatives": rows.num_negatives,
    }

    from datasets import Dataset

    dataset = Dataset.from_dict(rows.columns)
    collator = make_collator(
        model,
        query_max_length=config.query_max_length,
        passage_max_length=config.passage_max_length,
    )
    callback = _progress_callback(
        listener=listener,
        collator=collator,
        metrics=metrics,
        device=device,
        resumed_from_step=resume.step if resume else None,
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=training_arguments(config, checkpoints_dir=checkpoints, device=device, bf16=bf16),
        train_dataset=dataset,
        loss=make_loss(config, model),
        data_collator=collator,
        callbacks=[callback],
    )
    # The trainer prints every log dict to stdout; ProgressCallback logs them instead.
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    output_ = trainer.train(resume_from_checkpoint=str(resume.path) if resume else None)
    step, total_steps = trainer.state.global_step, trainer.state.max_steps
    metrics["train_runtime_s"] = round(float(output_.metrics.get("train_runtime", 0.0)), 3)
    metrics["train_loss"] = float(output_.training_loss)
    if callback.first_step_at is not None:
        metrics["samples_per_s"] = round(
            collator.samples / max(time.monotonic() - callback.first_step_at, 1e-9), 3
        )
    metrics["eta_s"] = 0.0
    metrics.pop("checkpoint_step", None)

    artifact, kind = _save_artifact(config, model, output, device=device)
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


def load_trained_model(
    base_model: str,
    artifact_path: str,
    artifact_kind: str,
    *,
    device: str | None = None,
    model_kwargs: dict | None = None,
):
    """A SentenceTransformer ready to encode. An adapter is attached to ``base_model`` as
    recorded in the database — never to the absolute base path in its adapter_config.json,
    which is wrong once the folder moves; a merged or full model is loaded from its folder."""
    from sentence_transformers import SentenceTransformer

    if artifact_kind == "adapter":
        model = SentenceTransformer(base_model, device=device, model_kwargs=model_kwargs)
        model.load_adapter(str(artifact_path))
        return model
    if artifact_kind in ("merged", "full"):
        return SentenceTransformer(str(artifact_path), device=device, model_kwargs=model_kwargs)
    raise ValueError(f"unknown artifact kind {artifact_kind!r}")
