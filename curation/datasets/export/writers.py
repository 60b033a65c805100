"""Format writers: one JSON object per line, UTF-8, keys in a fixed order, so the same
queries always give the same bytes.

* ``bge``: ``{"query", "pos", "neg"}`` plus ``"pos_scores"``/``"neg_scores"`` when every
  written passage of that query has a teacher score (FlagEmbedding's knowledge-distillation
  fields must align 1:1 with the texts, so a partial list would be wrong, not incomplete).
* ``tevatron``: ``{"query_id", "query", "positive_passages", "negative_passages"}``, each
  passage ``{"docid", "title", "text"}`` — the layout of the published RLHN datasets.
* ``sentence_transformers``: ``{"anchor", "positive", "negative"}``, one row per positive ×
  negative; ``{"anchor", "positive"}`` pairs when the dataset has no negatives at all.

BGE and sentence-transformers have no passage ids or titles: a passage is written as
``title + " " + text`` when it has a title, else ``text`` — the way FlagEmbedding's own
conversion scripts join BEIR titles, and what the model sees at training time anyway.
"""

from __future__ import annotations

import json
from typing import Protocol

from .policy import Candidate, QueryData


class TextSink(Protocol):
    def write(self, text: str, /) -> object: ...


def passage_text(candidate: Candidate) -> str:
    return f"{candidate.title} {candidate.text}" if candidate.title else candidate.text


def _line(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False) + "\n"


class SnapshotWriter:
    """Writes queries to ``out``; ``write`` returns how many lines it wrote (0 means the
    query did not fit the format and is not in the file)."""

    format = ""

    def __init__(self, out: TextSink):
        self.out = out

    def write(self, query: QueryData) -> int:
        raise NotImplementedError


class BgeWriter(SnapshotWriter):
    format = "bge"

    def write(self, query: QueryData) -> int:
        obj = {
            "query": query.text,
            "pos": [passage_text(c) for c in query.positives],
            "neg": [passage_text(c) for c in query.negatives],
        }
        passages = query.positives + query.negatives
        if all(c.teacher_score is not None for c in passages):
            obj["pos_scores"] = [c.teacher_score for c in query.positives]
            obj["neg_scores"] = [c.teacher_score for c in query.negatives]
        self.out.write(_line(obj))
        return 1


class TevatronWriter(SnapshotWriter):
    format = "tevatron"

    @staticmethod
    def _passage(candidate: Candidate) -> dict:
        return {"docid": candidate.doc_id, "title": candidate.title, "text": candidate.text}

    def write(self, query: QueryData) -> int:
        obj = {
            "query_id": query.query_id,
            "query": query.text,
            "positive_passages": [self._passage(c) for c in query.positives],
            "negative_passages": [self._passage(c) for c in query.negatives],
        }
        self.out.write(_line(obj))
        return 1


class SentenceTransformersWriter(SnapshotWriter):
    format = "sentence_transformers"

    def __init__(self, out: TextSink, *, pairs: bool = False):
        super().__init__(out)
        # Decided once per dataset, not per query: a file mixing pairs and triplets would
        # not load as one sentence-transformers dataset.
        self.pairs = pairs

    def write(self, query: QueryData) -> int:
        rows = 0
        for positive in query.positives:
            if self.pairs:
                self.out.write(_line({"anchor": query.text, "positive": passage_text(positive)}))
                rows += 1
                continue
            for negative in query.negatives:
                self.out.write(
                    _line(
                        {
                            "anchor": query.text,
                            "positive": passage_text(positive),
                            "negative": passage_text(negative),
                        }
                    )
                )
                rows += 1
        return rows


FORMATS: dict[str, type[SnapshotWriter]] = {
    w.format: w for w in (BgeWriter, TevatronWriter, SentenceTransformersWriter)
}


def writer_for(format: str, out: TextSink, *, dataset_has_negatives: bool = True) -> SnapshotWriter:
    try:
        cls = FORMATS[format]
    except KeyError:
        raise ValueError(f"unknown export format {format!r}") from None
    if cls is SentenceTransformersWriter:
        return cls(out, pairs=not dataset_has_negatives)
    return cls(out)
