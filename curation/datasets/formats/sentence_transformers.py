"""sentence-transformers pairs, triplets and n-tuples as jsonl, csv / tsv or parquet.

Columns: ``anchor`` (or ``query``), ``positive`` (or ``pos``), then ``negative`` (or ``neg``)
and/or ``negative_1`` .. ``negative_n``; names are matched without regard to case and other
columns are ignored. No ids: queries and passages get ``h:<hash of the text>``. A negative
gets its column's position as rank; an empty negative cell (a shorter n-tuple) is skipped.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from .base import (
    DEFAULT_PASSAGE_CACHE,
    NEGATIVE,
    POSITIVE,
    CandidateRow,
    FormatError,
    QueryRow,
    RecentKeys,
    Where,
    check_not_empty,
    check_text,
    empty_file_error,
    jsonl_records,
    text_id,
    text_passage,
)
from .lines import LineFile
from .parquet import ParquetRows
from .sources import ReadLimits

_NUMBERED_NEGATIVE = re.compile(r"(?:negative|neg)_(\d+)")


def st_columns(names, *, file: str, line: int | None, unit: str = "line"):
    """(query column, positive column, negative columns in rank order) of a header."""
    lower = {}
    for name in names:
        lower.setdefault(str(name).lower(), name)
    query = lower.get("anchor", lower.get("query"))
    positive = lower.get("positive", lower.get("pos"))
    if query is None:
        raise FormatError(
            'the column "anchor" (or "query") is missing',
            file=file,
            line=line,
            field="anchor",
            unit=unit,
        )
    if positive is None:
        raise FormatError(
            'the column "positive" (or "pos") is missing',
            file=file,
            line=line,
            field="positive",
            unit=unit,
        )
    negatives = []
    single = lower.get("negative", lower.get("neg"))
    if single is not None:
        negatives.append(single)
    numbered = []
    for key, name in lower.items():
        match = _NUMBERED_NEGATIVE.fullmatch(key)
        if match:
            numbered.append((int(match.group(1)), name))
    negatives.extend(name for _, name in sorted(numbered))
    return query, positive, negatives


class SentenceTransformersReader:
    format = "sentence_transformers"
    ids_from_text = True
    candidates_need_lookup = False
    queries_need_candidates = False

    def __init__(
        self,
        path: Path,
        *,
        name: str | None = None,
        passage_cache: int | None = None,
        limits: ReadLimits | None = None,
    ):
        self.path = Path(path)
        self._limits = limits or ReadLimits()
        self.name = name or self.path.name
        self.files = [self.name]
        self._cache = passage_cache or DEFAULT_PASSAGE_CACHE
        self.notes: dict = {}
        kind = self.name.lower().removesuffix(".gz")
        if kind.endswith(".parquet"):
            self._kind = "parquet"
        elif kind.endswith(".csv"):
            self._kind = "csv"
        elif kind.endswith(".tsv"):
            self._kind = "tsv"
        else:
            self._kind = "jsonl"
        self._line_file = (
            None if self._kind == "parquet" else LineFile(self.path, self.name, limits=self._limits)
        )
        self._parquet_rows = None

    def fraction(self) -> float:
        if self._line_file is not None:
            size = self._line_file.size
            return self._line_file.position() / size if size else 1.0
        return self._parquet_rows.fraction() if self._parquet_rows else 0.0

    def rows(self) -> Iterator:
        records = {"jsonl": self._jsonl, "csv": self._csv, "tsv": self._csv}.get(
            self._kind, self._parquet
        )()
        passages = RecentKeys(self._cache)
        queries = RecentKeys(min(self._cache, 10_000))
        unit = "row" if self._kind == "parquet" else "line"
        count = 0
        for where, values, (query_key, positive_key, negative_keys) in records:
            count += 1
            query = check_text(values[query_key], where=where, field=query_key, unit=unit)
            check_not_empty(query, where=where, field=query_key, unit=unit)
            query_id = text_id(query)
            if not queries.seen(query_id):
                yield QueryRow(query_id, query, where, query_key)
            doc_id, row = text_passage(
                values[positive_key], where=where, field=positive_key, recent=passages, unit=unit
            )
            if row is not None:
                yield row
            yield CandidateRow(query_id, doc_id, POSITIVE, None, None, where)
            for rank, key in enumerate(negative_keys, 1):
                value = values.get(key)
                if value is None or value == "" or (type(value) is str and value.isspace()):
                    continue
                doc_id, row = text_passage(
                    value, where=where, field=key, recent=passages, unit=unit
                )
                if row is not None:
                    yield row
                yield CandidateRow(query_id, doc_id, NEGATIVE, rank, None, where)
        if count == 0:
            raise empty_file_error(self.name)

    def _jsonl(self):
        header_cache: dict = {}
        for where, record in jsonl_records(self._line_file):
            keys = tuple(record)
            columns = header_cache.get(keys)
            if columns is None:
                columns = st_columns(keys, file=self.name, line=where.line)
                if len(header_cache) < 64:
                    header_cache[keys] = columns
            yield where, record, columns

    def _csv(self):
        delimiter = "\t" if self._kind == "tsv" else ","
        # A quoted cell may span lines: bound it like a line (the limit is process-wide, and
        # every import sets it the same way from settings).
        csv.field_size_limit(self._limits.max_line_bytes)
        lines = (text for _, text in self._line_file.lines())
        reader = csv.reader(lines, delimiter=delimiter)
        header = None
        last_line = 0
        try:
            for cells in reader:
                start, last_line = last_line + 1, reader.line_num
                if header is None:
                    header = cells
                    columns = st_columns(header, file=self.name, line=start)
                    continue
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue
                if len(cells) != len(header):
                    raise FormatError(
                        f"expected {len(header)} cells as in the header, got {len(cells)}",
                        file=self.name,
                        line=start,
                    )
                yield Where(self.name, start), dict(zip(header, cells, strict=True)), columns
        except csv.Error as error:
            raise FormatError(
                f"malformed {self._kind.upper()}: {error}", file=self.name, line=last_line + 1
            ) from None

    def _parquet(self):
        import pyarrow as pa

        parquet = ParquetRows(self.path, self.name)
        self._parquet_rows = parquet
        columns = st_columns(parquet.names, file=self.name, line=None, unit="row")
        query_key, positive_key, negative_keys = columns
        wanted = [query_key, positive_key, *negative_keys]
        for key in wanted:
            kind = parquet.schema.field(key).type
            if pa.types.is_dictionary(kind):
                kind = kind.value_type
            if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
                raise FormatError(
                    f"expected a column of strings, got {kind}", file=self.name, field=key
                )
        for where, values in parquet.records(wanted):
            yield where, values, columns
