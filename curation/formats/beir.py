"""BEIR folders: ``corpus.jsonl`` (or ``.jsonl.gz``) of ``{"_id", "title", "text"}``,
``queries.jsonl`` of ``{"_id", "text"}`` and ``qrels/<split>.tsv`` of
``query-id <TAB> corpus-id <TAB> score`` with or without a header line.

Every corpus document becomes a passage. Qrels with ``score >= min_relevance`` are positives,
``score <= 0`` are negatives (judged non-relevant); grades in between are skipped and
counted. Only the queries the split's qrels name belong to the dataset (the importer keeps
the queries that have a candidate). Whether a qrel names a known query and document is
checked by the importer in the database, where the whole corpus is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .base import (
    NEGATIVE,
    POSITIVE,
    CandidateRow,
    FormatError,
    LineFile,
    OptionError,
    PassageRow,
    QueryRow,
    Where,
    check_id,
    check_text,
    empty_file_error,
    json_object,
    missing_field,
    text_hash,
)


def is_beir_folder(folder: Path) -> bool:
    return (
        folder.is_dir()
        and any((folder / name).is_file() for name in ("corpus.jsonl", "corpus.jsonl.gz"))
        and any((folder / name).is_file() for name in ("queries.jsonl", "queries.jsonl.gz"))
    )


class BeirReader:
    format = "beir"
    ids_from_text = False
    candidates_need_lookup = True
    queries_need_candidates = True

    def __init__(
        self,
        folder: Path,
        *,
        name: str | None = None,
        split: str | None = None,
        min_relevance: float = 1,
    ):
        folder = Path(folder)
        label = name or folder.name
        if not folder.is_dir():
            raise FormatError(
                "a BEIR dataset is a folder (or a .zip of one) with corpus.jsonl, "
                "queries.jsonl and qrels/<split>.tsv",
                file=label,
            )
        if min_relevance <= 0:
            raise OptionError(
                f"min_relevance must be above 0 (qrels with score 0 are negatives), "
                f"got {min_relevance}",
                field="min_relevance",
            )
        self.min_relevance = min_relevance
        corpus = _one_of(folder, label, "corpus.jsonl", "corpus.jsonl.gz")
        queries = _one_of(folder, label, "queries.jsonl", "queries.jsonl.gz")
        self.split, qrels = _split_file(folder, label, split)
        self._corpus = LineFile(corpus, corpus.name)
        self._queries = LineFile(queries, queries.name)
        self._qrels = LineFile(qrels, f"qrels/{qrels.name}")
        self._parts = [self._corpus, self._queries, self._qrels]
        self._total = sum(part.size for part in self._parts) or 1
        self._done = 0
        self.files = [part.name for part in self._parts]
        self.notes: dict = {"split": self.split}

    def fraction(self) -> float:
        current = sum(part.position() for part in self._parts)
        return min(1.0, (self._done + current) / self._total)

    def rows(self) -> Iterator:
        yield from self._corpus_rows()
        self._done += self._corpus.size
        yield from self._query_rows()
        self._done += self._queries.size
        yield from self._qrel_rows()
        self._done += self._qrels.size

    def _corpus_rows(self) -> Iterator[PassageRow]:
        name = self._corpus.name
        records = 0
        for number, text in self._corpus.lines():
            if text.isspace():
                continue
            where = Where(name, number)
            record = json_object(text, where)
            records += 1
            for key in ("_id", "text"):
                if key not in record:
                    raise missing_field(where, key)
            doc_id = check_id(record["_id"], where=where, field="_id")
            body = check_text(record["text"], where=where, field="text")
            title = record.get("title")
            title = "" if title is None else check_text(title, where=where, field="title")
            yield PassageRow(doc_id, title, body, text_hash(title, body), where, "text")
        if records == 0:
            raise empty_file_error(name)

    def _query_rows(self) -> Iterator[QueryRow]:
        name = self._queries.name
        records = 0
        for number, text in self._queries.lines():
            if text.isspace():
                continue
            where = Where(name, number)
            record = json_object(text, where)
            records += 1
            for key in ("_id", "text"):
                if key not in record:
                    raise missing_field(where, key)
            query_id = check_id(record["_id"], where=where, field="_id")
            yield QueryRow(
                query_id, check_text(record["text"], where=where, field="text"), where, "text"
            )
        if records == 0:
            raise empty_file_error(name)

    def _qrel_rows(self) -> Iterator[CandidateRow]:
        name = self._qrels.name
        positives = negatives = skipped = 0
        for number, text in self._qrels.lines():
            line = text.rstrip("\r\n")
            if not line.strip():
                continue
            where = Where(name, number)
            columns = line.split("\t")
            if len(columns) != 3:
                raise FormatError(
                    f"expected 3 tab-separated columns (query-id, corpus-id, score), "
                    f"got {len(columns)}",
                    file=name,
                    line=number,
                )
            score = _number(columns[2])
            if score is None:
                if positives + negatives + skipped == 0 and number == 1:
                    continue  # a header line: "query-id  corpus-id  score"
                raise FormatError(
                    f'expected a number, got "{columns[2]}"', file=name, line=number, field="score"
                )
            query_id = check_id(columns[0], where=where, field="query-id")
            doc_id = check_id(columns[1], where=where, field="corpus-id")
            if score >= self.min_relevance:
                positives += 1
                yield CandidateRow(query_id, doc_id, POSITIVE, None, None, where)
            elif score <= 0:
                negatives += 1
                yield CandidateRow(query_id, doc_id, NEGATIVE, None, None, where)
            else:
                skipped += 1
        if positives + negatives + skipped == 0:
            raise empty_file_error(name)
        self.notes["qrels_below_min_relevance"] = skipped


def _one_of(folder: Path, label: str, *names: str) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise FormatError(f"{' or '.join(names)} is missing", file=label)


def _split_file(folder: Path, label: str, split: str | None) -> tuple[str, Path]:
    qrels = folder / "qrels"
    available = sorted(path.stem for path in qrels.glob("*.tsv")) if qrels.is_dir() else []
    if not available:
        raise FormatError("qrels/<split>.tsv is missing", file=label)
    if split:
        if split not in available:
            raise OptionError(
                f"there is no qrels/{split}.tsv; splits here: {', '.join(available)}",
                field="split",
            )
    elif len(available) == 1:
        split = available[0]
    elif "train" in available:
        split = "train"
    else:
        raise OptionError(f"choose a split: {', '.join(available)}", field="split")
    return split, qrels / f"{split}.tsv"


def _number(text: str) -> float | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None
