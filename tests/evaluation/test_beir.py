"""Local BEIR folders as mteb tasks: reading (header or not, gzip, TREC qrels), clear errors,
and the streamlined subsample."""

import pytest

from evaluation.beir import (
    BeirError,
    beir_folder_open,
    beir_folders_find,
    beir_split_read,
    beir_task_build,
    corpus_subsample,
    folder_revision,
)

from . import write_beir

CORPUS = {
    "d1": ("Bees", "Bees make honey from nectar."),
    "d2": ("", "Tides follow the moon."),
    "d3": ("Wasps", "Wasps build paper nests."),
}
QUERIES = {"q1": "how is honey made", "q2": "what causes tides", "q3": "never judged"}
QRELS = {"q1": {"d1": 1}, "q2": {"d2": 2, "d3": 0}}


@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("gz", [False, True])
def test_a_folder_reads_with_or_without_header_and_gzip(tmp_path, header, gz):
    write_beir(tmp_path / "tiny", corpus=CORPUS, queries=QUERIES, qrels=QRELS, header=header, gz=gz)
    folder = beir_folder_open(tmp_path / "tiny")
    assert folder.spec == "beir:tiny" and folder.splits == ("test",)
    assert folder.corpus.name == ("corpus.jsonl.gz" if gz else "corpus.jsonl")
    data = beir_split_read(folder, "test")
    assert data.qrels == QRELS  # scores kept as given, 0 included (a judged non-relevant)
    assert data.queries == {"q1": QUERIES["q1"], "q2": QUERIES["q2"]}  # only judged queries
    assert data.corpus == CORPUS


def test_trec_style_qrels_with_four_columns(tmp_path):
    write_beir(tmp_path / "trec", corpus=CORPUS, queries=QUERIES, qrels=QRELS)
    (tmp_path / "trec" / "qrels" / "test.tsv").write_text("q1 0 d1 1\nq2 0 d2 1\n")
    data = beir_split_read(beir_folder_open(tmp_path / "trec"), "test")
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}}


def test_unknown_ids_and_bad_lines_are_clear_errors(tmp_path):
    folder_path = write_beir(
        tmp_path / "bad", corpus=CORPUS, queries=QUERIES, qrels={"q1": {"d1": 1, "d9": 1}}
    )
    folder = beir_folder_open(folder_path)
    with pytest.raises(BeirError, match=r"qrels/test\.tsv names 1 corpus id\(s\) .*: d9"):
        beir_split_read(folder, "test")

    write_beir(folder_path, corpus=CORPUS, queries=QUERIES, qrels={"q7": {"d1": 1}})
    with pytest.raises(BeirError, match=r"query id\(s\) that are not in queries.jsonl: q7"):
        beir_split_read(folder, "test")

    with pytest.raises(BeirError, match='has no split "dev"'):
        beir_split_read(folder, "dev")

    (folder_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\tyes\n")
    with pytest.raises(BeirError, match=r'test\.tsv line 2, field "score": "yes" is not a number'):
        beir_split_read(folder, "test")

    (folder_path / "qrels" / "test.tsv").write_text("q1\td1\t1\n")
    (folder_path / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\n{"_id": "d2"}\n')
    with pytest.raises(BeirError, match=r'corpus\.jsonl line 2, field "text": expected a string'):
        beir_split_read(folder, "test")

    (folder_path / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\nnot json\n')
    with pytest.raises(BeirError, match=r"corpus\.jsonl line 2: not valid JSON"):
        beir_split_read(folder, "test")


def test_folders_are_found_under_each_directory(tmp_path):
    write_beir(tmp_path / "a" / "one", corpus=CORPUS, queries=QUERIES, qrels=QRELS)
    write_beir(tmp_path / "b" / "two", corpus=CORPUS, queries=QUERIES, qrels=QRELS, split="dev")
    (tmp_path / "b" / "not-beir").mkdir()
    found = beir_folders_find([tmp_path / "a", tmp_path / "b", tmp_path / "missing"])
    assert [(f.spec, f.splits) for f in found] == [("beir:one", ("test",)), ("beir:two", ("dev",))]


def test_a_symlinked_folder_is_offered_under_the_links_name(tmp_path):
    write_beir(tmp_path / "elsewhere" / "scifact-copy", corpus=CORPUS, queries=QUERIES, qrels=QRELS)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sci").symlink_to(tmp_path / "elsewhere" / "scifact-copy")
    [folder] = beir_folders_find([tmp_path / "data"])
    assert folder.spec == "beir:sci"
    assert folder.path == (tmp_path / "elsewhere" / "scifact-copy").resolve()
    assert folder_revision(folder) and beir_split_read(folder, "test").qrels == QRELS


def test_the_revision_changes_with_the_files(tmp_path):
    folder = beir_folder_open(
        write_beir(tmp_path / "rev", corpus=CORPUS, queries=QUERIES, qrels=QRELS)
    )
    before = folder_revision(folder)
    assert folder_revision(folder) == before
    write_beir(tmp_path / "rev", corpus=CORPUS, queries=QUERIES, qrels={"q1": {"d1": 1}})
    assert folder_revision(folder) != before


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
