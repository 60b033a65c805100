"""Tevatron jsonl (also ``.jsonl.gz``), the format of the published RLHN datasets:
``{"query_id", "query", "positive_passages": [{"docid", "title", "text"}],
"negative_passages": [...]}``. Other keys (RLHN's ``response``, ``subset``, ...) are ignored.
"""

from __future__ import annotations

from collections.abc import Iterator

from .base import (
    NEGATIVE,
    POSITIVE,
    CandidateRow,
    FormatError,
    PassageRow,
    QueryRow,
    RecentKeys,
    Where,
    check_id,
    check_text,
    jsonl_records,
    missing_field,
    text_hash,
    type_name,
)
from .lines import JsonlFileReader

_LISTS = ((POSITIVE, "positive_passages"), (NEGATIVE, "negative_passages"))


class TevatronReader(JsonlFileReader):
    format = "tevatron"

    def rows(self) -> Iterator:
        # Keyed by (id, hash): a repeat with a different text must reach the database,
        # which reports the conflict with both lines.
        recent = RecentKeys(self._cache)
        for where, record in jsonl_records(self._file):
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
                    raise FormatError.at(
                        f"expected a list of passages, got {type_name(passages)}", where, key
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


def _passage(passage, where: Where, field: str) -> tuple[str, str, str]:
    if type(passage) is not dict:
        raise FormatError.at(
            f'expected a passage object {{"docid", "title", "text"}}, got {type_name(passage)}',
            where,
            field,
        )
    for key in ("docid", "text"):
        if key not in passage:
            raise missing_field(where, f"{field}.{key}")
    doc_id = check_id(passage["docid"], where=where, field=f"{field}.docid")
    body = check_text(passage["text"], where=where, field=f"{field}.text")
    title = passage.get("title")
    title = "" if title is None else check_text(title, where=where, field=f"{field}.title")
    return doc_id, title, body
