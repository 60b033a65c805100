"""Hostile inputs within bounds: a .zip is read without unpacking it to disk, what a .zip or
.gz may unpack to is capped (in total and as a ratio), and so is a line. Each refusal names
the file (and the line, where one is being read) and writes nothing. The limits are made
tiny here so the crafted bombs stay small."""

import gzip
import json
import zipfile

import pytest

from core.errors import ApplicationError
from curation.datasets.imports import dataset_import
from curation.models import Candidate, Corpus, Dataset, Passage, Query

pytestmark = pytest.mark.django_db

EMPTY = {"Corpus": 0, "Dataset": 0, "Passage": 0, "Query": 0, "Candidate": 0}


def table_counts() -> dict:
    return {
        model.__name__: model.objects.count()
        for model in (Corpus, Dataset, Passage, Query, Candidate)
    }


def import_error(**kwargs) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        dataset_import(**kwargs)
    assert table_counts() == EMPTY
    return caught.value


def corpus_lines(count: int) -> str:
    """Highly repetitive documents: what a bomb looks like, in miniature."""
    return "".join(
        json.dumps({"_id": f"d{n}", "title": "", "text": "spam " * 20}) + "\n"
        for n in range(1, count + 1)
    )


def beir_zip(path, corpus: str, *, corpus_name="corpus.jsonl"):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as packed:
        packed.writestr(f"mini/{corpus_name}", corpus)
        packed.writestr("mini/queries.jsonl", '{"_id": "q1", "text": "which one"}\n')
        packed.writestr("mini/qrels/train.tsv", "q1\td1\t1\nq1\td2\t0\n")
    return path


@pytest.fixture
def tiny_limits(settings):
    settings.SIEVE_IMPORT_MAX_UNCOMPRESSED_BYTES = 1_000_000
    settings.SIEVE_IMPORT_MAX_COMPRESSION_RATIO = 100
    settings.SIEVE_IMPORT_RATIO_CHECKED_ABOVE_BYTES = 0
    settings.SIEVE_IMPORT_MAX_LINE_BYTES = 10_000
    return settings


def test_a_zip_is_read_without_being_unpacked_to_disk(tmp_path, monkeypatch, settings):
    def refuse(*args, **kwargs):
        raise AssertionError("the archive was unpacked to disk")

    monkeypatch.setattr(zipfile.ZipFile, "extractall", refuse)
    monkeypatch.setattr(zipfile.ZipFile, "extract", refuse)
    archive = beir_zip(tmp_path / "upload-1", corpus_lines(3))
    result = dataset_import(source=archive, dataset_name="mini", source_name="mini.zip")
    assert (result.dataset.query_count, result.dataset.positive_count) == (1, 1)
    assert result.stats["files"] == ["corpus.jsonl", "queries.jsonl", "qrels/train.tsv"]
    assert not (settings.VAR_DIR / "tmp").exists() or not any((settings.VAR_DIR / "tmp").iterdir())


def test_a_zip_declaring_too_much_is_refused_before_reading(tmp_path, tiny_limits):
    tiny_limits.SIEVE_IMPORT_MAX_UNCOMPRESSED_BYTES = 20_000
    archive = beir_zip(tmp_path / "bomb.zip", corpus_lines(400))  # ≈ 47 KB, 1.5 KB packed
    error = import_error(source=archive, dataset_name="bomb")
    assert error.message.startswith("bomb.zip: corpus.jsonl unpacks to 55.0 KiB")
    assert "SIEVE_IMPORT_MAX_UNCOMPRESSED_BYTES" in error.message
    assert error.detail == {"file": "bomb.zip", "line": None, "field": None}


def test_a_zip_with_a_bomb_like_compression_ratio_is_refused(tmp_path, tiny_limits):
    tiny_limits.SIEVE_IMPORT_MAX_COMPRESSION_RATIO = 20
    archive = beir_zip(tmp_path / "bomb.zip", corpus_lines(400))  # packs ≈ 45 : 1
    error = import_error(source=archive, dataset_name="bomb")
    assert error.message.startswith("bomb.zip: the files read unpack to")
    assert "SIEVE_IMPORT_MAX_COMPRESSION_RATIO" in error.message


def test_a_gzip_bomb_inside_a_zip_is_stopped_while_reading(tmp_path, tiny_limits):
    """A .gz member declares only its packed size: the bytes that come out of it count."""
    tiny_limits.SIEVE_IMPORT_MAX_UNCOMPRESSED_BYTES = 20_000
    tiny_limits.SIEVE_IMPORT_MAX_COMPRESSION_RATIO = 1000
    packed = gzip.compress(corpus_lines(400).encode())
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("corpus.jsonl.gz", packed)
        zf.writestr("queries.jsonl", '{"_id": "q1", "text": "which one"}\n')
        zf.writestr("qrels/train.tsv", "q1\td1\t1\n")
    error = import_error(source=archive, dataset_name="bomb")
    assert error.detail["file"] == "corpus.jsonl.gz" and error.detail["line"] > 100
    assert "more than 19.5 KiB" in error.message
    assert "SIEVE_IMPORT_MAX_UNCOMPRESSED_BYTES" in error.message


def test_a_gzip_bomb_is_refused_by_its_ratio_with_the_line(tmp_path, tiny_limits):
    path = tmp_path / "train.jsonl.gz"
    record = json.dumps({"query": "q", "pos": ["p" * 50], "neg": ["n" * 50]})
    path.write_bytes(gzip.compress((record + "\n").encode() * 5000))
    error = import_error(source=path, dataset_name="bomb")
    assert error.detail["file"] == "train.jsonl.gz" and error.detail["line"] > 1
    assert "100 times its compressed size" in error.message


def test_a_line_over_the_limit_is_refused_with_its_number(tmp_path, tiny_limits):
    tiny_limits.SIEVE_IMPORT_MAX_LINE_BYTES = 200
    path = tmp_path / "train.jsonl"
    short = json.dumps({"query": "q", "pos": ["p"]})
    long = json.dumps({"query": "q2", "pos": ["p" * 500]})
    path.write_text(f"{short}\n{long}\n{short}\n")
    error = import_error(source=path, dataset_name="long")
    assert error.message.startswith("train.jsonl line 2: the line is longer than 200 bytes")
    assert "SIEVE_IMPORT_MAX_LINE_BYTES" in error.message


def test_a_line_of_exactly_the_limit_is_read(tmp_path, tiny_limits):
    record = json.dumps({"query": "q", "pos": ["p"]})
    tiny_limits.SIEVE_IMPORT_MAX_LINE_BYTES = len(record)
    path = tmp_path / "train.jsonl"
    path.write_text(f"{record}\n{record}")
    assert dataset_import(source=path, dataset_name="exact").dataset.positive_count == 1


def test_a_long_line_inside_a_zip_names_the_member_and_line(tmp_path, tiny_limits):
    tiny_limits.SIEVE_IMPORT_MAX_LINE_BYTES = 300
    corpus = corpus_lines(2) + json.dumps({"_id": "d3", "text": "x" * 1000}) + "\n"
    archive = beir_zip(tmp_path / "mini.zip", corpus)
    error = import_error(source=archive, dataset_name="mini")
    assert error.message.startswith("corpus.jsonl line 3: the line is longer than 300 bytes")


def test_a_csv_cell_spanning_lines_is_bounded_too(tmp_path, tiny_limits):
    tiny_limits.SIEVE_IMPORT_MAX_LINE_BYTES = 200
    path = tmp_path / "pairs.csv"
    cell = "\n".join(["word " * 10] * 20)  # every line short, the quoted cell long
    path.write_text(f'anchor,positive\nq,p\nq2,"{cell}"\n')
    error = import_error(source=path, dataset_name="csv")
    assert error.detail["file"] == "pairs.csv" and error.detail["line"] == 3
    assert "field larger than field limit" in error.message
