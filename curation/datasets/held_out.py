"""Queries held out of a snapshot for evaluation: a seeded share of a dataset's queries is left
out of the training file and written beside it with its relevant passages, and the evaluation
app offers it as a task (``heldout:<snapshot id>``, ``evaluation/services/dataset_tasks.py``):
in-domain queries the fine-tune never saw.

Which queries: those whose ``blake2b(seed, query id)`` falls below the fraction — a rule of the
query's id alone, so every snapshot of a dataset frozen with the same fraction and seed holds
out the same queries whatever its policy (RLHN's default, remove_hn and relabel runs are then
scored on one benchmark), and nothing has to be stored to know which.

What is relevant to a held-out query is the curated truth at freezing time, whatever the
snapshot's policy: its positives that no decision marked not relevant, plus its negatives
decided to be false negatives (by a person, or by an approval in force). A query left with no
relevant passage is not written (it could not be scored).
"""

from __future__ import annotations

import hashlib
import json

MAX_FRACTION = 0.5
HELD_OUT_VERSION = 1


def held_out_pick(query_id: str, *, fraction: float, seed: int) -> bool:
    """Whether ``query_id`` is held out at ``fraction`` with ``seed``."""
    if fraction <= 0:
        return False
    digest = hashlib.blake2b(f"{seed}\0{query_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


def held_out_relevant(query) -> list[str]:
    """The doc ids relevant to ``query`` (an export ``QueryData``): positives not marked not
    relevant, then negatives marked false negatives; each once, in that order."""
    relevant = [p.doc_id for p in query.positives if not p.not_relevant]
    relevant += [n.doc_id for n in query.negatives if n.false_negative]
    return list(dict.fromkeys(relevant))


class HeldOutWriter:
    """One JSON line per held-out query — ``{"query_id", "query", "relevant": [doc ids]}`` —
    with the file's sha256 and counts for the manifest."""

    def __init__(self, raw):
        self.raw = raw
        self.digest = hashlib.sha256()
        self.queries = 0
        self.relevant = 0
        self.without_relevant = 0

    def write(self, query) -> None:
        relevant = held_out_relevant(query)
        if not relevant:
            self.without_relevant += 1
            return
        line = json.dumps(
            {"query_id": query.query_id, "query": query.text, "relevant": relevant},
            ensure_ascii=False,
        )
        data = (line + "\n").encode("utf-8")
        self.raw.write(data)
        self.digest.update(data)
        self.queries += 1
        self.relevant += len(relevant)


def held_out_read(path) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """(queries {id: text}, qrels {id: {doc id: 1}}) of a held-out file."""
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            record = json.loads(line)
            queries[record["query_id"]] = record["query"]
            qrels[record["query_id"]] = {doc_id: 1 for doc_id in record["relevant"]}
    return queries, qrels
