"""Sieve's own datasets as evaluation tasks (``dataset:<id>``): a dataset imported from an
evaluation split (a BEIR folder's ``test`` or ``dev`` qrels) is evaluated from the database,
with no copy of its files in ``SIEVE_EVAL_DATA_DIRS``.

The task is what BEIR would read from the imported folder: the whole corpus (every passage
of the dataset's corpus, in the order it was imported), the queries the imported judgments
name, and those judgments as qrels — an imported positive as 1, an imported negative (a
qrel of score 0) as 0. Mined and generated candidates, and review decisions, are not part of
it: the benchmark stays the one that was imported. (Graded qrels arrive as positives, so a
graded split scores with binary relevance.)

Which split a dataset holds is what its import recorded (``ImportJob.stats["split"]``); a
dataset that also took in a training split is not offered (its queries would be mixed).

A snapshot frozen with queries held out (``curation/datasets/held_out.py``) is a task too,
``heldout:<snapshot id>``: those queries, their relevant passages as written at freezing
time, and the whole corpus of the dataset.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from django.conf import settings
from django.db.models import Exists, OuterRef

from core.ml.beir import BeirSplit
from curation.datasets.selectors import dataset_import_splits, evaluation_split_of
from curation.models import (
    Candidate,
    CandidateOrigin,
    CandidateRole,
    Dataset,
    Passage,
    Snapshot,
)

DATASET_PREFIX = "dataset:"
HELD_OUT_PREFIX = "heldout:"


def dataset_task_rows() -> list[dict]:
    """The datasets on offer: ``{"spec", "name", "split", "queries", "passages"}``, by name."""
    offered = {
        dataset_id: split
        for dataset_id, found in dataset_import_splits().items()
        if (split := evaluation_split_of(found)) is not None
    }
    datasets = Dataset.objects.filter(pk__in=offered).select_related("corpus").order_by("name")
    return [
        {
            "spec": f"{DATASET_PREFIX}{d.pk}",
            "name": d.name,
            "split": offered[d.pk],
            "queries": d.query_count,
            "passages": d.corpus.passage_count,
        }
        for d in datasets
    ]


def dataset_task_names(specs) -> dict[str, str]:
    """{``dataset:<id>``: the dataset's name} for the specs that name a dataset still there."""
    ids = {
        int(s[len(DATASET_PREFIX) :])
        for s in specs
        if str(s).startswith(DATASET_PREFIX) and s[len(DATASET_PREFIX) :].isdigit()
    }
    names = Dataset.objects.filter(pk__in=ids).values_list("pk", "name")
    return {f"{DATASET_PREFIX}{pk}": name for pk, name in names}


def dataset_split_read(*, dataset_id: int) -> tuple[BeirSplit, str]:
    """The task's data and its revision (a digest of every text and judgment it holds, so a
    changed dataset is a new revision in mteb's results)."""
    dataset = Dataset.objects.get(pk=dataset_id)
    digest = hashlib.blake2b(digest_size=16)
    qrels: dict[str, dict[str, int]] = {}
    judged = (
        Candidate.objects.filter(query__dataset=dataset, origin=CandidateOrigin.ORIGINAL)
        .order_by("pk")
        .values_list("query__query_id", "passage__doc_id", "role")
    )
    for query_id, doc_id, role in judged.iterator(chunk_size=10_000):
        qrels.setdefault(query_id, {})[doc_id] = 1 if role == CandidateRole.POSITIVE else 0
        digest.update(f"q\0{query_id}\0{doc_id}\0{role}\n".encode())
    imported = Candidate.objects.filter(query=OuterRef("pk"), origin=CandidateOrigin.ORIGINAL)
    texts = dataset.queries.filter(Exists(imported)).order_by("pk").values_list("query_id", "text")
    queries = dict(texts.iterator(chunk_size=10_000))
    for query_id, text in queries.items():
        digest.update(f"t\0{query_id}\0{text}\n".encode())
    corpus = _corpus_read(corpus_id=dataset.corpus_id, digest=digest)
    return BeirSplit(corpus=corpus, queries=queries, qrels=qrels), digest.hexdigest()


def _corpus_read(*, corpus_id: int, digest) -> dict[str, tuple[str, str]]:
    """Every passage of the corpus, in import order, fed to ``digest`` as it is read."""
    corpus: dict[str, tuple[str, str]] = {}
    passages = (
        Passage.objects.filter(corpus_id=corpus_id)
        .order_by("pk")
        .values_list("doc_id", "title", "text_hash", "text")
    )
    for doc_id, title, text_hash, text in passages.iterator(chunk_size=10_000):
        corpus[doc_id] = (title, text)
        digest.update(f"d\0{doc_id}\0{text_hash}\n".encode())
    return corpus


# --- queries held out of a snapshot (curation/datasets/held_out.py) ---------------------------


def held_out_task_rows() -> list[dict]:
    """The snapshots that held queries out: ``{"spec", "name", "split", "queries",
    "passages"}``, newest first."""
    snapshots = (
        Snapshot.objects.filter(manifest__has_key="held_out")
        .select_related("dataset__corpus")
        .order_by("-id")
    )
    return [
        {
            "spec": f"{HELD_OUT_PREFIX}{s.pk}",
            "name": f"{s.dataset.name}: queries held out of snapshot #{s.pk}",
            "split": "test",
            "queries": s.manifest["held_out"]["queries"],
            "passages": s.dataset.corpus.passage_count,
        }
        for s in snapshots
    ]


def held_out_split_read(*, snapshot_id: int) -> tuple[BeirSplit, str]:
    """The held-out queries of a snapshot, their relevant passages as qrels, and the whole
    corpus of its dataset; the revision covers the held-out file and every passage."""
    from curation.datasets.held_out import held_out_read

    snapshot = Snapshot.objects.select_related("dataset").get(pk=snapshot_id)
    held = snapshot.manifest["held_out"]
    path = Path(settings.SIEVE_SNAPSHOT_DIR) / held["file_path"]
    if not path.is_file():
        raise FileNotFoundError(f"the held-out file of snapshot #{snapshot_id} is missing ({path})")
    queries, qrels = held_out_read(path)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"heldout\0{held['sha256']}\n".encode())
    corpus = _corpus_read(corpus_id=snapshot.dataset.corpus_id, digest=digest)
    return BeirSplit(corpus=corpus, queries=queries, qrels=qrels), digest.hexdigest()
