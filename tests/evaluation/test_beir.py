"""Local BEIR folders as mteb tasks (read by ``core/ml/beir.py``, tested there) and the
streamlined subsample."""

import pytest

from core.ml.beir import BeirError, beir_folder_open, folder_revision
from evaluation.beir import beir_task_build, corpus_subsample

from . import write_beir

CORPUS = {
    "d1": ("Bees", "Bees make honey from nectar."),
    "d2": ("", "Tides follow the moon."),
    "d3": ("Wasps", "Wasps build paper nests."),
}
QUERIES = {"q1": "how is honey made", "q2": "what causes tides", "q3": "never judged"}
QRELS = {"q1": {"d1": 1}, "q2": {"d2": 2, "d3": 0}}


def test_the_mteb_task_loads_offline_and_joins_title_and_text_as_mteb_does(tmp_path):
    from mteb._create_dataloaders import create_dataloader
    from mteb.types import PromptType

    folder = beir_folder_open(
        write_beir(tmp_path / "tiny", corpus=CORPUS, queries=QUERIES, qrels=QRELS)
    )
    task = beir_task_build(folder)
    assert task.metadata.name == "beir:tiny" and task.metadata.main_score == "ndcg_at_10"
    assert task.metadata.revision == folder_revision(folder)
    task.load_data()
    data = task.dataset["default"]["test"]
    assert data["relevant_docs"] == QRELS
    loader = create_dataloader(
        data["corpus"], task_metadata=task.metadata, prompt_type=PromptType.document
    )
    texts = [text for batch in loader for text in batch["text"]]
    assert texts == ["Bees Bees make honey from nectar.", "Tides follow the moon.",
                     "Wasps Wasps build paper nests."]  # fmt: skip
    with pytest.raises(BeirError, match='has no split "dev"'):
        beir_task_build(folder, splits=["dev"])


def test_the_subsample_keeps_every_judged_document_and_is_seeded():
    ids = [f"d{i}" for i in range(1000)]
    judged = {"d3", "d500", "d999"}
    kept = corpus_subsample(ids, judged=judged, sample=50, seed=7)
    assert judged <= set(kept) and len(kept) == 53
    assert kept == [d for d in ids if d in set(kept)]  # original order
    assert corpus_subsample(ids, judged=judged, sample=50, seed=7) == kept
    # The file's order does not decide which documents are kept; the seed does.
    assert set(corpus_subsample(list(reversed(ids)), judged=judged, sample=50, seed=7)) == set(kept)
    other = corpus_subsample(ids, judged=judged, sample=50, seed=8)
    assert judged <= set(other) and set(other) != set(kept)
    # A sample larger than the rest keeps everything.
    assert corpus_subsample(ids, judged=judged, sample=5000, seed=7) == ids
    assert corpus_subsample(ids, judged=judged, sample=0, seed=7) == ["d3", "d500", "d999"]
