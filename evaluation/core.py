"""Evaluation with mteb, and the adapter that caches corpus embeddings. No Django; torch,
sentence-transformers and mteb are imported inside the functions that need them.

    loaded = model_load(ModelSource(model="…"), settings=EncoderSettings(batch_size=32))
    encoder = EvalEncoder(loaded, settings=…, store_root=cache_dir / "eval")
    outcome = task_evaluate(task, encoder, split="test", results_dir=…)

* ``EvalEncoder`` is an mteb encoder (``EncoderProtocol``) around mteb's own
  ``SentenceTransformerEncoderWrapper``: queries go straight through; documents are looked up
  in the content-addressed store (``core/ml/embedding_cache.py``) by the digest of the exact
  text the model reads, and only the missing ones are encoded — through the same wrapper, in
  the same call mteb would make, so a cold run's vectors are bit-for-bit what ``mteb.evaluate`` with
  the plain model computes, and a warm run returns those very vectors.
* Progress and cancellation come from a forward hook on the model: it fires after each
  batch inside sentence-transformers' own loop, so the encode call stays mteb's (splitting it
  into slices would change how texts are grouped into batches, and with that the padding).
* ``task_evaluate`` preloads the task's data (a hub failure becomes ``TaskDataError`` naming
  the task), applies the streamlined subsample, and runs ``mteb.evaluate`` with the results
  cache pointed at the run's own folder and ``overwrite_strategy="always"`` (mteb's default
  would silently skip splits already on disk).

Design and reasons: ``evaluation/evaluation.md``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.ml.beir import BeirError
from core.ml.embedding_cache import VectorStore, text_keys
from core.ml.encoder import EncoderSettings, resolve_device, resolve_precision
from core.ml.identity import folder_digest, model_identity

from .beir import corpus_subsample
from .results import SplitScores, json_safe, split_scores

__all__ = ["SplitScores", "json_safe", "split_scores"]  # re-exported: their old home

logger = logging.getLogger(__name__)

# Bump when what is encoded for a document changes, so old cache entries miss.
CACHE_FORMAT = 1
SUMMARY_METRICS = ("ndcg_at_10", "recall_at_100", "mrr_at_10")


class TaskDataError(Exception):
    """A task's data could not be loaded (for a registry task: the hub is unreachable)."""

    def __init__(self, task_name: str, message: str):
        super().__init__(message)
        self.task_name = task_name


# --- models -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSource:
    """What to load. ``model`` is a hub id or a folder; for a fine-tune it is the artifact
    folder and ``artifact_kind`` says what it holds ("adapter": a peft adapter on
    ``base_model``; "merged" / "full": a complete model). ``name`` is the model's name in
    mteb's results ("org/name"); empty: the hub id, or ``local/<folder name>``."""

    model: str
    base_model: str = ""
    artifact_kind: str = ""
    name: str = ""


@dataclass
class LoadedModel:
    model: object  # a SentenceTransformer
    source: ModelSource
    device: str
    precision: str  # what encodes: fp32 | bf16 | 4bit
    max_seq_length: int
    identity: dict  # what decides the weights: {"model": name@revision[, "adapter": digest]}
    mteb_name: str
    revision: str
    four_bit: dict  # {"requested", "used", "reason"}
    load_seconds: float


def model_cache_identity(source: ModelSource) -> tuple[dict, str, str]:
    """(identity parts, short name, revision) of the weights ``source`` loads, without
    loading them: a hub commit or a folder digest; for an adapter the base's identity plus a
    digest of the adapter folder (never the base path written inside adapter_config.json)."""
    if source.artifact_kind == "adapter":
        base = model_identity(source.base_model)
        adapter = folder_digest(Path(source.model))
        return (
            {"model": base.key, "adapter": adapter},
            base.short_name,
            f"{base.revision}+{adapter}",
        )
    identity = model_identity(source.model)
    parts = {"model": identity.key}
    from training.core.model import auto_pooling

    pooling = auto_pooling(source.model)
    if pooling:  # a plain decoder checkpoint: its vectors are last-token ones, not mean ones
        parts["pooling"] = pooling
    return parts, identity.short_name, identity.revision


def _mteb_name(source: ModelSource, short_name: str) -> str:
    if source.name:
        return source.name if "/" in source.name else f"local/{source.name}"
    if not source.artifact_kind and not Path(source.model).expanduser().exists():
        return source.model.partition("@")[0]  # a hub id: "org/name"
    return f"local/{short_name}"


def four_bit_support(device: str) -> tuple[bool, str]:
    """Whether bitsandbytes 4-bit loading can run here, and why not when it cannot."""
    if not device.startswith("cuda"):
        return False, "no CUDA device (4-bit loading needs bitsandbytes on a GPU)"
    try:
        import bitsandbytes  # noqa: F401
    except Exception as error:  # ImportError, or a broken CUDA setup raising on import
        return False, f"bitsandbytes is not importable ({type(error).__name__})"
    return True, ""


def model_load(source: ModelSource, *, settings: EncoderSettings) -> LoadedModel:
    """Load ``source`` as a SentenceTransformer with ``settings``' device, max length and
    quantization, built as training builds a base (``load_sentence_transformer``: a plain
    decoder checkpoint gets last-token pooling). A fine-tune's artifact is loaded by
    ``training.core.artifacts.load_trained_model`` from the base recorded in the database
    plus the artifact."""
    started = time.monotonic()
    device = resolve_device(settings.device)
    identity, short_name, revision = model_cache_identity(source)
    model_kwargs: dict = {}
    four_bit = {"requested": settings.quantize_4bit, "used": False, "reason": ""}
    if settings.quantize_4bit:
        supported, reason = four_bit_support(device)
        if supported:
            from training.core.model import nf4_quantization

            model_kwargs["quantization_config"] = nf4_quantization(bf16=True)
            model_kwargs["device_map"] = device
            four_bit["used"] = True
        else:
            four_bit["reason"] = reason
            logger.warning("4-bit loading not available: %s; loading normally", reason)
    if source.artifact_kind:
        from training.core.artifacts import load_trained_model

        model = load_trained_model(
            source.base_model,
            source.model,
            source.artifact_kind,
            device=device,
            model_kwargs=model_kwargs or None,
        )
    else:
        # As training loads a base: a plain decoder checkpoint gets last-token pooling (the
        # identity's, found once: None keeps the model's own).
        from training.core.model import load_sentence_transformer

        model = load_sentence_transformer(
            source.model,
            device=device,
            pooling=identity.get("pooling"),
            model_kwargs=model_kwargs or None,
        )
    if settings.max_seq_length:
        model.max_seq_length = settings.max_seq_length
    precision = "4bit" if four_bit["used"] else resolve_precision(settings.precision, device)
    return LoadedModel(
        model=model,
        source=source,
        device=device,
        precision=precision,
        max_seq_length=int(model.max_seq_length or 0),
        identity=identity,
        mteb_name=_mteb_name(source, short_name),
        revision=revision,
        four_bit=four_bit,
        load_seconds=time.monotonic() - started,
    )


# --- the encoder mteb sees ------------------------------------------------------------------


ProgressCallback = Callable[[str, int, int], None]  # (kind: queries|documents, done, total)


@dataclass
class EncodeCounts:
    queries_encoded: int = 0
    documents_seen: int = 0
    documents_cached: int = 0
    documents_encoded: int = 0
    encode_seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "queries_encoded": self.queries_encoded,
            "documents_seen": self.documents_seen,
            "documents_cached": self.documents_cached,
            "documents_encoded": self.documents_encoded,
            "encode_seconds": round(self.encode_seconds, 3),
        }


class EvalEncoder:
    """An mteb encoder over a loaded model; document vectors come from the store under
    ``store_root`` when it is given (None: plain, no cache). ``counts`` says what was encoded
    and what came from the cache; ``on_progress`` is called once per encoded batch (and may
    raise to stop the evaluation: a cancelled job)."""

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        settings: EncoderSettings,
        store_root: Path | str | None = None,
        on_progress: ProgressCallback | None = None,
        pool: dict | None = None,
    ):
        from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper

        # Several GPUs: sentence-transformers' pool protocol (multi_gpu.encode_pool_start);
        # batches are encoded in the pool's processes, so progress comes per encode call.
        self.pool = pool
        self.loaded = loaded
        self.model = loaded.model
        prompts = None
        if settings.query_prefix or settings.passage_prefix:
            prompts = {"query": settings.query_prefix, "document": settings.passage_prefix}
        # mteb writes explicit prompts into the model's own; close() puts the model's back.
        self._own_prompts = dict(getattr(self.model, "prompts", None) or {})
        self.inner = SentenceTransformerEncoderWrapper(self.model, model_prompts=prompts)
        # An explicit name and revision: mteb files results under them (else "no_model_name").
        self.mteb_model_meta = self.inner.mteb_model_meta.model_copy(
            update={"name": loaded.mteb_name, "revision": loaded.revision}
        )
        self.store_root = Path(store_root) if store_root is not None else None
        self.on_progress = on_progress
        self.counts = EncodeCounts()
        self._stores: dict[str, VectorStore] = {}
        self._phase: list = ["", 0, 0]  # kind, done, total
        self._hook = self.model.register_forward_hook(self._on_batch)

    def close(self) -> None:
        self._hook.remove()
        if hasattr(self.model, "prompts"):
            self.model.prompts = dict(self._own_prompts)

    # -- progress --

    def _on_batch(self, module, args, output):
        features = args[0] if args else None
        rows = 0
        if hasattr(features, "get"):  # a dict or a tokenizer's BatchEncoding
            for key in ("input_ids", "attention_mask", "pixel_values"):
                value = features.get(key)
                if value is not None and hasattr(value, "shape"):
                    rows = int(value.shape[0])
                    break
        kind, done, total = self._phase
        done = min(total, done + rows)
        self._phase[1] = done
        if self.on_progress is not None and kind:
            self.on_progress(kind, done, total)

    # -- mteb's EncoderProtocol --

    def encode(self, inputs, *, task_metadata, hf_split, hf_subset, prompt_type=None, **kwargs):
        from mteb.types import PromptType

        call = {
            "task_metadata": task_metadata,
            "hf_split": hf_split,
            "hf_subset": hf_subset,
            "prompt_type": prompt_type,
            **kwargs,
        }
        if prompt_type != PromptType.document or self.store_root is None:
            count = len(inputs.dataset)
            kind = "documents" if prompt_type == PromptType.document else "queries"
            vectors = self._encode(inputs, kind=kind, call=call)
            if kind == "queries":
                self.counts.queries_encoded += count
            else:
                self.counts.documents_seen += count
                self.counts.documents_encoded += count
            return vectors

        keys = text_keys(inputs.dataset["text"])
        store = self._store(task_metadata)
        found, cached = store.lookup(keys)
        missing = np.flatnonzero(~found)
        self.counts.documents_seen += len(keys)
        self.counts.documents_cached += int(found.sum())
        if not len(missing):
            return cached
        # All missing (a cold cache): mteb's own loader, untouched, so the batches are
        # exactly those of a plain mteb run.
        loader = inputs if len(missing) == len(keys) else _loader_rows(inputs, missing)
        fresh = np.asarray(self._encode(loader, kind="documents", call=call), dtype=np.float32)
        self.counts.documents_encoded += len(missing)
        store.add(keys[missing], fresh)
        if cached is None:
            return fresh
        vectors = np.empty((len(keys), fresh.shape[1]), dtype=np.float32)
        vectors[found] = cached
        vectors[missing] = fresh
        return vectors

    def similarity(self, embeddings1, embeddings2):
        return self.inner.similarity(embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1, embeddings2):
        return self.inner.similarity_pairwise(embeddings1, embeddings2)

    # -- internals --

    def _encode(self, loader, *, kind: str, call: dict):
        import torch

        self._phase[:] = [kind, 0, len(loader.dataset)]
        if self.pool is not None:
            call = {**call, "pool": self.pool}
        started = time.perf_counter()
        try:
            if self.loaded.precision == "bf16":
                device_type = "cuda" if self.loaded.device.startswith("cuda") else "cpu"
                with torch.autocast(device_type, dtype=torch.bfloat16):
                    vectors = self.inner.encode(loader, **call)
            else:
                vectors = self.inner.encode(loader, **call)
        finally:
            self.counts.encode_seconds += time.perf_counter() - started
            self._phase[:] = ["", 0, 0]
        if isinstance(vectors, torch.Tensor):
            vectors = vectors.float().cpu().numpy()
        vectors = np.asarray(vectors)
        # Half-precision outputs are widened so that a cached vector and a fresh one compare.
        return vectors if vectors.dtype == np.float32 else vectors.astype(np.float32)

    def document_prompt(self, task_metadata) -> str:
        """The prompt sentence-transformers puts before each document for this task."""
        prompt = None
        try:
            from mteb.models.sentence_transformer_wrapper import _resolve_prompt
            from mteb.types import PromptType

            prompt = _resolve_prompt(self.inner.model_prompts, task_metadata, PromptType.document)
        except ImportError:  # pragma: no cover - a later mteb moved it: key on the settings
            prompt = (self.inner.model_prompts or {}).get("document")
        if prompt is not None:
            return prompt
        # None: sentence-transformers' encode_document picks the model's own prompt.
        own = getattr(self.model, "prompts", None) or {}
        for name in ("document", "passage", "corpus"):
            if name in own:
                return own[name] or ""
        default = getattr(self.model, "default_prompt_name", None)
        return (own.get(default) or "") if default else ""

    def cache_parts(self, task_metadata) -> dict:
        """Everything that decides a document's vector besides its text."""
        loaded = self.loaded
        return {
            "format": CACHE_FORMAT,
            **loaded.identity,
            "document_prompt": self.document_prompt(task_metadata),
            "max_seq_length": loaded.max_seq_length,
            "precision": loaded.precision,
            "device": loaded.device.split(":")[0],
            "truncate_dim": getattr(self.model, "truncate_dim", None),
        }

    def _store(self, task_metadata) -> VectorStore:
        parts = self.cache_parts(task_metadata)
        key = json.dumps(parts, sort_keys=True, default=str)
        if key not in self._stores:
            self._stores[key] = VectorStore(self.store_root, parts)
        return self._stores[key]


def _loader_rows(loader, rows: np.ndarray):
    """``loader`` over the given rows of its dataset, with the same batch size and collate."""
    from torch.utils.data import DataLoader

    return DataLoader(
        loader.dataset.select(rows.tolist()),
        batch_size=loader.batch_size,
        collate_fn=loader.collate_fn,
        num_workers=loader.num_workers,
        shuffle=False,
    )


# --- tasks ----------------------------------------------------------------------------------


def registry_task_get(name: str):
    """An mteb registry task by name (KeyError when mteb has none of that name)."""
    import mteb

    try:
        return mteb.get_task(name)
    except (KeyError, ValueError) as error:
        raise KeyError(name) from error


def registry_retrieval_tasks() -> list[dict]:
    """mteb's text retrieval tasks: name, splits, description (their data is on the hub)."""
    import mteb

    found = []
    for task in mteb.get_tasks(task_types=["Retrieval"]):
        metadata = task.metadata
        if list(metadata.modalities) != ["text"]:
            continue
        found.append(
            {
                "name": metadata.name,
                "splits": list(metadata.eval_splits),
                "description": " ".join((metadata.description or "").split()),
            }
        )
    return sorted(found, key=lambda t: t["name"].lower())


@dataclass
class TaskOutcome:
    task_name: str
    split: str
    scores: SplitScores
    task_result: dict  # mteb's TaskResult JSON, as mteb wrote it to results_dir
    result_path: str
    corpus_size: int
    query_count: int
    seconds: float
    counts: dict = field(default_factory=dict)


def _split_data(task, split: str) -> list[dict]:
    """The loaded data of ``split`` in every subset (mteb's v2 layout)."""
    return [subsets[split] for subsets in task.dataset.values() if split in subsets]


def task_corpus_subsample(task, *, split: str, sample: int, seed: int) -> None:
    """Streamlined mode on a loaded task: keep every judged document of ``split`` (any qrel,
    whatever its score, and any pre-ranked candidate) plus ``sample`` others, seeded."""
    for data in _split_data(task, split):
        judged = {doc for docs in data["relevant_docs"].values() for doc in docs}
        if data.get("top_ranked"):
            judged |= {doc for docs in data["top_ranked"].values() for doc in docs}
        corpus = data["corpus"]
        ids = list(corpus["id"])
        keep = set(corpus_subsample(ids, judged=judged, sample=sample, seed=seed))
        if len(keep) < len(ids):
            data["corpus"] = corpus.select([i for i, d in enumerate(ids) if d in keep])


def task_evaluate(
    task,
    encoder: EvalEncoder,
    *,
    split: str,
    results_dir: Path | str,
    batch_size: int = 32,
    corpus_sample: int | None = None,
    seed: int = 0,
    progress: Callable[[float, str], None] | None = None,
    prediction_folder: Path | str | None = None,
) -> TaskOutcome:
    """Evaluate ``encoder`` on one split of ``task`` with ``mteb.evaluate``. mteb's result
    JSON is written under ``results_dir``; ``progress(fraction, message)`` is called while
    data loads and every encoded batch. ``prediction_folder``: mteb also writes its ranking
    of each query there (what a reranker re-orders: ``rerank.py``)."""
    report = progress or (lambda fraction, message: None)
    name = task.metadata.name
    started = time.monotonic()
    task.filter_eval_splits([split])
    report(0.0, f"{name}: loading data")
    try:
        task.load_data()
    except BeirError as error:
        raise TaskDataError(name, f'task "{name}": {error}') from error
    except Exception as error:
        raise TaskDataError(
            name,
            f'could not load the data of task "{name}" ({type(error).__name__}: {error}). '
            "mteb registry tasks download their data from the Hugging Face hub; "
            "local BEIR folders (beir:<name>) need no network",
        ) from error
    # Tasks still in mteb's v1 layout (corpus/queries attributes) are converted as evaluate
    # would, so that the subsample and the counts below see the data mteb scores.
    task.convert_v1_dataset_format_to_v2(num_proc=None)
    if corpus_sample is not None:
        task_corpus_subsample(task, split=split, sample=corpus_sample, seed=seed)
    parts = _split_data(task, split)
    corpus_size = sum(len(data["corpus"]) for data in parts)
    query_count = sum(
        sum(1 for q in data["queries"]["id"] if data["relevant_docs"].get(q)) for data in parts
    )

    counts_before = EncodeCounts(**vars(encoder.counts))

    def on_progress(kind: str, done: int, total: int) -> None:
        # Queries are short and few: 5% of the bar; documents the rest, up to scoring.
        if kind == "queries":
            fraction = 0.05 + 0.05 * done / max(total, 1)
        else:
            fraction = 0.10 + 0.85 * done / max(total, 1)
        report(fraction, f"{name}: encoding {kind} {done:,} of {total:,}")

    encoder.on_progress = on_progress
    try:
        report(0.05, f"{name}: encoding {query_count:,} queries, {corpus_size:,} documents")
        task_result, written, path = mteb_evaluate(
            encoder,
            task,
            model_meta=encoder.mteb_model_meta,
            results_dir=results_dir,
            batch_size=batch_size,
            prediction_folder=prediction_folder,
        )
    finally:
        encoder.on_progress = None
    report(1.0, f"{name}: scored")
    counts = encoder.counts
    return TaskOutcome(
        task_name=name,
        split=split,
        scores=split_scores(task_result.scores[split]),
        task_result=written,
        result_path=str(path),
        corpus_size=corpus_size,
        query_count=query_count,
        seconds=time.monotonic() - started,
        counts={
            key: round(value - getattr(counts_before, key), 3)
            if isinstance(value, float)
            else value - getattr(counts_before, key)
            for key, value in vars(counts).items()
        },
    )


def mteb_evaluate(model, task, *, model_meta, results_dir, batch_size: int,
                  prediction_folder=None) -> tuple[object, dict, Path]:  # fmt: skip
    """``mteb.evaluate`` of ``model`` (an encoder or a cross-encoder wrapper) on a loaded
    ``task``, its results cache in ``results_dir`` with ``overwrite_strategy="always"``;
    the task's data is unloaded afterwards. Returns (mteb's TaskResult, the JSON mteb wrote,
    its path)."""
    import mteb
    from mteb.cache import ResultCache

    name = task.metadata.name
    cache = ResultCache(results_dir)
    try:
        result = mteb.evaluate(
            model,
            task,
            cache=cache,
            overwrite_strategy="always",
            encode_kwargs={"batch_size": batch_size, "show_progress_bar": False},
            show_progress_bar=False,
            co2_tracker=False,
            prediction_folder=prediction_folder,
        )
    finally:
        if task.data_loaded:
            task.unload_data()
    if result.exceptions or not result.task_results:
        raise RuntimeError(f"mteb failed on {name}: {result.exceptions}")
    task_result = result.task_results[0]
    path = cache.get_task_result_path(task_name=name, model_name=model_meta)
    written = (
        json.loads(path.read_text()) if path.is_file() else task_result.model_dump(mode="json")
    )
    return task_result, written, path
