"""``TrainConfig``: every hyper-parameter of a training run, and the one schema behind every
way of setting one. Pure: no Django, no torch.

Each field's metadata (label, help, limits, choices) is the whole definition of a
hyper-parameter. ``config_fields()`` turns it into ``ConfigField``s, from which the launch
form (``training/forms.py``), the command line (``manage.py train``) and the API
(``training/api.py``) build their fields, and ``ConfigField.parse`` is the one conversion and
check of a value for all three. A new hyper-parameter is one new field here.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import Any

from core.errors import ApplicationError

from .mixing import TASK_ORDERS

METHODS = (("lora", "LoRA adapter (peft)"), ("full", "full fine-tune"))
MODEL_KINDS = (
    ("embedder", "embedding model (bi-encoder): queries and passages encoded apart"),
    ("reranker", "reranker (cross-encoder): one score per query and passage, read together"),
)
BF16_CHOICES = (
    ("auto", "auto: bf16 on a GPU that supports it, else fp32"),
    ("on", "bf16"),
    ("off", "fp32"),
)
POOLING_CHOICES = (
    ("auto", "auto: the model's own; last token for a decoder (Mistral, Qwen, Llama)"),
    ("mean", "mean of the tokens"),
    ("cls", "first token (CLS)"),
    ("lasttoken", "last token"),
)
FULL_LEARNING_RATE = 2e-5
# E5-mistral's query template (Linq-Embed-Mistral and Qwen3-Embedding use the same shape).
INSTRUCTION_TEMPLATE = "Instruct: {instruction}\nQuery: "


class ConfigError(ApplicationError, ValueError):
    """A hyper-parameter with a bad value; ``detail["field"]`` names it."""

    def __init__(self, message: str, field: str):
        super().__init__(message, detail={"field": field})
        self.field = field


def _meta(label: str, help: str = "", **limits) -> dict:
    return {"label": label, "help": help, **limits}


@dataclass
class TrainConfig:
    """Every hyper-parameter of a run, as stored in ``TrainingRun.config``.

    ``query_prefix`` / ``passage_prefix`` left as None take the base model family's known
    prefixes (E5: ``query: `` / ``passage: ``; none for MiniLM), the rule mining uses; ``""``
    means no prefix. The service stores the resolved strings, so a run's config says exactly
    what the model saw. ``learning_rate`` defaults to 2e-4 for LoRA and, through
    ``from_dict`` / ``defaults``, to 2e-5 for a full fine-tune.

    Metadata keys: ``label``, ``help``, ``minimum`` / ``maximum`` (inclusive), ``above`` /
    ``below`` (exclusive), ``max_length`` (text), ``choices`` ((value, label) pairs) and
    ``aliases`` (other spellings of a choice)."""

    base_model: str = field(
        default="",
        metadata=_meta(
            "Base model",
            "A Hugging Face id (intfloat/e5-base-v2, Qwen/Qwen3-Embedding-0.6B) or a folder on "
            "the GPU workers; empty: the configured default (all-MiniLM-L6-v2, offline).",
            max_length=500,
        ),
    )
    model_kind: str = field(
        default="embedder",
        metadata=_meta(
            "Model kind",
            "A reranker re-orders the top results of an embedding model (RLHN fine-tunes "
            "both on the relabelled data); it trains as a full fine-tune.",
            choices=MODEL_KINDS,
        ),
    )
    method: str = field(
        default="lora",
        metadata=_meta("Method", "LoRA adapter (peft) or full fine-tune", choices=METHODS),
    )
    lora_r: int = field(default=8, metadata=_meta("LoRA rank r", minimum=1, maximum=1024))
    lora_alpha: int = field(default=16, metadata=_meta("LoRA alpha", minimum=1, maximum=4096))
    lora_dropout: float = field(default=0.1, metadata=_meta("LoRA dropout", minimum=0.0, below=1.0))
    quantize_4bit: bool = field(
        default=False,
        metadata=_meta(
            "4-bit base (QLoRA)",
            "LoRA only: the base is loaded in 4-bit NF4 with double quantization "
            "(bitsandbytes) and frozen; the adapter trains on top. A 7B decoder then fits "
            "in about 5 GB of GPU memory. The adapter is evaluated (and merged) on the base in "
            "full precision.",
        ),
    )
    lora_target_modules: list[str] = field(
        default_factory=list,
        metadata=_meta(
            "LoRA target modules",
            "Comma-separated module names (query, key, value); empty: the attention "
            "projections of the architecture.",
        ),
    )
    num_negatives: int = field(
        default=3,
        metadata=_meta(
            "Hard negatives per example (k)",
            "InfoNCE over the in-batch negatives plus this many hard negatives; 0 = pairs only.",
            minimum=0,
            maximum=64,
        ),
    )
    temperature: float = field(
        default=0.05,
        metadata=_meta(
            "Temperature",
            "Softmax temperature; scale = 1 / temperature.",
            minimum=0.001,
            maximum=10,
        ),
    )
    learning_rate: float = field(
        default=2e-4,
        metadata=_meta(
            "Learning rate", "Default 2e-4 for LoRA, 2e-5 for full.", minimum=1e-8, maximum=1.0
        ),
    )
    batch_size: int = field(default=32, metadata=_meta("Batch size", minimum=1, maximum=65536))
    epochs: int = field(default=1, metadata=_meta("Epochs", minimum=1, maximum=1000))
    max_steps: int = field(
        default=0, metadata=_meta("Max steps", "0: as many as the epochs take.", minimum=0)
    )
    task_order: str = field(
        default="proportional",
        metadata=_meta(
            "Task order (several snapshots)",
            "Each batch comes from one snapshot; in what order (training/core/mixing.py).",
            choices=TASK_ORDERS,
        ),
    )
    mixed_steps: int = field(
        default=20,
        metadata=_meta(
            "Mixed-task steps (several snapshots)",
            "A final phase of this many batches mixed across the snapshots "
            "(Linq-Embed-Mistral); 0 = none. Ignored with one snapshot.",
            minimum=0,
            maximum=100000,
        ),
    )
    query_max_length: int = field(
        default=64, metadata=_meta("Query max length (tokens)", minimum=4, maximum=32768)
    )
    passage_max_length: int = field(
        default=256, metadata=_meta("Passage max length (tokens)", minimum=4, maximum=32768)
    )
    query_prefix: str | None = field(
        default=None,
        metadata=_meta(
            "Query prefix",
            'Empty: the base model family\'s own (E5: "query: "; none for MiniLM).',
            max_length=500,
        ),
    )
    passage_prefix: str | None = field(
        default=None,
        metadata=_meta("Passage prefix", "Empty: the base model family's own.", max_length=500),
    )
    instruction: str = field(
        default="",
        metadata=_meta(
            "Task instruction",
            "Decoder embedders (E5-mistral, Qwen3-Embedding): the task in words, e.g. "
            '"Given a scientific claim, retrieve documents that support or refute it". '
            'Queries then read "Instruct: <instruction>\\nQuery: <query>" unless a query '
            "prefix is set; passages get none.",
            max_length=1000,
        ),
    )
    pooling: str = field(
        default="auto",
        metadata=_meta(
            "Pooling",
            "How token vectors become one: auto keeps a sentence-transformers model's own and "
            "uses the last token for a decoder without one.",
            choices=POOLING_CHOICES,
        ),
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata=_meta(
            "Gradient checkpointing",
            "Recompute activations in the backward pass: less memory for large decoders, "
            "about a third more compute.",
        ),
    )
    gradient_cache: bool = field(
        default=False,
        metadata=_meta(
            "Gradient caching",
            "Cached InfoNCE (GradCache): large batches in small mini-batches of memory.",
        ),
    )
    mini_batch_size: int = field(
        default=16,
        metadata=_meta("Mini-batch size (gradient caching)", minimum=1, maximum=65536),
    )
    bf16: str = field(
        default="auto",
        metadata=_meta(
            "Precision",
            "bf16 mixed precision: auto = on a CUDA GPU that supports it; never on CPU.",
            choices=BF16_CHOICES,
            aliases={True: "on", False: "off", "true": "on", "false": "off", "yes": "on",
                     "no": "off"},
        ),
    )  # fmt: skip
    seed: int = field(default=42, metadata=_meta("Seed", minimum=0, maximum=2**32 - 1))
    warmup_ratio: float = field(
        default=0.1, metadata=_meta("Warm-up ratio", minimum=0.0, below=1.0)
    )
    weight_decay: float = field(default=0.01, metadata=_meta("Weight decay", minimum=0.0))
    logging_steps: int = field(
        default=10,
        metadata=_meta("Log every N steps", "One loss-curve point every N steps.", minimum=1),
    )
    save_steps: int = field(
        default=100,
        metadata=_meta(
            "Checkpoint every N steps",
            "A checkpoint every N steps: where a crashed run resumes; 0 = none.",
            minimum=0,
        ),
    )
    merge_adapter: bool = field(
        default=False,
        metadata=_meta("Merge the adapter", "LoRA: also save base + adapter as one model."),
    )

    # --- construction and validation ----------------------------------------------------

    @classmethod
    def defaults(cls, method: str = "lora") -> TrainConfig:
        config = cls(method=method)
        if method == "full":
            config.learning_rate = FULL_LEARNING_RATE
        return config

    @classmethod
    def parse_partial(cls, data: Any) -> dict:
        """The values ``data`` gives, each converted and checked (``ConfigField.parse``);
        what is missing stays missing. Raises ``ConfigError`` naming the field."""
        if not isinstance(data, dict):
            raise ConfigError("the training config must be a JSON object", "config")
        fields = {f.name: f for f in config_fields()}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(f"unknown training setting {unknown[0]!r}", unknown[0])
        return {name: fields[name].parse(value) for name, value in data.items()}

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """A validated config from ``data`` (JSON, form or command-line values; strings are
        converted). Missing keys take the defaults (a reranker's method: full). Raises
        ``ConfigError`` naming the field."""
        values = cls.parse_partial(data)
        reranker = values.get("model_kind") == "reranker"
        config = cls.defaults(values.get("method", "full" if reranker else "lora"))
        for name, value in values.items():
            setattr(config, name, value)
        config.check()
        return config

    def check(self) -> None:
        for config_field in config_fields():
            config_field.check(getattr(self, config_field.name))
        if self.model_kind == "reranker" and self.method != "full":
            raise ConfigError("a reranker trains as a full fine-tune: choose method full", "method")
        if self.quantize_4bit and self.method != "lora":
            raise ConfigError(
                "a 4-bit base trains a LoRA adapter (QLoRA): choose method lora",
                "quantize_4bit",
            )
        if self.merge_adapter and self.method != "lora":
            raise ConfigError(
                "merge adapter applies to LoRA only (a full fine-tune is a whole model)",
                "merge_adapter",
            )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def resolved(self) -> TrainConfig:
        """A copy whose None prefixes are the base model family's (``default_prefixes``)."""
        from core.ml.encoder import default_prefixes

        query, passage = default_prefixes(self.base_model)
        if self.instruction:
            query = INSTRUCTION_TEMPLATE.format(instruction=self.instruction)
        return dataclasses.replace(
            self,
            query_prefix=query if self.query_prefix is None else self.query_prefix,
            passage_prefix=passage if self.passage_prefix is None else self.passage_prefix,
        )


def planned_steps(config: TrainConfig, rows: int) -> int:
    """Optimizer steps the run will take (the trainer's own count, before it starts)."""
    if config.max_steps:
        return config.max_steps
    return math.ceil(rows / config.batch_size) * config.epochs


# --- the schema ---------------------------------------------------------------------------


_KINDS = {"int": "int", "float": "float", "bool": "bool", "str": "str"}
_KINDS |= {"list[str]": "list", "str | None": "optional_str"}


@dataclass(frozen=True)
class ConfigField:
    """One hyper-parameter as every front end sees it. ``kind``: int, float, bool, str,
    optional_str (None: the default) or list (of names; a comma-separated text is read too)."""

    name: str
    kind: str
    default: Any
    label: str
    help: str = ""
    choices: tuple[tuple[str, str], ...] = ()
    aliases: dict = field(default_factory=dict)
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    below: float | None = None
    max_length: int | None = None

    @property
    def values(self) -> tuple[str, ...]:
        """The allowed values of a field with choices."""
        return tuple(value for value, _ in self.choices)

    def parse(self, value: Any) -> Any:
        """``value`` (JSON, form or command-line text) converted to the field's type and
        checked against its limits; ``ConfigError`` naming the field otherwise."""
        value = _CONVERTERS[self.kind](self, value)
        self.check(value)
        return value

    def check(self, value: Any) -> None:
        label = self.name.replace("_", " ")
        if self.choices and value not in self.values:
            allowed = ", ".join(self.values)
            raise ConfigError(f"{label} must be one of {allowed}, got {value!r}", self.name)
        if self.max_length is not None and value is not None and len(value) > self.max_length:
            raise ConfigError(
                f"{label} is too long ({self.max_length} characters at most)", self.name
            )
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(f"{label} must be at least {self.minimum}, got {value}", self.name)
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(f"{label} must be at most {self.maximum}, got {value}", self.name)
        if self.above is not None and not value > self.above:
            raise ConfigError(f"{label} must be above {self.above}, got {value}", self.name)
        if self.below is not None and not value < self.below:
            raise ConfigError(f"{label} must be below {self.below}, got {value}", self.name)

    def limits_text(self) -> str:
        """The limits in words ("at least 1, at most 1024"), for help texts."""
        parts = [
            f"{word} {limit:g}" if isinstance(limit, float) else f"{word} {limit}"
            for word, limit in (
                ("at least", self.minimum),
                ("above", self.above),
                ("at most", self.maximum),
                ("below", self.below),
            )
            if limit is not None
        ]
        return ", ".join(parts)


@functools.cache
def config_fields() -> tuple[ConfigField, ...]:
    """TrainConfig's fields as ``ConfigField``s, in declaration order."""
    defaults = TrainConfig()
    out = []
    for f in dataclasses.fields(TrainConfig):
        meta = dict(f.metadata)
        out.append(
            ConfigField(
                name=f.name,
                kind=_KINDS[str(f.type)],
                default=getattr(defaults, f.name),
                label=meta.pop("label"),
                help=meta.pop("help", ""),
                **meta,
            )
        )
    return tuple(out)


# --- conversion of a value, one function per kind -------------------------------------------


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _label(f: ConfigField) -> str:
    return f.name.replace("_", " ")


def _to_bool(f: ConfigField, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError(f"{_label(f)} must be true or false, got {value!r}", f.name)


def _to_number(f: ConfigField, value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{_label(f)} must be {what}, got {value!r}", f.name)
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{_label(f)} must be {what}, got {value!r}", f.name) from None


def _to_int(f: ConfigField, value: Any) -> int:
    number = _to_number(f, value, "a whole number")
    if not number.is_integer():
        raise ConfigError(f"{_label(f)} must be a whole number, got {value!r}", f.name)
    return int(number)


def _to_float(f: ConfigField, value: Any) -> float:
    number = _to_number(f, value, "a number")
    if not math.isfinite(number):
        raise ConfigError(f"{_label(f)} must be a finite number", f.name)
    return number


def _to_list(f: ConfigField, value: Any) -> list[str]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{_label(f)} must be a list of names", f.name)
    return [v.strip() for v in value if v.strip()]


def _to_optional_str(f: ConfigField, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ConfigError(f"{_label(f)} must be text", f.name)


def _to_str(f: ConfigField, value: Any) -> str:
    if isinstance(value, bool) and value in f.aliases:
        return f.aliases[value]
    if not isinstance(value, str):
        raise ConfigError(f"{_label(f)} must be text, got {value!r}", f.name)
    value = value.strip()
    if f.aliases:
        value = value.lower()
        value = f.aliases.get(value, value)
    return value


_CONVERTERS = {
    "bool": _to_bool,
    "int": _to_int,
    "float": _to_float,
    "list": _to_list,
    "optional_str": _to_optional_str,
    "str": _to_str,
}
