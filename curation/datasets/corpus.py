"""Reads over a corpus's passages, for corpus embeddings, mining and synthesis: ids and
text hashes in keyset batches (``WHERE id > last ORDER BY id LIMIT n``, bulk columns as
numpy arrays), texts for a page of ids. Nothing here loads a whole table into Python
objects."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..models import Candidate, CandidateOrigin, CandidateRole, Corpus, Passage

ID_BATCH = 50_000


@dataclass(frozen=True)
class CorpusVersion:
    """The corpus as it is now: its passage ids (ascending), their text hashes, and a digest
    of both, which changes when a passage is added, removed or edited."""

    passage_ids: np.ndarray  # int64
    text_hashes: np.ndarray  # S32
    digest: str

    @property
    def count(self) -> int:
        return len(self.passage_ids)


def corpus_version(*, corpus: Corpus, batch_size: int = ID_BATCH) -> CorpusVersion:
    """Reads only ids and text hashes (never text): ~40 bytes per passage."""
    digest = hashlib.blake2b(digest_size=16)
    id_chunks: list[np.ndarray] = []
    hash_chunks: list[np.ndarray] = []
    last = 0
    while True:
        rows = list(
            Passage.objects.filter(corpus=corpus, id__gt=last)
            .order_by("id")
            .values_list("id", "text_hash")[:batch_size]
        )
        if not rows:
            break
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        hashes = np.array([r[1] for r in rows], dtype="S32")
        digest.update(ids.tobytes())
        digest.update(hashes.tobytes())
        id_chunks.append(ids)
        hash_chunks.append(hashes)
        last = int(ids[-1])
    if not id_chunks:
        return CorpusVersion(np.zeros(0, np.int64), np.zeros(0, "S32"), digest.hexdigest())
    return CorpusVersion(np.concatenate(id_chunks), np.concatenate(hash_chunks), digest.hexdigest())


def corpus_doc_ids_stream(
    *, corpus: Corpus, up_to_id: int, batch_size: int = 5_000
) -> Iterator[list[tuple[int, str]]]:
    """(id, doc_id) of the corpus' passages with id <= ``up_to_id``, in id order."""
    last = 0
    while True:
        rows = list(
            Passage.objects.filter(corpus=corpus, id__gt=last, id__lte=up_to_id)
            .order_by("id")
            .values_list("id", "doc_id")[:batch_size]
        )
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def corpus_generated_negative_ids(*, corpus: Corpus) -> np.ndarray:
    """Ids of the corpus' passages that an LLM wrote as hard negatives (synthesis): never
    sampled as positives for new synthetic queries."""
    ids = (
        Candidate.objects.filter(
            passage__corpus=corpus, origin=CandidateOrigin.GENERATED, role=CandidateRole.NEGATIVE
        )
        .values_list("passage_id", flat=True)
        .distinct()
    )
    return np.fromiter(ids.iterator(chunk_size=10_000), dtype=np.int64)


def passage_texts(*, passage_ids: list[int]) -> dict[int, tuple[str, str]]:
    """{id: (title, text)} for up to a few thousand passages (one statement)."""
    return {
        pk: (title, text)
        for pk, title, text in Passage.objects.filter(id__in=passage_ids).values_list(
            "id", "title", "text"
        )
    }


def corpus_passage_ids(*, corpus: Corpus, batch_size: int = ID_BATCH) -> np.ndarray:
    return corpus_version(corpus=corpus, batch_size=batch_size).passage_ids


def passages_by_ids(*, passage_ids: list[int]) -> dict[int, tuple[str, str, str]]:
    """{id: (doc_id, title, text)} for a few passages (a sample, a page)."""
    return {
        pk: (doc_id, title, text)
        for pk, doc_id, title, text in Passage.objects.filter(id__in=passage_ids).values_list(
            "id", "doc_id", "title", "text"
        )
    }
