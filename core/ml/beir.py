"""The one reader of BEIR folders, for the importer and for evaluation. No Django.

A BEIR folder holds::

    corpus.jsonl   (or .jsonl.gz)  {"_id", "title"?, "text"}      one document a line
    queries.jsonl  (or .jsonl.gz)  {"_id", "text"}                 one query a line
    qrels/<split>.tsv                                              one judgment a line

A qrels line is ``query-id corpus-id score`` (BEIR) or ``query-id iteration corpus-id score``
(TREC, the iteration usually ``0`` or ``Q0``, ignored), its columns separated by tabs — or,
on a line without a tab, by runs of spaces. The first line is a header when its score is
not a number. Blank lines are skipped everywhere. ``_id`` may be a string or an integer.

Every problem is a ``BeirError`` naming the file, the line and the field:
``qrels/test.tsv line 2, field "score": expected a number, got "yes"``.

The record iterators (``corpus_records``, ``query_records``, ``qrel_records``) take
``(line number, text)`` pairs, so the importer feeds them from its own strict, progress-
reporting line reader and adds its database rules (id length, NUL characters) on top;
``beir_split_read`` reads a whole split into dicts for evaluation.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from .identity import digest_file_sample

CORPUS_NAMES = ("corpus.jsonl", "corpus.jsonl.gz")
QUERIES_NAMES = ("queries.jsonl", "queries.jsonl.gz")

_JSON_TYPE_NAMES = {
    str: "string",
    int: "int",
    float: "float",
    bool: "bool",
    list: "list",
    dict: "object",
}


class BeirError(ValueError):
    """A BEIR file that cannot be read; ``message`` names the file, the line and the field
    (a problem of the folder as a whole, such as an unknown id, says which file in words)."""

    def __init__(
        self,
        problem: str,
        *,
        file: str | None,
        line: int | None = None,
        field: str | None = None,
    ):
        self.problem = problem
        self.file = file
        self.line = line
        self.field = field
        super().__init__(self.message)

    @property
    def message(self) -> str:
        if self.file is None:
            return self.problem
        return error_message(self.problem, file=self.file, line=self.line, field=self.field)


def error_message(
    problem: str, *, file: str, line: int | None, field: str | None, unit: str = "line"
) -> str:
    """``file line 17, field "text": problem``: how every reader of a data file (this one and
    the importer's formats) says where a problem is."""
    where = file
    if line is not None:
        where += f" {unit} {line}"
    if field:
        where += f', field "{field}"'
    return f"{where}: {problem}"


def json_type_name(value) -> str:
    """The JSON name of a value's type, as a user who wrote the file would say it."""
    if value is None:
        return "null"
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


# --- records ------------------------------------------------------------------------------


class Document(NamedTuple):
    line: int
    doc_id: str
    title: str
    text: str


class QueryRecord(NamedTuple):
    line: int
    query_id: str
    text: str


class Qrel(NamedTuple):
    line: int
    query_id: str
    doc_id: str
    score: int | float  # an int when the file wrote a whole number


def json_record(text: str, *, file: str, line: int, error: type = BeirError) -> dict:
    """One jsonl line as an object, or ``error(problem, file=, line=)`` saying why it is not
    one (the importer's formats pass their own error class)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as problem:
        hint = " (is the line truncated?)" if problem.pos >= len(text.rstrip()) else ""
        raise error(
            f"invalid JSON at column {problem.colno}: {problem.msg}{hint}", file=file, line=line
        ) from None
    except RecursionError:
        # Python's parser recurses once per [ or {; no record of any format nests this deep.
        raise error(
            "the JSON is nested too deeply to read (thousands of [ or { inside each other)",
            file=file,
            line=line,
        ) from None
    if type(value) is not dict:
        raise error(f"expected a JSON object, got {json_type_name(value)}", file=file, line=line)
    return value


def _record_id(record: dict, *, file: str, line: int) -> str:
    if "_id" not in record:
        raise BeirError("the field is missing", file=file, line=line, field="_id")
    value = record["_id"]
    if type(value) is int:
        value = str(value)
    elif type(value) is not str:
        raise BeirError(
            f"expected an id (string), got {json_type_name(value)}",
            file=file,
            line=line,
            field="_id",
        )
    if not value.strip():
        raise BeirError("the id is empty", file=file, line=line, field="_id")
    return value


def _record_text(record: dict, field: str, *, file: str, line: int, optional=False) -> str:
    if field not in record:
        if optional:
            return ""
        raise BeirError("the field is missing", file=file, line=line, field=field)
    value = record[field]
    if value is None and optional:
        return ""
    if type(value) is not str:
        raise BeirError(
            f"expected a string, got {json_type_name(value)}", file=file, line=line, field=field
        )
    return value


def corpus_records(lines: Iterable[tuple[int, str]], *, file: str) -> Iterator[Document]:
    """The documents of a corpus file, in file order (a missing or null title is "")."""
    for number, text in lines:
        if not text.strip():
            continue
        record = json_record(text, file=file, line=number)
        doc_id = _record_id(record, file=file, line=number)
        body = _record_text(record, "text", file=file, line=number)
        title = _record_text(record, "title", file=file, line=number, optional=True)
        yield Document(number, doc_id, title, body)


def query_records(lines: Iterable[tuple[int, str]], *, file: str) -> Iterator[QueryRecord]:
    for number, text in lines:
        if not text.strip():
            continue
        record = json_record(text, file=file, line=number)
        query_id = _record_id(record, file=file, line=number)
        yield QueryRecord(number, query_id, _record_text(record, "text", file=file, line=number))


def _number(text: str) -> int | float | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def qrel_records(lines: Iterable[tuple[int, str]], *, file: str) -> Iterator[Qrel]:
    """The judgments of a qrels file (see the module's grammar); the header is skipped."""
    first = True
    for number, text in lines:
        line = text.rstrip("\r\n")
        if not line.strip():
            continue
        columns = line.split("\t") if "\t" in line else line.split()
        columns = [column.strip() for column in columns]
        if len(columns) == 4:  # TREC: query-id, iteration, corpus-id, score
            columns = [columns[0], columns[2], columns[3]]
        if len(columns) != 3:
            raise BeirError(
                "expected 3 columns (query-id, corpus-id, score) or TREC's 4 (query-id, "
                f"iteration, corpus-id, score), separated by tabs or spaces; got {len(columns)}",
                file=file,
                line=number,
            )
        query_id, doc_id, score_text = columns
        score = _number(score_text)
        if score is None:
            if first and number == 1:
                first = False
                continue  # a header line: "query-id  corpus-id  score"
            raise BeirError(
                f'expected a number, got "{score_text}"', file=file, line=number, field="score"
            )
        first = False
        if not math.isfinite(score):
            raise BeirError(
                f'expected a finite number, got "{score_text}"',
                file=file,
                line=number,
                field="score",
            )
        if not query_id:
            raise BeirError("the id is empty", file=file, line=number, field="query-id")
        if not doc_id:
            raise BeirError("the id is empty", file=file, line=number, field="corpus-id")
        yield Qrel(number, query_id, doc_id, score)


# --- files and folders --------------------------------------------------------------------


def file_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a UTF-8 file (a leading byte-order mark dropped), gunzipped
    when its name ends in ``.gz``."""
    opener = gzip.open if path.name.endswith(".gz") else open
    label = path.name
    with opener(path, "rb") as f:
        for number, data in enumerate(f, start=1):
            if number == 1 and data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
            try:
                yield number, data.decode("utf-8")
            except UnicodeDecodeError as error:
                problem = f"byte {error.start + 1} of the line is not valid UTF-8"
                raise BeirError(problem, file=label, line=number) from None


def first_file(folder: Path, names: tuple[str, ...]) -> Path | None:
    """The first of ``names`` that is a file in ``folder`` (``corpus.jsonl`` before ``.gz``)."""
    return next((folder / name for name in names if (folder / name).is_file()), None)


def qrels_splits(folder: Path) -> tuple[str, ...]:
    """The splits of a folder: one per ``qrels/<split>.tsv``, sorted."""
    qrels = folder / "qrels"
    if not qrels.is_dir():
        return ()
    return tuple(sorted(p.stem for p in qrels.glob("*.tsv") if p.is_file()))


@dataclass(frozen=True)
class BeirFolder:
    name: str
    path: Path
    corpus: Path
    queries: Path
    splits: tuple[str, ...]  # one per qrels/<split>.tsv, sorted

    @property
    def spec(self) -> str:
        return f"beir:{self.name}"

    def qrels(self, split: str) -> Path:
        return self.path / "qrels" / f"{split}.tsv"


def beir_folder_open(path: Path | str) -> BeirFolder | None:
    """The folder as a BEIR dataset, or None when it is not one (no corpus, queries or qrels)."""
    name = Path(path).name  # a symlinked folder is offered under the link's name
    path = Path(path).resolve()
    if not path.is_dir():
        return None
    corpus = first_file(path, CORPUS_NAMES)
    queries = first_file(path, QUERIES_NAMES)
    splits = qrels_splits(path)
    if corpus is None or queries is None or not splits:
        return None
    return BeirFolder(name=name, path=path, corpus=corpus, queries=queries, splits=splits)


def beir_folders_find(directories) -> list[BeirFolder]:
    """Every BEIR folder directly under each of ``directories`` (missing ones are skipped).
    A name found twice keeps its first folder: the order of the directories decides."""
    found: dict[str, BeirFolder] = {}
    for directory in directories:
        directory = Path(directory)
        if not directory.is_dir():
            continue
        for child in sorted(directory.iterdir()):
            if child.name.startswith(".") or child.name in found:
                continue
            folder = beir_folder_open(child)
            if folder is not None:
                found[folder.name] = folder
    return sorted(found.values(), key=lambda f: f.name)


def folder_revision(folder: BeirFolder) -> str:
    """A digest of the folder's files (evaluation's dataset revision): it changes when any
    file changes and never reads a multi-GB corpus whole."""
    digest = hashlib.blake2b(digest_size=16)
    files = [folder.corpus, folder.queries, *(folder.qrels(s) for s in folder.splits)]
    for path in files:
        digest_file_sample(digest, path, path.relative_to(folder.path).as_posix())
    return digest.hexdigest()


# --- a whole split, as dicts --------------------------------------------------------------


def read_corpus(path: Path) -> dict[str, tuple[str, str]]:
    """doc id → (title, text), in file order."""
    corpus: dict[str, tuple[str, str]] = {}
    for doc in corpus_records(file_lines(path), file=path.name):
        if doc.doc_id in corpus:
            raise BeirError(
                f'"{doc.doc_id}" appears twice', file=path.name, line=doc.line, field="_id"
            )
        corpus[doc.doc_id] = (doc.title, doc.text)
    return corpus


def read_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    for query in query_records(file_lines(path), file=path.name):
        if query.query_id in queries:
            raise BeirError(
                f'"{query.query_id}" appears twice', file=path.name, line=query.line, field="_id"
            )
        queries[query.query_id] = query.text
    return queries


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """query id → {doc id: grade}. Grades must be whole numbers (graded relevance for nDCG)."""
    label = f"qrels/{path.name}"
    qrels: dict[str, dict[str, int]] = {}
    for qrel in qrel_records(file_lines(path), file=label):
        if qrel.score != int(qrel.score):
            raise BeirError("expected a whole number", file=label, line=qrel.line, field="score")
        qrels.setdefault(qrel.query_id, {})[qrel.doc_id] = int(qrel.score)
    if not qrels:
        raise BeirError("no judgments", file=label)
    return qrels


@dataclass
class BeirSplit:
    """One split: the whole corpus, the queries the qrels name, the qrels."""

    corpus: dict[str, tuple[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def split_missing_error(folder: BeirFolder, split: str) -> BeirError:
    return BeirError(
        f'{folder.name} has no split "{split}" (qrels/{split}.tsv); '
        f"it has {', '.join(folder.splits)}",
        file=None,
    )


def beir_split_read(folder: BeirFolder, split: str) -> BeirSplit:
    """Reads ``split`` and checks that every query and document the qrels name exists."""
    if split not in folder.splits:
        raise split_missing_error(folder, split)
    qrels = read_qrels(folder.qrels(split))
    queries = read_queries(folder.queries)
    corpus = read_corpus(folder.corpus)
    missing_queries = sorted(q for q in qrels if q not in queries)
    if missing_queries:
        raise BeirError(
            f"qrels/{split}.tsv names {len(missing_queries)} query id(s) that are not in "
            f"{folder.queries.name}: {', '.join(missing_queries[:5])}",
            file=None,
        )
    missing_docs = sorted({d for docs in qrels.values() for d in docs if d not in corpus})
    if missing_docs:
        raise BeirError(
            f"qrels/{split}.tsv names {len(missing_docs)} corpus id(s) that are not in "
            f"{folder.corpus.name}: {', '.join(missing_docs[:5])}",
            file=None,
        )
    # Only the queries the split judges take part (what BEIR's and mteb's loaders do).
    return BeirSplit(corpus=corpus, queries={q: queries[q] for q in qrels}, qrels=qrels)
