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
