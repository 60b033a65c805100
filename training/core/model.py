"""The model a run trains and what feeds it: device and precision, the base model with its
LoRA adapter, the collator (per-column max lengths) and the loss. Pure: no Django; torch,
transformers, sentence-transformers and peft are imported inside the functions.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .config import TrainConfig

logger = logging.getLogger(__name__)

DECODER_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                        "down_proj"]  # fmt: skip
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
    # Decoder embedders (E5-mistral, Linq-Embed-Mistral, Qwen3-Embedding) put LoRA on the
    # attention and the MLP projections.
    **{
        t: DECODER_LORA_TARGETS
        for t in ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text")
    },  # fmt: skip
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
}
# Decoder-only architectures: no CLS token, causal attention, so the last token's vector is
# the one that has seen the whole text.
DECODER_TYPES = frozenset(("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2",
                           "gemma3_text", "phi3"))  # fmt: skip
# Module names that are attention projections in architectures not listed above.
_ATTENTION_NAMES = (
    "query", "key", "value", "q_proj", "k_proj", "v_proj", "qkv_proj", "Wqkv", "query_key_value",
)  # fmt: skip


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


def _is_decoder(transformers_config) -> bool:
    architectures = getattr(transformers_config, "architectures", None) or []
    return getattr(transformers_config, "model_type", "") in DECODER_TYPES or any(
        name.endswith("ForCausalLM") for name in architectures
    )


def tokenizer_append_eos(tokenizer) -> bool:
    """E5-mistral's rule for last-token pooling: every text ends with the end-of-text token,
    whose vector is the embedding. Qwen3-Embedding's tokenizer appends it already; a Llama or
    Mistral tokenizer does when told (``add_eos_token``); any other fast tokenizer gets it
    from its post-processor. Returns whether it had to be added (a tokenizer without an
    end-of-text token is left as it is)."""
    eos, eos_id = tokenizer.eos_token, tokenizer.eos_token_id
    if eos is None or eos_id is None or _ends_with(tokenizer, eos_id):
        return False
    if hasattr(tokenizer, "add_eos_token") and not tokenizer.add_eos_token:
        try:
            tokenizer.add_eos_token = True
        except (AttributeError, ValueError):
            pass
        if _ends_with(tokenizer, eos_id):
            return True
    backend = getattr(tokenizer, "_tokenizer", None)
    if backend is None:
        logger.warning("the tokenizer does not end texts with %s and cannot be told to", eos)
        return False
    from tokenizers import processors

    append = processors.TemplateProcessing(
        single=f"$A {eos}", pair=f"$A {eos} $B:1 {eos}:1", special_tokens=[(eos, eos_id)]
    )
    existing = backend.post_processor
    backend.post_processor = processors.Sequence([existing, append]) if existing else append
    return _ends_with(tokenizer, eos_id)


def _ends_with(tokenizer, token_id: int) -> bool:
    ids = tokenizer("a text")["input_ids"]
    return bool(ids) and ids[-1] == token_id


def is_sentence_transformers_model(name: str) -> bool:
    """Whether ``name`` (a folder or a hub id, optionally ``id@revision``) is saved as a
    sentence-transformers model (a ``modules.json``: its own pooling, normalisation and
    prompts), rather than a plain transformers checkpoint."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        return (folder / "modules.json").is_file()
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    repo, _, revision = str(name).partition("@")
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    try:
        hf_hub_download(repo, "modules.json", revision=revision or None, local_files_only=offline)
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError):
        return False  # no such file (a plain checkpoint), or not reachable from here
    return True


def auto_pooling(name: str) -> str | None:
    """The pooling ``load_sentence_transformer`` gives ``name`` under ``pooling="auto"``:
    "lasttoken" for a plain decoder checkpoint (Mistral, Qwen, Llama); None where the model
    decides (a sentence-transformers model, or a plain encoder: sentence-transformers' mean
    pooling)."""
    if is_sentence_transformers_model(name):
        return None
    from transformers import AutoConfig

    return "lasttoken" if _is_decoder(AutoConfig.from_pretrained(name)) else None


def load_sentence_transformer(name: str, *, device: str | None = None,
                              pooling: str | None = "auto",
                              model_kwargs: dict | None = None):  # fmt: skip
    """``name`` (a hub id or folder) as a SentenceTransformer. ``auto`` keeps a
    sentence-transformers model as it is saved (its pooling, its normalisation, its prompts)
    and gives a plain decoder checkpoint (Mistral, Qwen, Llama) last-token pooling
    (``auto_pooling``). None is sentence-transformers' own loading (what ``auto`` gives a
    model that is not a plain decoder; for a caller that asked ``auto_pooling`` already).
    Another ``pooling`` is built as Transformer → Pooling(mode) → Normalize. A decoder's
    tokenizer without a padding token pads with its end-of-text token (pooling reads the
    attention mask, so the side does not matter), and with last-token pooling ends every text
    with that token (``tokenizer_append_eos``). Training and evaluation both load through
    here, so a base model is evaluated as it is trained."""
    from sentence_transformers import SentenceTransformer

    mode = auto_pooling(name) if pooling == "auto" else pooling
    if mode is None:
        return SentenceTransformer(name, device=device, model_kwargs=model_kwargs)
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoConfig

    decoder = _is_decoder(AutoConfig.from_pretrained(name))
    transformer = Transformer(name, model_kwargs=model_kwargs)
    tokenizer = transformer.tokenizer
    if decoder and tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if decoder and mode == "lasttoken":
        tokenizer_append_eos(tokenizer)
    modules = [
        transformer,
        Pooling(transformer.get_embedding_dimension(), pooling_mode=mode),
        Normalize(),
    ]
    return SentenceTransformer(modules=modules, device=device)


def nf4_quantization(*, bf16: bool, double: bool = False):
    """transformers' bitsandbytes config for 4-bit NF4 weights (QLoRA's data type), computing
    in bf16 where the device has it, else fp32; ``double``: also quantize the quantization
    constants (QLoRA's double quantization, ~0.4 bit per weight less)."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=double,
        bnb_4bit_compute_dtype=torch.bfloat16 if bf16 else torch.float32,
    )


def qlora_base_kwargs(config: TrainConfig, device: str) -> dict:
    """What loads the base in 4-bit for QLoRA, or refuses with the field to change."""
    from .config import ConfigError

    try:
        import bitsandbytes  # noqa: F401
    except Exception as error:  # ImportError, or a broken CUDA setup raising on import
        raise ConfigError(
            f"a 4-bit base needs bitsandbytes on the gpu workers (requirements-gpu.txt): "
            f"{type(error).__name__}: {error}",
            "quantize_4bit",
        ) from None
    quantization = nf4_quantization(bf16=use_bf16(config.bf16, device), double=True)
    return {"quantization_config": quantization, "device_map": device}


def build_model(config: TrainConfig, *, device: str):
    """The base model, with a fresh LoRA adapter for ``method="lora"`` — on a base frozen in
    4-bit NF4 for ``quantize_4bit`` (QLoRA: peft's ``prepare_model_for_kbit_training`` keeps
    the layer norms in fp32 and lets gradients reach the adapters through the frozen
    input embeddings). Seed first: the adapter's initial weights are random."""
    four_bit = qlora_base_kwargs(config, device) if config.quantize_4bit else None
    model = load_sentence_transformer(
        config.base_model, device=device, pooling=config.pooling, model_kwargs=four_bit
    )
    if four_bit:
        from peft import prepare_model_for_kbit_training

        prepare_model_for_kbit_training(
            model.transformers_model, use_gradient_checkpointing=config.gradient_checkpointing
        )
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


# The batch's (samples, real tokens, sum of the squared sequence lengths: attention's work),
# counted by the collator where it tokenizes (a loader
# worker's process, or the trainer's) and read by ``throughput.BatchMeter`` in the trainer's
# process. Plain ints: moving the batch to the GPU leaves them on the host (reading a count
# back from the GPU would wait for the step in flight).
BATCH_COUNTS = "sieve_batch_counts"


def make_collator(model, *, query_max_length: int, passage_max_length: int):
    """sentence-transformers' collator with the query column (the first) truncated to
    ``query_max_length`` and the passages to ``passage_max_length`` — the library has one
    max length for every column. Each batch carries its samples and real (non-padding)
    tokens under ``BATCH_COUNTS`` for the throughput and MFU figures."""
    from sentence_transformers.sentence_transformer.data_collator import (
        SentenceTransformerDataCollator,
    )

    @dataclass
    class QueryPassageCollator(SentenceTransformerDataCollator):
        query_max_length: int = 64
        passage_max_length: int = 256
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
            tokens = squares = 0
            for key, value in batch.items():
                if key.endswith("attention_mask"):
                    lengths = value.sum(dim=1)
                    tokens += int(lengths.sum())
                    squares += int((lengths * lengths).sum())
            batch[BATCH_COUNTS] = (len(features), tokens, squares)
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


def make_loss(config: TrainConfig, model, *, gather_across_devices: bool = False):
    """InfoNCE (scale 1 / temperature); with several processes each one's loss sees every
    process's queries and passages (in-batch negatives across the whole batch)."""
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )

    scale = 1.0 / config.temperature
    if config.gradient_cache:
        return CachedMultipleNegativesRankingLoss(
            model,
            scale=scale,
            mini_batch_size=config.mini_batch_size,
            gather_across_devices=gather_across_devices,
        )
    return MultipleNegativesRankingLoss(
        model, scale=scale, gather_across_devices=gather_across_devices
    )
