"""Tevatron jsonl (also ``.jsonl.gz``), the format of the published RLHN datasets:
``{"query_id", "query", "positive_passages": [{"docid", "title", "text"}],
"negative_passages": [...]}``. Other keys (RLHN's ``response``, ``subset``, ...) are ignored.

The same records as parquet (how the Hugging Face hub serves them): one row a record, the
passage lists as lists of structs; errors name the row.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .base import (
    DEFAULT_PASSAGE_CACHE,
    NEGATIVE,
    POSITIVE,
    CandidateRow,
    FormatError,
    PassageRow,
    QueryRow,
    RecentKeys,
    Where,
    check_id,
    check_not_empty,
    check_text,
    jsonl_records,
    missing_field,
    text_hash,
    type_name,
)
from .lines import JsonlFileReader
from .parquet import ParquetRows
from .sources import ReadLimits

_LISTS = ((POSITIVE, "positive_passages"), (NEGATIVE, "negative_passages"))


_COLUMNS = ("query_id", "query", "positive_passages", "negative_passages")


class TevatronReader(JsonlFileReader):
    format = "tevatron"

    def __init__(
        self,
        path: Path,
        *,
        name: str | None = None,
        passage_cache: int | None = None,
        limits: ReadLimits | None = None,
    ):
        label = name or Path(path).name
        self._parquet = None
        if label.lower().endswith(".parquet"):
            self._parquet = ParquetRows(path, label, batch_size=256)
            self.files = [label]
            self._cache = passage_cache or DEFAULT_PASSAGE_CACHE
            self.notes = {}
            for key in _COLUMNS[:3]:
                if key not in self._parquet.names:
                    raise FormatError("the column is missing", file=label, field=key)
        else:
            super().__init__(path, name=label, passage_cache=passage_cache, limits=limits)

    def fraction(self) -> float:
        return self._parquet.fraction() if self._parquet else super().fraction()

    def _records(self) -> tuple[Iterator, str]:
        if self._parquet is None:
            return jsonl_records(self._file), "line"
        columns = [key for key in _COLUMNS if key in self._parquet.names]
        return self._parquet.records(columns), "row"

    def rows(self) -> Iterator:
        # Keyed by (id, hash): a repeat with a different text must reach the database,
        # which reports the conflict with both lines.
        recent = RecentKeys(self._cache)
        records, unit = self._records()
        for where, record in records:
            for key in ("query_id", "query", "positive_passages"):
                if key not in record:
                    raise missing_field(where, key, unit)
            query_id = check_id(record["query_id"], where=where, field="query_id", unit=unit)
            query = check_text(record["query"], where=where, field="query", unit=unit)
            check_not_empty(query, where=where, field="query", unit=unit)
            yield QueryRow(query_id, query, where, "query")

            for role, key in _LISTS:
                passages = record.get(key)
                if passages is None:
                    continue
                if type(passages) is not list:
                    raise FormatError.at(
                        f"expected a list of passages, got {type_name(passages)}", where, key, unit
                    )
                negative = role == NEGATIVE
                for index, passage in enumerate(passages):
                    field = f"{key}[{index}]"
                    doc_id, title, body = _passage(passage, where, field, unit)
                    digest = text_hash(title, body)
                    if not recent.seen((doc_id, digest)):
                        yield PassageRow(doc_id, title, body, digest, where, field)
                    yield CandidateRow(
                        query_id, doc_id, role, index + 1 if negative else None, None, where
                    )


def _passage(passage, where: Where, field: str, unit: str) -> tuple[str, str, str]:
    if type(passage) is not dict:
        raise FormatError.at(
            f'expected a passage object {{"docid", "title", "text"}}, got {type_name(passage)}',
            where,
            field,
            unit,
        )
    for key in ("docid", "text"):
        if key not in passage:
            raise missing_field(where, f"{field}.{key}", unit)
    doc_id = check_id(passage["docid"], where=where, field=f"{field}.docid", unit=unit)
    body = check_text(passage["text"], where=where, field=f"{field}.text", unit=unit)
    title = passage.get("title")
    title = (
        "" if title is None else check_text(title, where=where, field=f"{field}.title", unit=unit)
    )
    if not title.strip():
        check_not_empty(body, where=where, field=f"{field}.text", unit=unit)
    return doc_id, title, body
