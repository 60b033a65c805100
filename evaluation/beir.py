"""Local BEIR folders as mteb retrieval tasks, offline. No Django; mteb and datasets are
imported only when a task is built. The folder is read by ``core/ml/beir.py`` (the grammar
the importer uses too).

The task is an ``AbsTaskRetrieval`` subclass whose ``load_data`` fills mteb's own data layout
(``dataset["default"][split] = {corpus, queries, relevant_docs, top_ranked}``) from the files,
so mteb evaluates it exactly like a registry task and never reaches the hub. A document is
``title + " " + text`` as mteb joins them (mteb does the joining itself).

``corpus_subsample`` is the "streamlined" selection (Linq-Embed-Mistral's idea): every judged
document plus a seeded sample of the rest.
"""

from __future__ import annotations

import hashlib

from core.ml.beir import BeirFolder, beir_split_read, folder_revision, split_missing_error

# mteb wants a language; a local folder does not say which it is. Scores do not depend on it.
DEFAULT_LANGUAGES = ["eng-Latn"]


# --- streamlined subsample ----------------------------------------------------------------


def corpus_subsample(doc_ids, *, judged: set[str], sample: int, seed: int) -> list[str]:
    """The documents a streamlined evaluation keeps, in their original order: every judged one
    plus ``sample`` of the others. Which others is decided by a seeded hash of each id, not by
    the file's order, so the same seed keeps the same documents however the corpus is stored."""
    doc_ids = list(doc_ids)
    others = [d for d in doc_ids if d not in judged]
    if sample >= len(others):
        return doc_ids
    ranked = sorted(
        others,
        key=lambda d: hashlib.blake2b(f"{seed}\0{d}".encode(), digest_size=8).digest(),
    )
    keep = judged | set(ranked[: max(sample, 0)])
    return [d for d in doc_ids if d in keep]


# --- the mteb task ------------------------------------------------------------------------


def beir_task_build(folder: BeirFolder, *, splits: list[str] | None = None):
    """An mteb ``AbsTaskRetrieval`` for ``folder`` (evaluated on ``splits``, default: all).
    Its name is the spec, ``beir:<folder name>``; its dataset revision a digest of the files."""
    splits = list(splits or folder.splits)
    for split in splits:
        if split not in folder.splits:
            raise split_missing_error(folder, split)
    return retrieval_task_build(
        name=folder.spec,
        path=str(folder.path),
        revision=folder_revision(folder),
        description=f"Local BEIR folder {folder.path}",
        splits=splits,
        read=lambda split: beir_split_read(folder, split),
    )


def retrieval_task_build(
    *, name: str, path: str, revision: str, description: str, splits: list[str], read
):
    """An mteb ``AbsTaskRetrieval`` named ``name`` whose ``load_data`` fills mteb's layout
    with ``read(split)`` (a ``BeirSplit``) for each split: a local folder or a Sieve dataset
    evaluates as mteb evaluates a registry task, with no hub."""
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.task_metadata import TaskMetadata

    metadata = TaskMetadata(
        name=name,
        dataset={"path": path, "revision": revision},
        description=description,
        type="Retrieval",
        category="t2t",
        modalities=["text"],
        eval_splits=list(splits),
        eval_langs=DEFAULT_LANGUAGES,
        main_score="ndcg_at_10",
    )

    class LocalBeirRetrieval(AbsTaskRetrieval):
        def load_data(self, num_proc=None, **kwargs) -> None:
            if self.data_loaded:
                return
            from datasets import Dataset

            self.dataset = {"default": {}}
            for split in self.eval_splits:
                data = read(split)
                corpus_ids = list(data.corpus)
                corpus = Dataset.from_dict(
                    {
                        "id": corpus_ids,
                        "title": [data.corpus[d][0] for d in corpus_ids],
                        "text": [data.corpus[d][1] for d in corpus_ids],
                    }
                )
                queries = Dataset.from_dict(
                    {"id": list(data.queries), "text": list(data.queries.values())}
                )
                self.dataset["default"][split] = {
                    "corpus": corpus,
                    "queries": queries,
                    "relevant_docs": data.qrels,
                    "top_ranked": None,
                }
            self.data_loaded = True

    LocalBeirRetrieval.__name__ = LocalBeirRetrieval.__qualname__ = "LocalBeirRetrieval"
    LocalBeirRetrieval.metadata = metadata
    return LocalBeirRetrieval()
