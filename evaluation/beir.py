"""Local BEIR folders as mteb retrieval tasks, offline. No Django; mteb and datasets are
imported only when a task is built.

A BEIR folder holds ``corpus.jsonl`` (or ``.jsonl.gz``) of ``{"_id", "title", "text"}``,
``queries.jsonl`` (or ``.gz``) of ``{"_id", "text"}`` and ``qrels/<split>.tsv`` of
``query-id <TAB> corpus-id <TAB> score``, with or without a header line (TREC's four columns
``query-id 0 corpus-id score`` are read too).

The task is an ``AbsTaskRetrieval`` subclass whose ``load_data`` fills mteb's own data layout
(``dataset["default"][split] = {corpus, queries, relevant_docs, top_ranked}``) from the files,
so mteb evaluates it exactly like a registry task and never reaches the hub. A document is
``title + " " + text`` as mteb joins them (mteb does the joining itself).

``corpus_subsample`` is the "streamlined" selection (Linq-Embed-Mistral's idea): every judged
document plus a seeded sample of the rest.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from curation.mining.encode import digest_file_sample

CORPUS_NAMES = ("corpus.jsonl", "corpus.jsonl.gz")
QUERIES_NAMES = ("queries.jsonl", "queries.jsonl.gz")
# mteb wants a language; a local folder does not say which it is. Scores do not depend on it.
DEFAULT_LANGUAGES = ["eng-Latn"]


class BeirError(ValueError):
    """A BEIR folder that cannot be read; the message names the file, the line and the field."""


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
    corpus = next((path / n for n in CORPUS_NAMES if (path / n).is_file()), None)
    queries = next((path / n for n in QUERIES_NAMES if (path / n).is_file()), None)
    qrels = path / "qrels"
    splits = (
        tuple(sorted(p.stem for p in qrels.glob("*.tsv") if p.is_file())) if qrels.is_dir() else ()
    )
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
    """A digest of the folder's files, used as the task's dataset revision in mteb's results:
    it changes when any file changes and never reads a multi-GB corpus whole."""
    digest = hashlib.blake2b(digest_size=16)
    files = [folder.corpus, folder.queries, *(folder.qrels(s) for s in folder.splits)]
    for path in files:
        digest_file_sample(digest, path, path.relative_to(folder.path).as_posix())
    return digest.hexdigest()


# --- reading ------------------------------------------------------------------------------


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                yield number, line


def _records(path: Path, *, fields: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    for number, line in _lines(path):
        try:
            record = json.loads(line)
        except ValueError as error:
            raise BeirError(f"{path.name} line {number}: not valid JSON ({error})") from None
        if not isinstance(record, dict):
            raise BeirError(f"{path.name} line {number}: expected a JSON object")
        if not isinstance(record.get("_id"), str | int) or str(record.get("_id")) == "":
            raise BeirError(f'{path.name} line {number}, field "_id": missing or empty')
        for field in fields:
            value = record.get(field)
            if value is None and field == "title":
                continue
            if not isinstance(value, str):
                raise BeirError(
                    f'{path.name} line {number}, field "{field}": expected a string, '
                    f"got {type(value).__name__}"
                )
        yield number, record


def read_corpus(path: Path) -> dict[str, tuple[str, str]]:
    """doc id → (title, text), in file order."""
    corpus: dict[str, tuple[str, str]] = {}
    for number, record in _records(path, fields=("text", "title")):
        doc_id = str(record["_id"])
        if doc_id in corpus:
            raise BeirError(f'{path.name} line {number}, field "_id": "{doc_id}" appears twice')
        corpus[doc_id] = (record.get("title") or "", record["text"])
    return corpus


def read_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    for number, record in _records(path, fields=("text",)):
        query_id = str(record["_id"])
        if query_id in queries:
            raise BeirError(f'{path.name} line {number}, field "_id": "{query_id}" appears twice')
        queries[query_id] = record["text"]
    return queries


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """query id → {doc id: score}. The first line is a header when its score is not a number."""
    label = f"qrels/{path.name}"
    qrels: dict[str, dict[str, int]] = {}
    for number, line in _lines(path):
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) == 1:
            fields = line.split()
        if len(fields) == 4:  # TREC: query-id, iteration, corpus-id, score
            fields = [fields[0], fields[2], fields[3]]
        if len(fields) != 3:
            raise BeirError(
                f"{label} line {number}: expected query-id, corpus-id and score separated "
                f"by tabs, got {len(fields)} fields"
            )
        query_id, doc_id, score_text = (f.strip() for f in fields)
        score = _number(score_text)
        if score is None:
            if number == 1 and not qrels:
                continue  # the header line
            raise BeirError(f'{label} line {number}, field "score": "{score_text}" is not a number')
        if score != int(score):
            raise BeirError(f'{label} line {number}, field "score": expected a whole number')
        qrels.setdefault(query_id, {})[doc_id] = int(score)
    if not qrels:
        raise BeirError(f"{label}: no judgments")
    return qrels


@dataclass
class BeirSplit:
    """One split, ready for mteb: the whole corpus, the queries the qrels name, the qrels."""

    corpus: dict[str, tuple[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def beir_split_read(folder: BeirFolder, split: str) -> BeirSplit:
    """Reads ``split`` and checks that every query and document the qrels name exists."""
    if split not in folder.splits:
        raise BeirError(
            f'{folder.name} has no split "{split}" (qrels/{split}.tsv); '
            f"it has {', '.join(folder.splits)}"
        )
    qrels = read_qrels(folder.qrels(split))
    queries = read_queries(folder.queries)
    corpus = read_corpus(folder.corpus)
    missing_queries = sorted(q for q in qrels if q not in queries)
    if missing_queries:
        raise BeirError(
            f"qrels/{split}.tsv names {len(missing_queries)} query id(s) that are not in "
            f"{folder.queries.name}: {', '.join(missing_queries[:5])}"
        )
    missing_docs = sorted({d for docs in qrels.values() for d in docs if d not in corpus})
    if missing_docs:
        raise BeirError(
            f"qrels/{split}.tsv names {len(missing_docs)} corpus id(s) that are not in "
            f"{folder.corpus.name}: {', '.join(missing_docs[:5])}"
        )
    # Only the queries the split judges take part (what BEIR's and mteb's loaders do).
    return BeirSplit(corpus=corpus, queries={q: queries[q] for q in qrels}, qrels=qrels)


# --- streamlined subsample ----------------------------------------------------------------


def corpus_subsample(doc_ids, *, judged: set[str], sample: int, seed: int) -> list[str]:
    """The documents a streamlined evaluation keeps, in their original order: every judged one
    plus ``sample`` of the others. Which others is decided by a seeded hash of each id, not by
    the file's order, so the same seed keeps the same documents however the corpus is stored."""
    doc_ids = list(doc_ids)
    others = [d for d in doc_ids if d not in judged]
    if sample >= len(others):
        return doc_ids
    ranked = sorted(
        others,
        key=lambda d: hashlib.blake2b(f"{seed}\0{d}".encode(), digest_size=8).digest(),
    )
    keep = judged | set(ranked[: max(sample, 0)])
    return [d for d in doc_ids if d in keep]


# --- the mteb task ------------------------------------------------------------------------


def beir_task_build(folder: BeirFolder, *, splits: list[str] | None = None):
    """An mteb ``AbsTaskRetrieval`` for ``folder`` (evaluated on ``splits``, default: all).
    Its name is the spec, ``beir:<folder name>``; its dataset revision a digest of the files."""
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.task_metadata import TaskMetadata

    splits = list(splits or folder.splits)
    for split in splits:
        if split not in folder.splits:
            raise BeirError(
                f'{folder.name} has no split "{split}" (qrels/{split}.tsv); '
                f"it has {', '.join(folder.splits)}"
            )
    metadata = TaskMetadata(
        name=folder.spec,
        dataset={"path": str(folder.path), "revision": folder_revision(folder)},
        description=f"Local BEIR folder {folder.path}",
        type="Retrieval",
        category="t2t",
        modalities=["text"],
        eval_splits=splits,
        eval_langs=DEFAULT_LANGUAGES,
        main_score="ndcg_at_10",
    )

    class LocalBeirRetrieval(AbsTaskRetrieval):
        def load_data(self, num_proc=None, **kwargs) -> None:
            if self.data_loaded:
                return
            from datasets import Dataset

            self.dataset = {"default": {}}
            for split in self.eval_splits:
                data = beir_split_read(folder, split)
                corpus_ids = list(data.corpus)
                corpus = Dataset.from_dict(
                    {
                        "id": corpus_ids,
                        "title": [data.corpus[d][0] for d in corpus_ids],
                        "text": [data.corpus[d][1] for d in corpus_ids],
                    }
                )
                queries = Dataset.from_dict(
                    {"id": list(data.queries), "text": list(data.queries.values())}
                )
                self.dataset["default"][split] = {
                    "corpus": corpus,
                    "queries": queries,
                    "relevant_docs": data.qrels,
                    "top_ranked": None,
                }
            self.data_loaded = True

    LocalBeirRetrieval.__name__ = LocalBeirRetrieval.__qualname__ = "LocalBeirRetrieval"
    LocalBeirRetrieval.metadata = metadata
    return LocalBeirRetrieval()
