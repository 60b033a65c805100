"""BGE / FlagEmbedding jsonl: one query per line,
``{"query": str, "pos": [str], "neg": [str], "pos_scores": [num]?, "neg_scores": [num]?,
"prompt": str?, "type": str?}``. No ids: queries and passages get ``h:<hash of the text>``.
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
    QueryRow,
    RecentKeys,
    Where,
    check_text,
    empty_file_error,
    json_object,
    missing_field,
    text_id,
    text_passage,
    type_name,
)

_LISTS = ((POSITIVE, "pos", "pos_scores"), (NEGATIVE, "neg", "neg_scores"))


class BgeReader:
    format = "bge"
    ids_from_text = True
    candidates_need_lookup = False
    queries_need_candidates = False

    def __init__(self, path: Path, *, name: str | None = None, passage_cache: int | None = None):
        self._file = LineFile(path, name or Path(path).name)
        self.files = [self._file.name]
        self._cache = passage_cache or DEFAULT_PASSAGE_CACHE
        # The instruction BGE puts on each query ("Given a web search query, ..."). Sieve
        # has no column for it yet; the import reports it so it is not silently lost.
        self.notes: dict = {}

    def fraction(self) -> float:
        return self._file.position() / self._file.size if self._file.size else 1.0

    def rows(self) -> Iterator:
        name = self._file.name
        recent = RecentKeys(self._cache)
        records = 0
        prompt = None
        other_prompts = 0
        for number, text in self._file.lines():
            if text.isspace():
                continue
            where = Where(name, number)
            record = json_object(text, where)
            records += 1
            if "query" not in record:
                raise missing_field(where, "query")
            query = check_text(record["query"], where=where, field="query")
            query_id = text_id(query)
            yield QueryRow(query_id, query, where, "query")

            yield from _candidate_rows(record, query_id, where, recent)

            record_prompt = record.get("prompt")
            if record_prompt is not None:
                if prompt is None:
                    prompt = check_text(record_prompt, where=where, field="prompt")
                elif record_prompt != prompt:
                    other_prompts += 1
        if records == 0:
            raise empty_file_error(name)
        if prompt is not None:
            self.notes["prompt"] = prompt
            if other_prompts:
                self.notes["records_with_another_prompt"] = other_prompts


def _candidate_rows(record: dict, query_id: str, where: Where, recent: RecentKeys) -> Iterator:
    """The record's positives and negatives: a passage row where the passage is new to the
    file, then its candidate row (negatives ranked by their place in ``neg``)."""
    for role, key, scores_key in _LISTS:
        passages = record.get(key)
        if passages is None:
            if key == "pos":
                raise missing_field(where, "pos")
            continue
        if type(passages) is not list:
            raise FormatError(
                f"expected a list of strings, got {type_name(passages)}",
                file=where.file,
                line=where.line,
                field=key,
            )
        scores = _scores(record.get(scores_key), len(passages), where, scores_key)
        negative = role == NEGATIVE
        for index, passage in enumerate(passages):
            doc_id, row = text_passage(passage, where=where, field=f"{key}[{index}]", recent=recent)
            if row is not None:
                yield row
            yield CandidateRow(
                query_id,
                doc_id,
                role,
                index + 1 if negative else None,
                scores[index] if scores is not None else None,
                where,
            )


def _scores(value, count: int, where: Where, field: str) -> list[float] | None:
    if value is None:
        return None
    if type(value) is not list:
        raise FormatError(
            f"expected a list of numbers, got {type_name(value)}",
            file=where.file,
            line=where.line,
            field=field,
        )
    if len(value) != count:
        passages = field.removesuffix("_scores")
        raise FormatError(
            f'has {len(value)} scores for {count} passages in "{passages}"',
            file=where.file,
            line=where.line,
            field=field,
        )
    for index, score in enumerate(value):
        kind = type(score)
        if kind is not float and kind is not int:
            raise FormatError(
                f"expected a number, got {type_name(score)}",
                file=where.file,
                line=where.line,
                field=f"{field}[{index}]",
            )
    return [float(score) for score in value]
