"""BGE / FlagEmbedding jsonl: one query per line,
``{"query": str, "pos": [str], "neg": [str], "pos_scores": [num]?, "neg_scores": [num]?,
"prompt": str?, "type": str?}``. No ids: queries and passages get ``h:<hash of the text>``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from .base import (
    NEGATIVE,
    POSITIVE,
    CandidateRow,
    FormatError,
    QueryRow,
    RecentKeys,
    Where,
    check_not_empty,
    check_text,
    jsonl_records,
    missing_field,
    text_id,
    text_passage,
    type_name,
)
from .lines import JsonlFileReader

_LISTS = ((POSITIVE, "pos", "pos_scores"), (NEGATIVE, "neg", "neg_scores"))


class BgeReader(JsonlFileReader):
    """The instruction BGE puts on each query ("Given a web search query, ...") goes into
    ``notes``: Sieve has no column for it yet; the import reports it so it is not silently
    lost."""

    format = "bge"
    ids_from_text = True

    def rows(self) -> Iterator:
        recent = RecentKeys(self._cache)
        prompt = None
        other_prompts = 0
        for where, record in jsonl_records(self._file):
            if "query" not in record:
                raise missing_field(where, "query")
            query = check_text(record["query"], where=where, field="query")
            check_not_empty(query, where=where, field="query")
            query_id = text_id(query)
            yield QueryRow(query_id, query, where, "query")

            yield from _candidate_rows(record, query_id, where, recent)

            record_prompt = record.get("prompt")
            if record_prompt is not None:
                if prompt is None:
                    prompt = check_text(record_prompt, where=where, field="prompt")
                elif record_prompt != prompt:
                    other_prompts += 1
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
            raise FormatError.at(
                f"expected a list of strings, got {type_name(passages)}", where, key
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
        raise FormatError.at(f"expected a list of numbers, got {type_name(value)}", where, field)
    if len(value) != count:
        passages = field.removesuffix("_scores")
        raise FormatError.at(
            f'has {len(value)} scores for {count} passages in "{passages}"', where, field
        )
    for index, score in enumerate(value):
        kind = type(score)
        if kind is not float and kind is not int:
            raise FormatError.at(
                f"expected a number, got {type_name(score)}", where, f"{field}[{index}]"
            )
        if kind is float and not math.isfinite(score):
            # JSON has no NaN or Infinity; Python's parser accepts them, a snapshot could
            # not write them back as valid JSON, and no teacher scores them.
            raise FormatError.at(
                f"expected a finite number, got {score}", where, f"{field}[{index}]"
            )
    return [float(score) for score in value]
