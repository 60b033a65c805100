"""Training rows from a snapshot file. Pure: no Django, no torch.

A snapshot file (``curation/datasets/export/writers.py``) is the immutable input of a training run.
It is read into ``Example``s — a query, its positive passages, its negative passages — the
same way for the three formats:

* ``bge``: ``{"query", "pos": [...], "neg": [...]}``, one query per line.
* ``tevatron``: ``{"query", "positive_passages": [{"title", "text"}], "negative_passages"}``;
  a passage is ``title + " " + text`` when it has a title (what the bge and
  sentence-transformers writers write, and what BEIR / MTEB encode).
* ``sentence_transformers``: one ``{"anchor", "positive", "negative"}`` row per positive x
  negative (or ``{"anchor", "positive"}`` pairs); rows are grouped back by anchor, so a query
  gives the same example as in the other two formats. ``negative_1`` … ``negative_n``
  columns are read too.

``build_rows`` turns examples into the columns sentence-transformers trains on:
``anchor`` (query prefix + query), ``positive``, ``negative_1`` … ``negative_k`` — one row per
(query, positive). Queries with more than k negatives get a seeded sample; with fewer, their
negatives are repeated (FlagEmbedding's and Tevatron's rule: every row needs k). Pairs only
when no example has a negative at all (or k = 0): a mixed table would not load as one
dataset, and a query without negatives is then left out and counted.
"""

from __future__ import annotations

import gzip
import json
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

FORMATS = ("bge", "tevatron", "sentence_transformers")


class SnapshotFormatError(ValueError):
    """A line of a snapshot file that cannot be read; names the file, line and field."""

    def __init__(self, message: str, *, file: str, line: int, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.detail = {"file": file, "line": line}
        if field:
            self.detail["field"] = field


@dataclass
class Example:
    query: str
    positives: list[str] = field(default_factory=list)
    negatives: list[str] = field(default_factory=list)


@dataclass
class TrainingRows:
    """Columns in the order the loss reads them: anchor, positive, negative_1..k."""

    columns: dict[str, list[str]]
    stats: dict

    def __len__(self) -> int:
        return len(self.columns["anchor"]) if self.columns else 0

    @property
    def num_negatives(self) -> int:
        return sum(1 for name in self.columns if name.startswith("negative_"))


@dataclass
class TaskRows:
    """The rows of several snapshots, each trained as its own dataset (every batch from one
    of them; ``mixing.py``), in the order given. ``tasks`` maps a name to that snapshot's
    rows."""

    tasks: dict[str, TrainingRows]

    def __len__(self) -> int:
        return sum(len(rows) for rows in self.tasks.values())

    @property
    def num_negatives(self) -> int:
        return max((rows.num_negatives for rows in self.tasks.values()), default=0)

    @property
    def stats(self) -> dict:
        """The counts of every snapshot's rows added up (each one's: ``tasks[name].stats``)."""
        totals: dict = {"snapshots": len(self.tasks)}
        for rows in self.tasks.values():
            for key, value in rows.stats.items():
                if isinstance(value, int) and key != "num_negatives":
                    totals[key] = totals.get(key, 0) + value
        totals["num_negatives"] = self.num_negatives
        return totals

    def layouts(self) -> dict[str, tuple[str, ...]]:
        """Each task's columns: a batch mixed across tasks needs them all the same."""
        return {name: tuple(rows.columns) for name, rows in self.tasks.items()}


def _open_text(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _records(path: Path) -> Iterator[tuple[int, dict]]:
    with _open_text(path) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as error:
                raise SnapshotFormatError(
                    f"{path.name} line {number}: not valid JSON ({error})",
                    file=path.name,
                    line=number,
                ) from None
            if not isinstance(record, dict):
                raise SnapshotFormatError(
                    f"{path.name} line {number}: expected a JSON object",
                    file=path.name,
                    line=number,
                )
            yield number, record


def _text(record: dict, key: str, path: Path, number: int, *, required: bool = True) -> str:
    value = record.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise SnapshotFormatError(
            f'{path.name} line {number}, field "{key}": expected a string, '
            f"got {type(value).__name__}",
            file=path.name,
            line=number,
            field=key,
        )
    return value


def _texts(record: dict, key: str, path: Path, number: int) -> list[str]:
    value = record.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SnapshotFormatError(
            f'{path.name} line {number}, field "{key}": expected a list of strings',
            file=path.name,
            line=number,
            field=key,
        )
    return value


def _passages(record: dict, key: str, path: Path, number: int) -> list[str]:
    value = record.get(key, [])
    if not isinstance(value, list):
        raise SnapshotFormatError(
            f'{path.name} line {number}, field "{key}": expected a list of passages',
            file=path.name,
            line=number,
            field=key,
        )
    out = []
    for passage in value:
        if not isinstance(passage, dict) or not isinstance(passage.get("text"), str):
            raise SnapshotFormatError(
                f'{path.name} line {number}, field "{key}": each passage needs a "text" string',
                file=path.name,
                line=number,
                field=key,
            )
        title = passage.get("title") or ""
        out.append(f"{title} {passage['text']}" if title else passage["text"])
    return out


def read_examples(path: str | Path, format: str) -> Iterator[Example]:
    """The examples of a snapshot file, in file order. Raises ``SnapshotFormatError``."""
    path = Path(path)
    if format not in FORMATS:
        raise ValueError(f"unknown snapshot format {format!r}; one of {', '.join(FORMATS)}")
    if format == "bge":
        for number, record in _records(path):
            yield Example(
                query=_text(record, "query", path, number),
                positives=_texts(record, "pos", path, number),
                negatives=_texts(record, "neg", path, number),
            )
    elif format == "tevatron":
        for number, record in _records(path):
            yield Example(
                query=_text(record, "query", path, number),
                positives=_passages(record, "positive_passages", path, number),
                negatives=_passages(record, "negative_passages", path, number),
            )
    else:
        yield from _grouped_by_anchor(path)


def _grouped_by_anchor(path: Path) -> Iterator[Example]:
    # The writer emits one row per positive x negative: the query's rows come together, but
    # grouping over the whole file also merges a query whose rows are not adjacent.
    grouped: dict[str, Example] = {}
    for number, record in _records(path):
        anchor_key = "anchor" if "anchor" in record else "query"
        anchor = _text(record, anchor_key, path, number)
        example = grouped.get(anchor)
        if example is None:
            example = grouped[anchor] = Example(query=anchor)
        positive = _text(record, "positive", path, number)
        if positive not in example.positives:
            example.positives.append(positive)
        negatives = [_text(record, "negative", path, number)] if "negative" in record else []
        n = 1
        while f"negative_{n}" in record:
            negatives.append(_text(record, f"negative_{n}", path, number))
            n += 1
        for negative in negatives:
            if negative not in example.negatives:
                example.negatives.append(negative)
    yield from grouped.values()


def first_usable_example(path: str | Path, format: str) -> Example | None:
    """The first example with a query and a positive, reading no further than needed: what
    a web request can afford to check before a run is queued."""
    for example in read_examples(path, format):
        if example.query.strip() and example.positives:
            return example
    return None


def _unique(texts: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    return [t for t in texts if not (t in seen or seen.add(t))]


def pick_negatives(negatives: list[str], k: int, rng: random.Random) -> tuple[list[str], bool]:
    """k of ``negatives``: a sample when there are more, all of them (shuffled) repeated
    when there are fewer. Returns (chosen, padded)."""
    if len(negatives) >= k:
        return rng.sample(negatives, k), False
    repeated = negatives * math.ceil(k / len(negatives))
    return rng.sample(repeated, k), True


def build_rows(
    examples: Iterable[Example],
    *,
    num_negatives: int,
    seed: int,
    query_prefix: str = "",
    passage_prefix: str = "",
) -> TrainingRows:
    """Columns for sentence-transformers: one row per (query, positive) with k negatives.
    Each row draws from its own seeded stream (seed, example number, positive number), so a
    row's negatives do not depend on the rows before it."""
    if num_negatives < 0:
        raise ValueError("num_negatives must be >= 0")
    stats = {
        "examples_read": 0,
        "examples_used": 0,
        "examples_without_positive": 0,
        "examples_without_negatives": 0,
        "negatives_equal_to_a_positive": 0,
        "rows": 0,
        "rows_with_repeated_negatives": 0,
    }
    kept: list[tuple[int, str, list[str], list[str]]] = []
    for number, example in enumerate(examples):
        stats["examples_read"] += 1
        positives = _unique(p for p in example.positives if p.strip())
        if not example.query.strip() or not positives:
            stats["examples_without_positive"] += 1
            continue
        # A negative that is also a positive of the same query (a relabelled false negative,
        # or a duplicate passage) would teach the model to push the answer away.
        negatives = _unique(n for n in example.negatives if n.strip())
        clean = [n for n in negatives if n not in positives]
        stats["negatives_equal_to_a_positive"] += len(negatives) - len(clean)
        kept.append((number, example.query, positives, clean))

    k = num_negatives if any(negatives for *_, negatives in kept) else 0
    names = ["anchor", "positive"] + [f"negative_{i}" for i in range(1, k + 1)]
    columns: dict[str, list[str]] = {name: [] for name in names}
    for number, query, positives, negatives in kept:
        if k and not negatives:
            stats["examples_without_negatives"] += 1
            continue
        stats["examples_used"] += 1
        for position, positive in enumerate(positives):
            columns["anchor"].append(query_prefix + query)
            columns["positive"].append(passage_prefix + positive)
            if not k:
                continue
            chosen, padded = pick_negatives(
                negatives, k, random.Random(f"{seed}:{number}:{position}")
            )
            stats["rows_with_repeated_negatives"] += int(padded)
            for i, negative in enumerate(chosen, start=1):
                columns[f"negative_{i}"].append(passage_prefix + negative)
    stats["rows"] = len(columns["anchor"])
    stats["num_negatives"] = k
    stats["layout"] = "pairs" if k == 0 else "n-tuples"
    return TrainingRows(columns=columns, stats=stats)
