"""The encodings and formats users actually have: Excel's byte-order mark, .tsv uploads,
Tevatron as parquet; and values no training file should hold (NaN scores, JSON nested
without end, empty texts), refused with file, line and field and nothing written."""

import json

import pytest

from core.errors import ApplicationError
from core.ml.beir import read_corpus
from curation.datasets.imports import dataset_import
from curation.models import Candidate, Corpus, Dataset, Passage, Query

pytestmark = pytest.mark.django_db

BOM = "\ufeff"


def table_counts() -> dict:
    models = (Corpus, Dataset, Passage, Query, Candidate)
    return {model.__name__: model.objects.count() for model in models}


def import_error(**kwargs) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        dataset_import(**kwargs)
    assert set(table_counts().values()) == {0}
    return caught.value


def counts(dataset) -> tuple[int, int, int]:
    return dataset.query_count, dataset.positive_count, dataset.negative_count


# --- a UTF-8 byte-order mark (Excel's "CSV UTF-8") ----------------------------------------


def test_a_csv_with_a_byte_order_mark_imports(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text(f"{BOM}anchor,positive,negative\nq1,p1,n1\nq2,p2,\n", encoding="utf-8")
    dataset = dataset_import(source=path, dataset_name="excel").dataset
    assert counts(dataset) == (2, 2, 1)
    assert Query.objects.filter(text="q1").exists()


@pytest.mark.parametrize("format", [None, "bge"])
def test_a_jsonl_with_a_byte_order_mark_imports(tmp_path, format):
    path = tmp_path / "train.jsonl"
    records = [{"query": "q1", "pos": ["p1"], "neg": ["n1"]}, {"query": "q2", "pos": ["p2"]}]
    path.write_text(BOM + "".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    dataset = dataset_import(source=path, dataset_name="bom", format=format).dataset
    assert counts(dataset) == (2, 2, 1) and dataset.format == "bge"


def test_a_beir_corpus_with_a_byte_order_mark_reads_for_evaluation_too(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text(BOM + json.dumps({"_id": "d1", "text": "one"}) + "\n", encoding="utf-8")
    assert read_corpus(path) == {"d1": ("", "one")}


# --- Tevatron as parquet (how the hub serves RLHN) -----------------------------------------


def write_parquet(path, records):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(records), path)
    return path


@pytest.mark.parametrize("format", [None, "tevatron"])
def test_tevatron_parquet_imports_like_its_jsonl(shared_data, tmp_path, format):
    source = shared_data / "rlhn" / "msmarco_passage.stage_1.gpt-4o-mini.jsonl"
    records = [json.loads(line) for line in source.read_text().splitlines()]
    parquet = write_parquet(tmp_path / "train-00000-of-00001.parquet", records)
    from_jsonl = dataset_import(source=source, dataset_name="jsonl", corpus_name="jsonl")
    from_parquet = dataset_import(
        source=parquet, dataset_name="parquet", corpus_name="parquet", format=format
    )
    assert from_parquet.dataset.format == "tevatron"
    assert counts(from_parquet.dataset) == counts(from_jsonl.dataset)
    assert from_parquet.dataset.corpus.passage_count == from_jsonl.dataset.corpus.passage_count
    assert sorted(Passage.objects.filter(corpus__name="parquet").values_list("doc_id", "text")) == (
        sorted(Passage.objects.filter(corpus__name="jsonl").values_list("doc_id", "text"))
    )


def test_a_bad_tevatron_parquet_row_is_named(tmp_path):
    passage = {"docid": "d1", "title": "", "text": "one"}
    records = [
        {"query_id": "q1", "query": "first", "positive_passages": [passage]},
        {"query_id": "q2", "query": None, "positive_passages": [passage]},
    ]
    path = write_parquet(tmp_path / "train.parquet", records)
    error = import_error(source=path, dataset_name="bad")
    assert error.message.startswith('train.parquet row 2, field "query": expected a string')
    assert error.detail == {"file": "train.parquet", "line": 2, "field": "query"}


# --- NaN and Infinity ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_a_bge_score_that_is_not_finite_is_refused(tmp_path, value):
    path = tmp_path / "train.jsonl"
    good = '{"query": "q1", "pos": ["p1"], "neg": ["n1", "n2"], "neg_scores": [0.5, 0.2]}'
    bad = f'{{"query": "q2", "pos": ["p2"], "neg": ["n1", "n2"], "neg_scores": [0.5, {value}]}}'
    path.write_text(f"{good}\n{bad}\n")
    error = import_error(source=path, dataset_name="nan")
    assert error.detail == {"file": "train.jsonl", "line": 2, "field": "neg_scores[1]"}
    assert "expected a finite number" in error.message


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity"])
def test_a_qrels_score_that_is_not_finite_is_refused(tmp_path, value):
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        '{"_id": "d1", "text": "one"}\n{"_id": "d2", "text": "two"}\n'
    )
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "first"}\n')
    (folder / "qrels" / "test.tsv").write_text(f"q1\td1\t1\nq1\td2\t{value}\n")
    error = import_error(source=folder, dataset_name="nan")
    assert error.detail == {"file": "qrels/test.tsv", "line": 2, "field": "score"}
    assert f'expected a finite number, got "{value}"' in error.message


# --- JSON nested without end --------------------------------------------------------------


def test_deeply_nested_json_is_refused_with_its_line(tmp_path):
    path = tmp_path / "train.jsonl"
    deep = '{"query": "q2", "pos": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path.write_text('{"query": "q1", "pos": ["p1"]}\n' + deep + "\n")
    error = import_error(source=path, dataset_name="deep", format="bge")
    assert error.message.startswith("train.jsonl line 2: the JSON is nested too deeply")


def test_deeply_nested_first_record_is_refused_when_detecting_the_format(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    error = import_error(source=path, dataset_name="deep")
    assert error.message.startswith("train.jsonl line 1: the JSON is nested too deeply")


def test_the_command_reports_deep_json_without_a_traceback(tmp_path):
    from django.core.management import CommandError, call_command

    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "d1", "text": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    with pytest.raises(CommandError, match="line 1: the JSON is nested too deeply"):
        call_command("import_dataset", str(path), "--name", "deep", "--format", "bge")


# --- empty texts: refused in training data, reported in a BEIR corpus ---------------------


def write_lines(path, *lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.mark.parametrize(
    ("name", "lines", "format", "line", "field"),
    [
        (
            "bge.jsonl",
            ['{"query": "q", "pos": ["p"]}', '{"query": " ", "pos": ["p"]}'],
            "bge",
            2,
            "query",
        ),
        ("bge.jsonl", ['{"query": "q", "pos": ["p"], "neg": ["n", ""]}'], "bge", 1, "neg[1]"),
        ("st.csv", ["anchor,positive", "q,p", '"",p'], None, 3, "anchor"),
        ("st.csv", ["anchor,positive,negative", "q,p,n", "q2,  ,n"], None, 3, "positive"),
        (
            "tev.jsonl",
            ['{"query_id": "1", "query": "q", "positive_passages": [{"docid": "d", "text": " "}]}'],
            None,
            1,
            "positive_passages[0].text",
        ),
        (
            "tev.jsonl",
            ['{"query_id": "1", "query": "", "positive_passages": []}'],
            None,
            1,
            "query",
        ),
    ],
    ids=[
        "bge-query",
        "bge-negative",
        "st-anchor",
        "st-positive",
        "tevatron-passage",
        "tevatron-query",
    ],
)
def test_an_empty_query_or_training_passage_is_refused(tmp_path, name, lines, format, line, field):
    path = write_lines(tmp_path / name, *lines)
    error = import_error(source=path, dataset_name="empty", format=format)
    assert error.detail == {"file": name, "line": line, "field": field}
    assert error.message.endswith("the text is empty")


def test_a_blank_sentence_transformers_negative_cell_is_a_shorter_tuple(tmp_path):
    path = write_lines(tmp_path / "st.csv", "anchor,positive,negative_1,negative_2", "q,p,n1, ")
    dataset = dataset_import(source=path, dataset_name="short").dataset
    assert counts(dataset) == (1, 1, 1)


def test_a_tevatron_passage_with_a_title_and_no_text_is_kept(tmp_path):
    passage = '{"docid": "d", "title": "Only a title", "text": ""}'
    path = write_lines(
        tmp_path / "tev.jsonl",
        f'{{"query_id": "1", "query": "q", "positive_passages": [{passage}]}}',
    )
    assert counts(dataset_import(source=path, dataset_name="title").dataset) == (1, 1, 0)


def beir_folder(folder, corpus_lines, queries_lines):
    (folder / "qrels").mkdir(parents=True)
    write_lines(folder / "corpus.jsonl", *corpus_lines)
    write_lines(folder / "queries.jsonl", *queries_lines)
    write_lines(folder / "qrels" / "test.tsv", "q1\td1\t1", "q1\td2\t1")
    return folder


def test_an_empty_beir_document_is_kept_and_reported(tmp_path):
    folder = beir_folder(
        tmp_path / "b",
        ['{"_id": "d1", "text": "one"}', '{"_id": "d2", "title": "", "text": " "}'],
        ['{"_id": "q1", "text": "first"}'],
    )
    result = dataset_import(source=folder, dataset_name="b")
    assert counts(result.dataset) == (1, 2, 0)
    assert result.stats["empty_documents"] == 1
    assert result.stats["first_empty_document"] == "corpus.jsonl line 2"


def test_an_empty_beir_query_is_refused(tmp_path):
    folder = beir_folder(
        tmp_path / "b",
        ['{"_id": "d1", "text": "one"}', '{"_id": "d2", "text": "two"}'],
        ['{"_id": "q1", "text": ""}'],
    )
    error = import_error(source=folder, dataset_name="b")
    assert error.detail == {"file": "queries.jsonl", "line": 1, "field": "text"}


def test_the_command_warns_about_empty_beir_documents(tmp_path):
    from io import StringIO

    from django.core.management import call_command

    folder = beir_folder(
        tmp_path / "b",
        ['{"_id": "d1", "text": "one"}', '{"_id": "d2", "text": ""}'],
        ['{"_id": "q1", "text": "first"}'],
    )
    out = StringIO()
    call_command("import_dataset", str(folder), "--name", "b", stdout=out, stderr=StringIO())
    assert "1 corpus documents have no title and no text (the first at corpus.jsonl line 2)" in (
        out.getvalue()
    )
