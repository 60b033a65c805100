"""BEIR folders as import rows. The files are read by ``core/ml/beir.py``, the grammar
evaluation reads them with too: ``corpus.jsonl`` (or ``.jsonl.gz``) of ``{"_id", "title",
"text"}``, ``queries.jsonl`` of ``{"_id", "text"}`` and ``qrels/<split>.tsv`` of
``query-id corpus-id score`` (or TREC's ``query-id iteration corpus-id score``), separated by
tabs or spaces, with or without a header line.

Every corpus document becomes a passage. Qrels with ``score >= min_relevance`` are positives,
``score <= 0`` are negatives (judged non-relevant); grades in between are skipped and
counted. Only the queries the split's qrels name belong to the dataset (the importer keeps
the queries that have a candidate). Whether a qrel names a known query and document is
checked by the importer in the database, where the whole corpus is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from core.ml.beir import (
    CORPUS_NAMES,
    QUERIES_NAMES,
    BeirError,
    corpus_records,
    first_file,
    qrel_records,
    query_records,
)

from .base import (
    NEGATIVE,
    POSITIVE,
    CandidateRow,
    FormatError,
    OptionError,
    PassageRow,
    QueryRow,
    Where,
    check_id,
    check_not_empty,
    check_text,
    empty_file_error,
    text_hash,
)
from .lines import LineFile
from .sources import DiskFolder, FileSource, ReadLimits, ZipFolder


def is_beir_folder(folder: Path) -> bool:
    return (
        folder.is_dir()
        and first_file(folder, CORPUS_NAMES) is not None
        and first_file(folder, QUERIES_NAMES) is not None
    )


def holds_beir(folder: DiskFolder | ZipFolder) -> bool:
    """``is_beir_folder`` for a folder on disk or inside a .zip."""
    return _first_of(folder, CORPUS_NAMES) is not None and (
        _first_of(folder, QUERIES_NAMES) is not None
    )


class BeirReader:
    format = "beir"
    ids_from_text = False
    candidates_need_lookup = True
    queries_need_candidates = True

    def __init__(
        self,
        folder: Path | DiskFolder | ZipFolder,
        *,
        name: str | None = None,
        split: str | None = None,
        min_relevance: float = 1,
        limits: ReadLimits | None = None,
    ):
        if isinstance(folder, (DiskFolder, ZipFolder)):
            label = name or folder.label
        else:
            folder = Path(folder)
            label = name or folder.name
            if not folder.is_dir():
                raise FormatError(
                    "a BEIR dataset is a folder (or a .zip of one) with corpus.jsonl, "
                    "queries.jsonl and qrels/<split>.tsv",
                    file=label,
                )
            folder = DiskFolder(folder, label)
        if min_relevance <= 0:
            raise OptionError(
                f"min_relevance must be above 0 (qrels with score 0 are negatives), "
                f"got {min_relevance}",
                field="min_relevance",
            )
        self.min_relevance = min_relevance
        corpus = _one_of(folder, label, CORPUS_NAMES)
        queries = _one_of(folder, label, QUERIES_NAMES)
        self.split, qrels = _split_file(folder, label, split)
        folder.check_declared([corpus.name, queries.name, qrels.name])
        self._corpus = LineFile(corpus, limits=limits)
        self._queries = LineFile(queries, limits=limits)
        self._qrels = LineFile(qrels, limits=limits)
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
        records = empty = 0
        for doc in _format_errors(corpus_records(self._corpus.lines(), file=name)):
            where = Where(name, doc.line)
            records += 1
            doc_id = check_id(doc.doc_id, where=where, field="_id")
            body = check_text(doc.text, where=where, field="text")
            title = check_text(doc.title, where=where, field="title")
            if (not body or body.isspace()) and (not title or title.isspace()):
                # Published BEIR corpora hold a few empty documents that their qrels may
                # judge: kept (evaluation reads them as they are), and reported.
                empty += 1
                if empty == 1:
                    self.notes["first_empty_document"] = f"{name} line {doc.line}"
            yield PassageRow(doc_id, title, body, text_hash(title, body), where, "text")
        if records == 0:
            raise empty_file_error(name)
        if empty:
            self.notes["empty_documents"] = empty

    def _query_rows(self) -> Iterator[QueryRow]:
        name = self._queries.name
        records = 0
        for query in _format_errors(query_records(self._queries.lines(), file=name)):
            where = Where(name, query.line)
            records += 1
            query_id = check_id(query.query_id, where=where, field="_id")
            text = check_text(query.text, where=where, field="text")
            check_not_empty(text, where=where, field="text")
            yield QueryRow(query_id, text, where, "text")
        if records == 0:
            raise empty_file_error(name)

    def _qrel_rows(self) -> Iterator[CandidateRow]:
        name = self._qrels.name
        positives = negatives = skipped = 0
        for qrel in _format_errors(qrel_records(self._qrels.lines(), file=name)):
            where = Where(name, qrel.line)
            query_id = check_id(qrel.query_id, where=where, field="query-id")
            doc_id = check_id(qrel.doc_id, where=where, field="corpus-id")
            if qrel.score >= self.min_relevance:
                positives += 1
                yield CandidateRow(query_id, doc_id, POSITIVE, None, None, where)
            elif qrel.score <= 0:
                negatives += 1
                yield CandidateRow(query_id, doc_id, NEGATIVE, None, None, where)
            else:
                skipped += 1
        if positives + negatives + skipped == 0:
            raise empty_file_error(name)
        self.notes["qrels_below_min_relevance"] = skipped


def _format_errors(records: Iterator) -> Iterator:
    """``records`` with the reader's ``BeirError`` given as the importer's ``FormatError``
    (the same file, line and field)."""
    try:
        yield from records
    except BeirError as error:
        raise FormatError(
            error.problem, file=error.file or "", line=error.line, field=error.field
        ) from None


def _first_of(folder: DiskFolder | ZipFolder, names: tuple[str, ...]) -> FileSource | None:
    return next((found for name in names if (found := folder.file(name)) is not None), None)


def _one_of(folder: DiskFolder | ZipFolder, label: str, names: tuple[str, ...]) -> FileSource:
    found = _first_of(folder, names)
    if found is None:
        raise FormatError(f"{' or '.join(names)} is missing", file=label)
    return found


def _split_file(
    folder: DiskFolder | ZipFolder, label: str, split: str | None
) -> tuple[str, FileSource]:
    available = [name[: -len(".tsv")] for name in folder.names_in("qrels") if name.endswith(".tsv")]
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
    return split, folder.file(f"qrels/{split}.tsv")
