"""Streaming readers for the training-data formats Sieve imports. Pure Python: no Django.

    reader = open_dataset(path, format=None, options={"split": "train"})
    for row in reader.rows():      # PassageRow / QueryRow / CandidateRow
        ...
    reader.fraction()              # how far through the input, 0..1, for progress bars

Every reader reads one line (or parquet batch) at a time, so memory does not grow with the
file, and raises ``FormatError`` naming file, line and field on the first bad value.
A reader also says what the importer must check in the database, where the whole data is:

* ``ids_from_text``: ids are hashes of the text, so one id can never carry two texts;
* ``candidates_need_lookup``: candidates may name ids the reader did not yield (BEIR qrels);
* ``queries_need_candidates``: only queries with a candidate belong to the dataset (a split).
"""

from __future__ import annotations

from pathlib import Path

from .base import (
    NEGATIVE,
    POSITIVE,
    CandidateRow,
    FormatError,
    OptionError,
    PassageRow,
    QueryRow,
    Where,
    jsonl_records,
    text_hash,
    text_id,
)
from .beir import BeirReader, holds_beir, is_beir_folder
from .bge import BgeReader
from .lines import LineFile
from .parquet import parquet_columns
from .sentence_transformers import SentenceTransformersReader
from .sources import ReadLimits, zip_beir_folder
from .tevatron import TevatronReader

__all__ = [
    "FILE_SUFFIXES",
    "FORMATS",
    "NEGATIVE",
    "POSITIVE",
    "CandidateRow",
    "FormatError",
    "OptionError",
    "PassageRow",
    "QueryRow",
    "ReadLimits",
    "Where",
    "detect_format",
    "open_dataset",
    "text_hash",
    "text_id",
]

FORMATS = ("bge", "tevatron", "beir", "sentence_transformers")

_TABLE_SUFFIXES = (".parquet", ".csv", ".tsv", ".csv.gz", ".tsv.gz")
# Every single file a reader reads (a BEIR dataset is a folder, or a .zip of one).
FILE_SUFFIXES = (".jsonl.gz", ".jsonl", *_TABLE_SUFFIXES)


def detect_format(path: Path, *, name: str | None = None, limits: ReadLimits | None = None) -> str:
    """The format of ``path``: a folder is BEIR, a parquet file is Tevatron when it has its
    passage-list columns, any other table is sentence-transformers, and a jsonl file is told
    by the keys of its first record."""
    path = Path(path)
    label = name or path.name
    if path.is_dir():
        if is_beir_folder(path):
            return "beir"
        raise FormatError(
            "this folder is not a BEIR dataset (corpus.jsonl, queries.jsonl, qrels/)", file=label
        )
    lower = label.lower()
    if lower.endswith(".parquet"):
        columns = set(parquet_columns(path, label))
        if columns & {"positive_passages", "negative_passages"}:
            return "tevatron"
        return "sentence_transformers"
    if lower.endswith(_TABLE_SUFFIXES) or path.name.lower().endswith(_TABLE_SUFFIXES):
        return "sentence_transformers"
    record, where = _first_record(path, label, limits)
    keys = set(record)
    if keys & {"positive_passages", "negative_passages"}:
        return "tevatron"
    if "pos" in keys and type(record["pos"]) is list:
        return "bge"
    if keys & {"anchor", "positive", "pos"}:
        return "sentence_transformers"
    shown = ", ".join(sorted(keys)[:10]) or "none"
    raise FormatError(
        f"cannot tell the format from the first record (keys: {shown}); choose one of "
        f"{', '.join(FORMATS)}",
        file=where.file,
        line=where.line,
    )


def open_dataset(
    path: Path,
    *,
    format: str | None = None,
    options: dict | None = None,
    name: str | None = None,
    limits: ReadLimits | None = None,
):
    """A reader for ``path`` (a file, a BEIR folder or a .zip of one, read without unpacking
    it to disk). ``options``: ``split`` and ``min_relevance`` (BEIR), ``passage_cache`` (how
    many recent passages to remember); ``limits``: line length and decompression limits."""
    path = Path(path)
    options = options or {}
    limits = limits or ReadLimits()
    label = name or path.name
    if not path.exists():
        raise FormatError("the file does not exist", file=name or str(path))
    if path.is_file() and (path.suffix.lower() == ".zip" or label.lower().endswith(".zip")):
        if format and format != "beir":
            raise FormatError(f"a .zip is read as a BEIR folder, not as {format}", file=label)
        path = zip_beir_folder(path, label=label, limits=limits, is_beir=holds_beir)
        format = "beir"
    format = format or detect_format(path, name=name, limits=limits)
    cache = options.get("passage_cache")
    if format == "beir":
        return BeirReader(
            path,
            name=name,
            split=options.get("split") or None,
            min_relevance=_min_relevance(options.get("min_relevance")),
            limits=limits,
        )
    if path.is_dir():
        raise FormatError(
            f"a {format} dataset is a single file; only BEIR datasets are folders",
            file=name or path.name,
        )
    readers = {
        "bge": BgeReader,
        "tevatron": TevatronReader,
        "sentence_transformers": SentenceTransformersReader,
    }
    if format not in readers:
        raise OptionError(
            f'unknown format "{format}"; choose one of {", ".join(FORMATS)}', field="format"
        )
    return readers[format](path, name=name, passage_cache=cache, limits=limits)


def _min_relevance(value) -> float:
    if value is None or value == "":
        return 1
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise OptionError(
            f'min_relevance must be a number, got "{value}"', field="min_relevance"
        ) from None
    return int(number) if number.is_integer() else number


def _first_record(path: Path, label: str, limits: ReadLimits | None) -> tuple[dict, Where]:
    records = jsonl_records(LineFile(path, label, limits=limits))
    try:
        where, record = next(records)
    finally:
        records.close()
    return record, where
