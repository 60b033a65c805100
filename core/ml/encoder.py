"""Text encoding for mining, synthesis's teacher and evaluation. No Django; torch and
sentence-transformers are imported only when a model is loaded.

* ``EncoderSettings`` is the one settings type of every caller that encodes: batch size,
  max length, precision, device, prefixes (and, for evaluation's streamlined mode, 4-bit
  loading). The model is named beside it: a hub id or a local folder.
* Any sentence-transformers model, or any Hugging Face encoder (sentence-transformers wraps a
  plain transformers checkpoint with mean pooling), by hub id or local folder.
* Per-model prefixes: E5 wants ``query: `` / ``passage: ``, BGE v1.5 an instruction on
  queries only, nomic ``search_query: `` / ``search_document: ``. ``default_prefixes`` knows
  the common families; an explicit prefix always wins.
* Embeddings always come back float32 and L2-normalised, so inner product = cosine and
  faiss' ``IndexFlatIP`` ranks exactly like ``SentenceTransformer.similarity``.
* Precision: ``auto`` uses bf16 autocast only where the hardware has native bf16 (CUDA with
  bf16, or a CPU with AVX512-BF16 / AMX). Measured: with native bf16 a CPU encodes SciFact
  2.3x faster at cosine >= 0.99997 to fp32; WITHOUT it (this project's AMD EPYC, AVX2 only)
  autocast emulates bf16 and is 6.7x SLOWER than fp32 — so "auto" is fp32 there. See
  ``curation/mining/mining.md`` and ``docs/benchmarks.md``.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .identity import ModelIdentity, model_identity

PRECISIONS = ("auto", "fp32", "bf16")

# (pattern on the lower-cased model name, query prefix, passage prefix). First match wins.
KNOWN_PREFIXES: list[tuple[str, str, str]] = [
    (
        r"multilingual-e5-.*-instruct",
        "Instruct: Given a query, retrieve relevant passages\nQuery: ",
        "",
    ),
    (r"(^|/)(multilingual-)?e5-", "query: ", "passage: "),
    (r"bge-.*-en-v1\.5", "Represent this sentence for searching relevant passages: ", ""),
    (r"bge-.*-zh-v1\.5", "为这个句子生成表示以用于检索相关文章：", ""),
    (r"nomic-embed-text", "search_query: ", "search_document: "),
    (r"snowflake-arctic-embed", "Represent this sentence for searching relevant passages: ", ""),
    (r"mxbai-embed-large", "Represent this sentence for searching relevant passages: ", ""),
]


def default_prefixes(model: str) -> tuple[str, str]:
    """The (query, passage) prefixes a model family was trained with; ``("", "")`` when it
    uses none (MiniLM, mpnet, GTE) or is unknown."""
    name = str(model).lower()
    for pattern, query, passage in KNOWN_PREFIXES:
        if re.search(pattern, name):
            return query, passage
    return "", ""


def passage_text(title: str, text: str) -> str:
    """What is encoded for a passage: ``title + " " + text`` (BEIR / MTEB's convention; the
    embedding cache files each vector under a digest of this text)."""
    return f"{title} {text}" if title else text


@dataclass(frozen=True)
class EncoderSettings:
    """How a model encodes. Mining passes its prefixes to each ``encode_*`` call (they are
    stored on its run row); evaluation hands them to mteb's wrapper as prompts."""

    batch_size: int = 64
    max_seq_length: int | None = None  # None: the model's own
    precision: str = "auto"  # auto | fp32 | bf16 (auto: bf16 only where it is native)
    device: str | None = None  # None: cuda when available, else cpu
    query_prefix: str = ""
    passage_prefix: str = ""
    quantize_4bit: bool = False  # evaluation's streamlined mode: bitsandbytes 4-bit on CUDA

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.max_seq_length is not None and self.max_seq_length < 1:
            raise ValueError("max_seq_length must be at least 1")


# --- encoding -----------------------------------------------------------------------------


def cpu_has_native_bf16() -> bool:
    import torch

    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(cpu, probe, None)
        if check is not None and check():
            return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_device(device: str | None) -> str:
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` → ``bf16`` only where bf16 is native (emulated bf16 is slower than fp32)."""
    if precision != "auto":
        return precision
    import torch

    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_native_bf16() else "fp32"


class Encoder:
    """A loaded model with its settings. ``encode_queries`` / ``encode_passages`` return
    float32, L2-normalised rows in the order of the texts."""

    def __init__(self, model: str, settings: EncoderSettings | None = None):
        import torch
        from sentence_transformers import SentenceTransformer

        settings = settings or EncoderSettings()
        self.model_name = model
        self.settings = settings
        self.device = resolve_device(settings.device)
        self.precision = resolve_precision(settings.precision, self.device)
        self.model = SentenceTransformer(model, device=self.device)
        if settings.max_seq_length:
            self.model.max_seq_length = settings.max_seq_length
        self.max_seq_length = int(self.model.max_seq_length or 0)
        get_dim = getattr(self.model, "get_embedding_dimension", None) or (
            self.model.get_sentence_embedding_dimension
        )
        self.dimension = int(get_dim())
        self._torch = torch
        self._identity: ModelIdentity | None = None
        # Seconds spent inside the model, for the runs' stats and the benchmark's breakdown.
        self.encode_seconds = 0.0

    @property
    def identity(self) -> ModelIdentity:
        if self._identity is None:
            self._identity = model_identity(self.model_name)
        return self._identity

    def _encode(self, texts: list[str], prefix: str, batch_size: int | None) -> np.ndarray:
        batch_size = batch_size or self.settings.batch_size
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        inputs = [prefix + t for t in texts] if prefix else list(texts)
        torch = self._torch
        started = time.perf_counter()
        with torch.inference_mode():
            if self.precision == "bf16":
                device_type = "cuda" if self.device.startswith("cuda") else "cpu"
                with torch.autocast(device_type, dtype=torch.bfloat16):
                    vectors = self.model.encode(
                        inputs, batch_size=batch_size, show_progress_bar=False
                    )
            else:
                vectors = self.model.encode(inputs, batch_size=batch_size, show_progress_bar=False)
        self.encode_seconds += time.perf_counter() - started
        vectors = np.asarray(vectors, dtype=np.float32)
        # Normalise in float32 ourselves: under autocast the model's own Normalize runs in bf16.
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def encode_queries(
        self, texts: list[str], *, prefix: str = "", batch_size: int | None = None
    ) -> np.ndarray:
        return self._encode(texts, prefix, batch_size)

    def encode_passages(
        self, texts: list[str], *, prefix: str = "", batch_size: int | None = None
    ) -> np.ndarray:
        return self._encode(texts, prefix, batch_size)


_loaded: dict[tuple[str, EncoderSettings], Encoder] = {}
_loaded_lock = threading.Lock()
# A worker usually mines with one or two models; keep them, not every model ever asked for.
_MAX_LOADED = 2


def encoder_get(model: str, settings: EncoderSettings) -> Encoder:
    """A loaded ``Encoder`` for ``model`` with ``settings``, reused within the process
    (loading costs seconds). The batch size and the prefixes do not change the model, so
    callers pass theirs to ``encode_*``."""
    shared = replace(
        settings, batch_size=EncoderSettings.batch_size, query_prefix="", passage_prefix=""
    )
    key = (model, shared)
    with _loaded_lock:
        encoder = _loaded.get(key)
        if encoder is None:
            encoder = Encoder(model, shared)
            while len(_loaded) >= _MAX_LOADED:
                _loaded.pop(next(iter(_loaded)))
            _loaded[key] = encoder
        return encoder
