"""dataset_import against the real database: counts from real files, all-or-nothing on
every malformed input, idempotent re-imports, passages shared within a corpus."""

import csv
import gzip
import json
import zipfile

import pytest

from core.errors import ApplicationError
from curation.datasets.formats import text_id
from curation.datasets.imports import dataset_import
from curation.models import Candidate, Corpus, Dataset, Passage, Query

pytestmark = pytest.mark.django_db

MODELS = (Corpus, Dataset, Passage, Query, Candidate)


def table_counts() -> dict:
    return {model.__name__: model.objects.count() for model in MODELS}


def snapshot_rows() -> dict:
    """Every imported row, to show that a failed import changed nothing at all."""
    return {
        "corpora": list(Corpus.objects.values_list("name", "passage_count").order_by("name")),
        "datasets": list(
            Dataset.objects.values_list(
                "name", "query_count", "positive_count", "negative_count"
            ).order_by("name")
        ),
        "passages": sorted(Passage.objects.values_list("corpus__name", "doc_id", "text_hash")),
        "queries": sorted(Query.objects.values_list("dataset__name", "query_id", "text")),
        "candidates": sorted(
            Candidate.objects.values_list(
                "query__query_id", "passage__doc_id", "role", "rank", "teacher_score"
            )
        ),
    }


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def import_error(**kwargs) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        dataset_import(**kwargs)
    return caught.value


# --- real files -------------------------------------------------------------------------


def test_scifact_train_counts(shared_data):
    result = dataset_import(source=shared_data / "beir" / "scifact", dataset_name="scifact")
    dataset = result.dataset
    assert (dataset.query_count, dataset.positive_count, dataset.negative_count) == (809, 919, 0)
    assert dataset.corpus.name == "scifact"
    assert Corpus.objects.get(name="scifact").passage_count == 5183
    assert Passage.objects.filter(corpus=dataset.corpus).count() == 5183
    assert dataset.queries.count() == 809
    assert Candidate.objects.filter(query__dataset=dataset, role="positive").count() == 919
    assert result.stats["queries_without_candidates"] == 300
    assert result.stats["split"] == "train" and dataset.format == "beir"


def test_scifact_test_split(shared_data):
    result = dataset_import(
        source=shared_data / "beir" / "scifact",
        dataset_name="scifact-test",
        options={"split": "test"},
    )
    assert (result.dataset.query_count, result.dataset.positive_count) == (300, 339)


def test_trecdl_sample_with_headerless_qrels(shared_data):
    result = dataset_import(
        source=shared_data / "beir" / "msmarco_trecdl_sample", dataset_name="trec-dl"
    )
    assert (result.dataset.query_count, result.dataset.positive_count) == (43, 4102)
    assert Corpus.objects.get(name="trec-dl").passage_count == 5000


def test_trecdl_min_relevance_two(shared_data):
    result = dataset_import(
        source=shared_data / "beir" / "msmarco_trecdl_sample",
        dataset_name="trec-dl-2",
        options={"min_relevance": 2},
    )
    assert result.dataset.positive_count == 1804 + 697
    assert result.stats["qrels_below_min_relevance"] == 1601


def test_bge_examples_keep_teacher_scores(shared_data):
    path = shared_data / "bge" / "msmarco.jsonl"
    result = dataset_import(source=path, dataset_name="bge-msmarco")
    dataset = result.dataset
    assert (dataset.query_count, dataset.positive_count, dataset.negative_count) == (10, 10, 250)
    assert result.stats["prompt"].startswith("Given a web search query")
    for record in map(json.loads, path.read_text().splitlines()):
        query = Query.objects.get(dataset=dataset, query_id=text_id(record["query"]))
        negatives = list(
            query.candidates.filter(role="negative")
            .order_by("rank")
            .values_list("passage__text", "teacher_score", "rank")
        )
        assert negatives == [
            (text, score, rank)
            for rank, (text, score) in enumerate(
                zip(record["neg"], record["neg_scores"], strict=True), 1
            )
        ]
        positive = query.candidates.get(role="positive")
        assert (positive.passage.text, positive.teacher_score, positive.rank) == (
            record["pos"][0],
            record["pos_scores"][0],
            None,
        )


def test_bge_nq_example(shared_data):
    result = dataset_import(source=shared_data / "bge" / "nq.jsonl", dataset_name="bge-nq")
    dataset = result.dataset
    assert (dataset.query_count, dataset.positive_count) == (10, 10)
    # 989 rows in the file: 2 repeat a pair, 986 distinct passages
    assert dataset.negative_count == 977 and Corpus.objects.get(name="bge-nq").passage_count == 986
    assert result.stats["candidates_not_added"] == 2


def test_rlhn_stage1_as_tevatron(shared_data):
    path = shared_data / "rlhn" / "msmarco_passage.stage_1.gpt-4o-mini.jsonl"
    result = dataset_import(source=path, dataset_name="rlhn")
    dataset = result.dataset
    assert dataset.format == "tevatron"
    assert (dataset.query_count, dataset.positive_count, dataset.negative_count) == (25, 25, 625)
    per_query = {
        query.query_id: query.candidates.filter(role="negative").count()
        for query in dataset.queries.all()
    }
    assert len(per_query) == 25 and set(per_query.values()) == {25}
    first = json.loads(path.read_text().splitlines()[0])
    ranked = list(
        Candidate.objects.filter(query__query_id=first["query_id"], role="negative")
        .order_by("rank")
        .values_list("passage__doc_id", flat=True)
    )
    assert ranked == first["negative_passage_ids"]


# --- idempotent and shared -------------------------------------------------------------


def test_importing_twice_changes_nothing(shared_data):
    path = shared_data / "rlhn" / "msmarco_passage.stage_1.gpt-4o-mini.jsonl"
    dataset_import(source=path, dataset_name="rlhn")
    before = snapshot_rows()
    again = dataset_import(source=path, dataset_name="rlhn")
    assert snapshot_rows() == before
    stats = again.stats
    assert (stats["queries_added"], stats["passages_added"]) == (0, 0)
    assert (stats["positives_added"], stats["negatives_added"]) == (0, 0)
    assert (stats["queries_existing"], stats["passages_existing"]) == (25, 650)


def test_importing_a_beir_folder_twice_changes_nothing(shared_data):
    folder = shared_data / "beir" / "msmarco_trecdl_sample"
    dataset_import(source=folder, dataset_name="trec-dl")
    before = snapshot_rows()
    dataset_import(source=folder, dataset_name="trec-dl")
    assert snapshot_rows() == before


def test_passage_shared_by_two_datasets_in_one_corpus_is_stored_once(tmp_path):
    shared = "a passage both datasets hold"
    first = write_jsonl(tmp_path / "a.jsonl", [{"query": "q1", "pos": [shared], "neg": ["only a"]}])
    second = tmp_path / "b.csv"
    second.write_text(f"anchor,positive,negative\nq2,only b,{shared}\n")
    a = dataset_import(source=first, dataset_name="a", corpus_name="web").dataset
    b = dataset_import(source=second, dataset_name="b", corpus_name="web").dataset
    assert a.corpus_id == b.corpus_id
    (passage,) = Passage.objects.filter(text=shared)
    assert passage.candidates.get(query__dataset=a).role == "positive"
    assert passage.candidates.get(query__dataset=b).role == "negative"
    assert Corpus.objects.get(name="web").passage_count == Passage.objects.count() == 3


def test_existing_dataset_keeps_its_corpus(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"query": "q", "pos": ["p"], "neg": []}])
    dataset_import(source=path, dataset_name="a", corpus_name="web")
    error = import_error(source=path, dataset_name="a", corpus_name="other")
    assert 'dataset "a" already exists over corpus "web", not "other"' in error.message


def test_repeats_stored_once_and_positive_wins(tmp_path):
    path = write_jsonl(
        tmp_path / "train.jsonl",
        [
            {"query": "q", "pos": ["right"], "neg": ["wrong", "right", "wrong"]},
            {"query": "q", "pos": [], "neg": ["wrong"]},
        ],
    )
    result = dataset_import(source=path, dataset_name="d")
    pairs = list(Candidate.objects.order_by("role").values_list("passage__text", "role", "rank"))
    assert pairs == [("wrong", "negative", 1), ("right", "positive", None)]
    assert result.stats["positive_and_negative"] == 1
    assert result.stats["candidate_rows"] == 5 and result.stats["candidates_not_added"] == 3
    assert Passage.objects.count() == 2


def test_sentence_transformers_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "triplets.parquet"
    pq.write_table(
        pa.table(
            {
                "anchor": ["a1", "a2"],
                "positive": ["p1", "p2"],
                "negative_1": ["n1", "n2"],
                "negative_2": ["n2", "n3"],
            }
        ),
        path,
    )
    dataset = dataset_import(source=path, dataset_name="st").dataset
    assert dataset.format == "sentence_transformers"
    assert (dataset.query_count, dataset.positive_count, dataset.negative_count) == (2, 2, 4)
    assert Corpus.objects.get(name="st").passage_count == 5
    ranks = list(
        Candidate.objects.filter(query__text="a1", role="negative")
        .order_by("rank")
        .values_list("passage__text", "rank")
    )
    assert ranks == [("n1", 1), ("n2", 2)]


def test_sentence_transformers_csv(tmp_path):
    path = tmp_path / "triplets.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["anchor", "positive", "negative"])
        writer.writerow(["a1", "p1, with a comma", "n1"])
        writer.writerow(["a2", "p2", "n1"])
    dataset = dataset_import(source=path, dataset_name="st").dataset
    assert (dataset.query_count, dataset.positive_count, dataset.negative_count) == (2, 2, 2)
    assert Passage.objects.filter(text="p1, with a comma").exists()
    assert Corpus.objects.get(name="st").passage_count == 3


def test_tevatron_gz(shared_data, tmp_path):
    source = shared_data / "rlhn" / "msmarco_passage.stage_2.gpt-4o.jsonl"
    packed = tmp_path / "stage2.jsonl.gz"
    packed.write_bytes(gzip.compress(source.read_bytes()))
    dataset = dataset_import(source=packed, dataset_name="rlhn-2").dataset
    assert (dataset.query_count, dataset.positive_count, dataset.negative_count) == (19, 19, 475)


def make_beir(folder, *, corpus=None, queries=None, qrels="q1\td1\t1\nq1\td2\t0\n"):
    (folder / "qrels").mkdir(parents=True)
    write_jsonl(
        folder / "corpus.jsonl",
        corpus or [{"_id": "d1", "title": "", "text": "one"}, {"_id": "d2", "text": "two"}],
    )
    write_jsonl(folder / "queries.jsonl", queries or [{"_id": "q1", "text": "first"}])
    (folder / "qrels" / "train.tsv").write_text(qrels)
    return folder


def test_zip_of_a_beir_folder(tmp_path):
    folder = make_beir(tmp_path / "mini" / "mini")
    archive = tmp_path / "upload-3f2a"
    with zipfile.ZipFile(archive, "w") as packed:
        for path in folder.rglob("*"):
            packed.write(path, path.relative_to(tmp_path / "mini"))
    result = dataset_import(source=archive, dataset_name="mini", source_name="mini.zip")
    dataset = result.dataset
    assert (dataset.query_count, dataset.positive_count, dataset.negative_count) == (1, 1, 1)
    assert dataset.source == "mini.zip"


@pytest.mark.parametrize(
    "qrels",
    ["q1 0 d1 1\nq1 Q0 d2 0\n", "q1\td1\t1\nq1\td2\t0\n"],
    ids=["trec-4-columns-spaces", "3-columns-no-header"],
)
def test_a_beir_folder_with_trec_or_headerless_qrels_imports(tmp_path, qrels):
    dataset = dataset_import(
        source=make_beir(tmp_path / "b", qrels=qrels), dataset_name="b"
    ).dataset
    assert (dataset.query_count, dataset.positive_count, dataset.negative_count) == (1, 1, 1)
    assert dataset.format == "beir"


def test_zip_without_a_beir_folder(tmp_path):
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w") as packed:
        packed.writestr("readme.txt", "hello")
    error = import_error(source=archive, dataset_name="x")
    assert error.message.startswith("x.zip: the .zip holds no BEIR folder")
    assert table_counts() == dict.fromkeys(table_counts(), 0)


# --- malformed inputs: a clear error naming file, line and field, and no rows -----------

EMPTY = {"Corpus": 0, "Dataset": 0, "Passage": 0, "Query": 0, "Candidate": 0}
GOOD = {"query": "q", "pos": ["p"], "neg": ["n1", "n2"]}


def assert_clean_failure(error: ApplicationError, *, file: str, line: int, field: str | None):
    assert error.detail == {"file": file, "line": line, "field": field}
    assert error.message.startswith(f"{file} line {line}")
    if field:
        assert f'field "{field}"' in error.message
    assert table_counts() == EMPTY


def test_truncated_json_leaves_no_rows(tmp_path):
    path = tmp_path / "train.jsonl"
    lines = [json.dumps(GOOD)] * 3
    path.write_text("\n".join(lines) + "\n" + lines[0][:25] + "\n")
    error = import_error(source=path, dataset_name="d", format="bge")
    assert_clean_failure(error, file="train.jsonl", line=4, field=None)
    assert "invalid JSON" in error.message


def test_wrong_type_leaves_no_rows(tmp_path):
    path = write_jsonl(
        tmp_path / "train.jsonl", [GOOD, GOOD, {"query": "q", "pos": ["p"], "neg": 17}]
    )
    error = import_error(source=path, dataset_name="d")
    assert error.message == 'train.jsonl line 3, field "neg": expected a list of strings, got int'
    assert_clean_failure(error, file="train.jsonl", line=3, field="neg")


def test_missing_field_leaves_no_rows(tmp_path):
    record = {"query_id": "1", "query": "q", "positive_passages": [{"docid": "d", "text": "t"}]}
    path = write_jsonl(tmp_path / "tev.jsonl", [record, {"query": "q2", "positive_passages": []}])
    error = import_error(source=path, dataset_name="d", format="tevatron")
    assert error.message == 'tev.jsonl line 2, field "query_id": the field is missing'
    assert_clean_failure(error, file="tev.jsonl", line=2, field="query_id")


def test_non_utf8_bytes_leave_no_rows(tmp_path):
    path = tmp_path / "train.jsonl"
    good = json.dumps(GOOD).encode()
    path.write_bytes(good + b"\n" + b'{"query": "\xff", "pos": []}\n')
    error = import_error(source=path, dataset_name="d", format="bge")
    assert "not valid UTF-8" in error.message
    assert_clean_failure(error, file="train.jsonl", line=2, field=None)


def test_empty_file_leaves_no_rows(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("")
    error = import_error(source=path, dataset_name="d", format="bge")
    assert error.message == "train.jsonl: the file is empty (no records)"
    assert table_counts() == EMPTY


def test_same_docid_with_different_text_names_both_lines(tmp_path):
    def record(query_id, text):
        return {
            "query_id": query_id,
            "query": f"query {query_id}",
            "positive_passages": [{"docid": "p1", "title": "", "text": "shared positive"}],
            "negative_passages": [{"docid": "n1", "title": "", "text": text}],
        }

    path = write_jsonl(
        tmp_path / "tev.jsonl", [record("1", "first text"), record("2", "second text")]
    )
    error = import_error(source=path, dataset_name="d")
    assert error.message == (
        'tev.jsonl line 2, field "negative_passages[0]": passage "n1" has a different title '
        "or text than at tev.jsonl line 1"
    )
    assert_clean_failure(error, file="tev.jsonl", line=2, field="negative_passages[0]")


def test_same_query_id_with_different_text(tmp_path):
    folder = make_beir(
        tmp_path / "b", queries=[{"_id": "q1", "text": "first"}, {"_id": "q1", "text": "other"}]
    )
    error = import_error(source=folder, dataset_name="d")
    assert error.message == (
        'queries.jsonl line 2, field "text": query "q1" has a different text than at '
        "queries.jsonl line 1"
    )
    assert_clean_failure(error, file="queries.jsonl", line=2, field="text")


def test_changed_text_against_the_stored_corpus_changes_nothing(tmp_path):
    dataset_import(source=make_beir(tmp_path / "v1"), dataset_name="v1", corpus_name="shared")
    before = snapshot_rows()
    changed = make_beir(
        tmp_path / "v2",
        corpus=[{"_id": "d1", "text": "one"}, {"_id": "d2", "text": "two, edited"}],
    )
    error = import_error(source=changed, dataset_name="v2", corpus_name="shared")
    stored = Passage.objects.get(doc_id="d2")
    assert error.message == (
        f'corpus.jsonl line 2, field "text": passage "d2" differs from the passage with this id '
        f'already in corpus "shared" (passage #{stored.pk}); a corpus keeps one text per id: '
        f"import into another corpus or give the passage a new id"
    )
    assert error.detail == {"file": "corpus.jsonl", "line": 2, "field": "text"}
    assert snapshot_rows() == before


def test_qrels_naming_an_unknown_document(tmp_path):
    folder = make_beir(tmp_path / "b", qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td9\t1\n")
    error = import_error(source=folder, dataset_name="d")
    assert error.message == (
        'qrels/train.tsv line 3, field "corpus-id": document "d9" is not in corpus.jsonl'
    )
    assert_clean_failure(error, file="qrels/train.tsv", line=3, field="corpus-id")


def test_qrels_naming_an_unknown_query(tmp_path):
    folder = make_beir(tmp_path / "b", qrels="q1\td1\t1\nq7\td1\t1\n")
    error = import_error(source=folder, dataset_name="d")
    assert (
        error.message
        == 'qrels/train.tsv line 2, field "query-id": query "q7" is not in queries.jsonl'
    )
    assert_clean_failure(error, file="qrels/train.tsv", line=2, field="query-id")


def test_qrels_may_name_a_document_already_in_the_corpus(tmp_path):
    dataset_import(source=make_beir(tmp_path / "v1"), dataset_name="v1", corpus_name="shared")
    folder = make_beir(
        tmp_path / "v2", corpus=[{"_id": "d3", "text": "three"}], qrels="q1\td1\t1\nq1\td3\t0\n"
    )
    dataset = dataset_import(source=folder, dataset_name="v2", corpus_name="shared").dataset
    assert (dataset.positive_count, dataset.negative_count) == (1, 1)
    assert Corpus.objects.get(name="shared").passage_count == 3


def test_upload_name_is_used_in_errors(tmp_path):
    path = write_jsonl(tmp_path / "a8f3e1", [{"query": "q", "pos": 3}])
    error = import_error(source=path, dataset_name="d", format="bge", source_name="train.jsonl")
    assert error.message == 'train.jsonl line 1, field "pos": expected a list of strings, got int'


def test_unknown_format_and_missing_name():
    with pytest.raises(ApplicationError, match='unknown format "csv"'):
        dataset_import(source="x", dataset_name="d", format="csv")
    with pytest.raises(ApplicationError, match="needs a name"):
        dataset_import(source="x", dataset_name=" ")


def test_progress_is_reported_while_reading(tmp_path):
    path = write_jsonl(
        tmp_path / "train.jsonl",
        [
            {"query": f"q{i}", "pos": [f"p{i}"], "neg": [f"n{i}-{k}" for k in range(25)]}
            for i in range(3000)
        ],
    )
    calls = []
    dataset_import(
        source=path,
        dataset_name="d",
        progress=lambda fraction, message="", force=False: calls.append((fraction, message)),
    )
    fractions = [fraction for fraction, _ in calls]
    assert fractions == sorted(fractions) and len(calls) >= 3
    assert calls[-1] == (0.8, "writing to the database")
    assert any("candidates" in message for _, message in calls[:-1])
