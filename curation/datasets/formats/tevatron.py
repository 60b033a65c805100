"""Tevatron jsonl (also ``.jsonl.gz``), the format of the published RLHN datasets:
``{"query_id", "query", "positive_passages": [{"docid", "title", "text"}],
"negative_passages": [...]}``. Other keys (RLHN's ``response``, ``subset``, ...) are ignored.
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
    LineFile,
    PassageRow,
    QueryRow,
    RecentKeys,
    Where,
    check_id,
    check_text,
    empty_file_error,
    json_object,
    missing_field,
    text_hash,
    type_name,
)

_LISTS = ((POSITIVE, "positive_passages"), (NEGATIVE, "negative_passages"))


class TevatronReader:
    format = "tevatron"
    ids_from_text = False
    candidates_need_lookup = False
    queries_need_candidates = False

    def __init__(self, path: Path, *, name: str | None = None, passage_cache: int | None = None):
        self._file = LineFile(path, name or Path(path).name)
        self.files = [self._file.name]
        self._cache = passage_cache or DEFAULT_PASSAGE_CACHE
        self.notes: dict = {}

    def fraction(self) -> float:
        return self._file.position() / self._file.size if self._file.size else 1.0

    def rows(self) -> Iterator:
        name = self._file.name
        # Keyed by (id, hash): a repeat with a different text must reach the database,
        # which reports the conflict with both lines.
        recent = RecentKeys(self._cache)
        records = 0
        for number, text in self._file.lines():
            if text.isspace():
                continue
            where = Where(name, number)
            record = json_object(text, where)
            records += 1
            for key in ("query_id", "query", "positive_passages"):
                if key not in record:
                    raise missing_field(where, key)
            query_id = check_id(record["query_id"], where=where, field="query_id")
            query = check_text(record["query"], where=where, field="query")
            yield QueryRow(query_id, query, where, "query")

            for role, key in _LISTS:
                passages = record.get(key)
                if passages is None:
                    continue
                if type(passages) is not list:
                    raise FormatError(
                        f"expected a list of passages, got {type_name(passages)}",
                        file=name,
                        line=number,
                        field=key,
                    )
                negative = role == NEGATIVE
                for index, passage in enumerate(passages):
                    field = f"{key}[{index}]"
                    doc_id, title, body = _passage(passage, where, field)
                    digest = text_hash(title, body)
                    if not recent.seen((doc_id, digest)):
                        yield PassageRow(doc_id, title, body, digest, where, field)
                    yield CandidateRow(
                        query_id, doc_id, role, index + 1 if negative else None, None, where
                    )
        if records == 0:
            raise empty_file_error(name)


def _passage(passage, where: Where, field: str) -> tuple[str, str, str]:
    if type(passage) is not dict:
        raise FormatError(
            f'expected a passage object {{"docid", "title", "text"}}, got {type_name(passage)}',
            file=where.file,
            line=where.line,
            field=field,
        )
    for key in ("docid", "text"):
        if key not in passage:
            raise missing_field(where, f"{field}.{key}")
    doc_id = check_id(passage["docid"], where=where, field=f"{field}.docid")
    body = check_text(passage["text"], where=where, field=f"{field}.text")
    title = passage.get("title")
    title = "" if title is None else check_text(title, where=where, field=f"{field}.title")
    return doc_id, title, body
