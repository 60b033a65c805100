"""The one BEIR reader: corpus, queries and qrels with or without a header, gzip, TREC's four
columns, tabs or spaces; every bad line an error naming file, line and field; folders found
and fingerprinted."""

import gzip
import json

import pytest

from core.ml.beir import (
    BeirError,
    beir_folder_open,
    beir_folders_find,
    beir_split_read,
    folder_revision,
    qrel_records,
)

CORPUS = {
    "d1": ("Bees", "Bees make honey from nectar."),
    "d2": ("", "Tides follow the moon."),
    "d3": ("Wasps", "Wasps build paper nests."),
}
QUERIES = {"q1": "how is honey made", "q2": "what causes tides", "q3": "never judged"}
QRELS = {"q1": {"d1": 1}, "q2": {"d2": 2, "d3": 0}}


def write_beir(folder, *, qrels=QRELS, split="test", header=True, gz=False):
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"_id": d, "title": t, "text": x}) + "\n" for d, (t, x) in CORPUS.items()]
    if gz:
        with gzip.open(folder / "corpus.jsonl.gz", "wt", encoding="utf-8") as f:
            f.writelines(lines)
    else:
        (folder / "corpus.jsonl").write_text("".join(lines), encoding="utf-8")
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items())
    )
    rows = [f"{q}\t{d}\t{s}\n" for q, docs in qrels.items() for d, s in docs.items()]
    (folder / "qrels" / f"{split}.tsv").write_text(
        ("query-id\tcorpus-id\tscore\n" if header else "") + "".join(rows)
    )
    return folder


def qrels_of(text: str) -> list[tuple]:
    lines = enumerate(text.splitlines(keepends=True), start=1)
    return [tuple(q) for q in qrel_records(lines, file="qrels/test.tsv")]


@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("gz", [False, True])
def test_a_folder_reads_with_or_without_header_and_gzip(tmp_path, header, gz):
    write_beir(tmp_path / "tiny", header=header, gz=gz)
    folder = beir_folder_open(tmp_path / "tiny")
    assert folder.spec == "beir:tiny" and folder.splits == ("test",)
    assert folder.corpus.name == ("corpus.jsonl.gz" if gz else "corpus.jsonl")
    data = beir_split_read(folder, "test")
    assert data.qrels == QRELS  # scores kept as given, 0 included (a judged non-relevant)
    assert data.queries == {"q1": QUERIES["q1"], "q2": QUERIES["q2"]}  # only judged queries
    assert data.corpus == CORPUS


@pytest.mark.parametrize(
    "text",
    [
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t0\n",  # BEIR, header
        "q1\td1\t1\nq2\td2\t0\n",  # BEIR, no header
        "q1 d1 1\nq2  d2  0\n",  # spaces
        "q1 0 d1 1\nq2 Q0 d2 0\n",  # TREC, spaces
        "q1\t0\td1\t1\r\n\nq2\tQ0\td2\t0\r\n",  # TREC, tabs, CRLF, a blank line
        "query-id iteration corpus-id score\nq1 0 d1 1\nq2 0 d2 0\n",  # TREC with a header
    ],
)
def test_qrels_grammar_tabs_or_spaces_three_or_four_columns(text):
    assert [(q, d, s) for _, q, d, s in qrels_of(text)] == [("q1", "d1", 1), ("q2", "d2", 0)]


def test_qrels_ids_with_spaces_need_tabs_and_scores_may_be_fractions():
    assert qrels_of("q 1\td 1\t0.5\n") == [(1, "q 1", "d 1", 0.5)]


@pytest.mark.parametrize(
    "text, message",
    [
        ("q1\td1\t1\nq1\td2\tyes\n", 'qrels/test.tsv line 2, field "score": expected a number'),
        ("q1\td1\n", "qrels/test.tsv line 1: expected 3 columns .* got 2"),
        ("q1 0 d1 1 extra\n", "qrels/test.tsv line 1: expected 3 columns .* got 5"),
        ("q1\t\t1\n", 'qrels/test.tsv line 1, field "corpus-id": the id is empty'),
        ("q1\td1\t1\nquery-id\tcorpus-id\tscore\n", 'line 2, field "score"'),  # header not first
    ],
)
def test_bad_qrels_lines_name_file_line_and_field(text, message):
    with pytest.raises(BeirError, match=message):
        qrels_of(text)


def test_trec_style_qrels_with_four_columns(tmp_path):
    write_beir(tmp_path / "trec")
    (tmp_path / "trec" / "qrels" / "test.tsv").write_text("q1 0 d1 1\nq2 0 d2 1\n")
    data = beir_split_read(beir_folder_open(tmp_path / "trec"), "test")
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}}


def test_unknown_ids_and_bad_lines_are_clear_errors(tmp_path):
    folder_path = write_beir(tmp_path / "bad", qrels={"q1": {"d1": 1, "d9": 1}})
    folder = beir_folder_open(folder_path)
    with pytest.raises(BeirError, match=r"qrels/test\.tsv names 1 corpus id\(s\) .*: d9"):
        beir_split_read(folder, "test")

    write_beir(folder_path, qrels={"q7": {"d1": 1}})
    with pytest.raises(BeirError, match=r"query id\(s\) that are not in queries.jsonl: q7"):
        beir_split_read(folder, "test")

    with pytest.raises(BeirError, match='has no split "dev"'):
        beir_split_read(folder, "dev")

    (folder_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\tyes\n")
    with pytest.raises(BeirError, match=r'test\.tsv line 2, field "score": expected a number'):
        beir_split_read(folder, "test")

    (folder_path / "qrels" / "test.tsv").write_text("q1\td1\t0.5\n")
    with pytest.raises(BeirError, match=r'line 1, field "score": expected a whole number'):
        beir_split_read(folder, "test")  # evaluation scores graded relevance in whole numbers

    (folder_path / "qrels" / "test.tsv").write_text("q1\td1\t1\n")
    (folder_path / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\n{"_id": "d2"}\n')
    with pytest.raises(
        BeirError, match=r'corpus\.jsonl line 2, field "text": the field is missing'
    ):
        beir_split_read(folder, "test")

    (folder_path / "corpus.jsonl").write_text('{"_id": "d1", "text": 7}\n')
    with pytest.raises(BeirError, match=r'line 1, field "text": expected a string, got int'):
        beir_split_read(folder, "test")

    (folder_path / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\nnot json\n')
    with pytest.raises(BeirError, match=r"corpus\.jsonl line 2: invalid JSON"):
        beir_split_read(folder, "test")

    (folder_path / "corpus.jsonl").write_text(
        '{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n'
    )
    with pytest.raises(BeirError, match=r'corpus\.jsonl line 2, field "_id": "d1" appears twice'):
        beir_split_read(folder, "test")


def test_folders_are_found_under_each_directory(tmp_path):
    write_beir(tmp_path / "a" / "one")
    write_beir(tmp_path / "b" / "two", split="dev")
    (tmp_path / "b" / "not-beir").mkdir()
    found = beir_folders_find([tmp_path / "a", tmp_path / "b", tmp_path / "missing"])
    assert [(f.spec, f.splits) for f in found] == [("beir:one", ("test",)), ("beir:two", ("dev",))]


def test_a_symlinked_folder_is_offered_under_the_links_name(tmp_path):
    write_beir(tmp_path / "elsewhere" / "scifact-copy")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sci").symlink_to(tmp_path / "elsewhere" / "scifact-copy")
    [folder] = beir_folders_find([tmp_path / "data"])
    assert folder.spec == "beir:sci"
    assert folder.path == (tmp_path / "elsewhere" / "scifact-copy").resolve()
    assert folder_revision(folder) and beir_split_read(folder, "test").qrels == QRELS


def test_the_revision_changes_with_the_files(tmp_path):
    folder = beir_folder_open(write_beir(tmp_path / "rev"))
    before = folder_revision(folder)
    assert folder_revision(folder) == before
    write_beir(tmp_path / "rev", qrels={"q1": {"d1": 1}})
    assert folder_revision(folder) != before
