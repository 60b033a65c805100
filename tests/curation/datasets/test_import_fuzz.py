"""Property-based tests over every importer (issue 11, "A fuzz corpus that stays").

Whatever a file holds — arbitrary bytes, or a valid file of each format mutated line by line,
field by field or byte by byte — an import either succeeds or raises ``ApplicationError``
naming where the problem is (the file, and the line or field when there is one), and a
failed import leaves every table as it was. Any other exception is a bug of a reader.

The corpus that stays: the valid seed files below, and each input that once found a bug,
pinned with ``@example`` (and a regression test in the test file of its format). CI runs a
small, derandomized set (the same examples on every run, no example database); a deeper,
random run keeps what it finds in ``var/hypothesis`` (ignored by git):

    SIEVE_FUZZ_EXAMPLES=3000 .venv/bin/pytest tests/curation/datasets/test_import_fuzz.py
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import pytest
from django.db import transaction
from hypothesis import HealthCheck, event, example, given, reject, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from core.errors import ApplicationError
from curation.datasets.imports import dataset_import
from curation.models import Candidate, Corpus, Dataset, Passage, Query

pytestmark = pytest.mark.django_db

DEEP = int(os.environ.get("SIEVE_FUZZ_EXAMPLES", "0"))
VAR = Path(__file__).resolve().parents[3] / "var" / "hypothesis"


def fuzz_settings(examples: int):
    """``examples`` derandomized examples in CI; SIEVE_FUZZ_EXAMPLES random ones, saved."""
    common = {
        "deadline": None,
        "suppress_health_check": [
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    }
    if DEEP:
        return settings(
            max_examples=DEEP, database=DirectoryBasedExampleDatabase(str(VAR)), **common
        )
    return settings(max_examples=examples, derandomize=True, database=None, **common)


# --- the seed corpus: one small valid file of each kind ---------------------------------------

BGE = [
    {"query": "what is a sieve", "pos": ["a sieve strains"], "neg": ["a cat", "a dog"]},
    {
        "query": "second query",
        "pos": ["another passage"],
        "neg": ["a cat"],
        "pos_scores": [0.9],
        "neg_scores": [0.1],
    },
]
TEVATRON = [
    {
        "query_id": "q1",
        "query": "what is a sieve",
        "positive_passages": [{"docid": "d1", "title": "Sieve", "text": "a sieve strains"}],
        "negative_passages": [{"docid": "d2", "title": "", "text": "a cat"}],
    },
    {
        "query_id": "q2",
        "query": "second query",
        "positive_passages": [{"docid": "d3", "title": "", "text": "another passage"}],
        "negative_passages": [],
    },
]
SENTENCE_TRANSFORMERS = [
    {"anchor": "what is a sieve", "positive": "a sieve strains", "negative": "a cat, a dog"},
    {"anchor": "second query", "positive": "another passage", "negative": ""},
]
BEIR = {
    "corpus.jsonl": [
        {"_id": "d1", "title": "Sieve", "text": "a sieve strains"},
        {"_id": "d2", "title": "", "text": "a cat"},
    ],
    "queries.jsonl": [{"_id": "q1", "text": "what is a sieve"}, {"_id": "q2", "text": "two"}],
    "qrels/test.tsv": [["query-id", "corpus-id", "score"], ["q1", "d1", "1"], ["q2", "d2", "0"]],
}

# (file name, format it is) for every single-file kind the importer reads.
FILE_KINDS = {
    "bge": ("train.jsonl", "bge"),
    "bge_gz": ("train.jsonl.gz", "bge"),
    "tevatron": ("train.jsonl", "tevatron"),
    "tevatron_parquet": ("train.parquet", "tevatron"),
    "st_csv": ("pairs.csv", "sentence_transformers"),
    "st_tsv": ("pairs.tsv", "sentence_transformers"),
    "st_csv_gz": ("pairs.csv.gz", "sentence_transformers"),
    "st_jsonl": ("pairs.jsonl", "sentence_transformers"),
    "st_parquet": ("pairs.parquet", "sentence_transformers"),
}
KINDS = [*FILE_KINDS, "beir_folder", "beir_zip"]


def seed_records(kind: str) -> list:
    if kind.startswith("bge"):
        return json.loads(json.dumps(BGE))
    if kind.startswith("tevatron"):
        return json.loads(json.dumps(TEVATRON))
    return json.loads(json.dumps(SENTENCE_TRANSFORMERS))


def jsonl_bytes(records: list) -> bytes:
    return "".join(json.dumps(record) + "\n" for record in records).encode("utf-8", "surrogatepass")


def table_bytes(records: list, delimiter: str) -> bytes:
    import csv

    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    columns = list(dict.fromkeys(key for r in records if isinstance(r, dict) for key in r))
    writer.writerow(columns)
    for record in records:
        if isinstance(record, dict):
            writer.writerow([_cell(record.get(column, "")) for column in columns])
        else:  # a row that is not a mapping: one cell
            writer.writerow([_cell(record)])
    return out.getvalue().encode("utf-8", "surrogatepass")


def _cell(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def parquet_bytes(records: list) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [r if isinstance(r, dict) else {"anchor": r} for r in records]
    try:
        table = pa.Table.from_pylist(records)
        out = io.BytesIO()
        pq.write_table(table, out)
    except (pa.ArrowException, UnicodeError, OverflowError, TypeError, ValueError):
        reject()  # records pyarrow cannot store: not an input a user can have
    return out.getvalue()


def file_bytes(kind: str, records: list) -> bytes:
    if kind.endswith("parquet"):
        return parquet_bytes(records)
    if kind.startswith("st_csv"):
        data = table_bytes(records, ",")
    elif kind == "st_tsv":
        data = table_bytes(records, "\t")
    else:
        data = jsonl_bytes(records)
    return gzip.compress(data, mtime=0) if kind.endswith("_gz") else data


def beir_files(tables: dict) -> dict[str, bytes]:
    files = {}
    for name, rows in tables.items():
        if name.endswith(".tsv"):
            cells = (row if isinstance(row, list) else [row] for row in rows)
            text = "".join("\t".join(map(_cell, row)) + "\n" for row in cells)
            files[name] = text.encode("utf-8", "surrogatepass")
        else:
            files[name] = jsonl_bytes(rows)
    return files


def zip_bytes(files: dict[str, bytes], prefix: str = "scifact/") -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(prefix + name, data)
    return out.getvalue()


# --- what an import must do ------------------------------------------------------------------


def table_counts() -> dict:
    return {m.__name__: m.objects.count() for m in (Corpus, Dataset, Passage, Query, Candidate)}


class _Undo(Exception):
    """Raised to roll back what an example wrote, so the next one starts from the same tables."""


def import_succeeds_or_names_the_problem(source: Path, *, name: str, format: str | None) -> None:
    try:
        with transaction.atomic():
            before = table_counts()
            try:
                dataset_import(
                    source=source, dataset_name="fuzzed", format=format, source_name=name
                )
                event("imported")
            except ApplicationError as error:
                event("refused: " + ", ".join(sorted(k for k, v in error.detail.items() if v)))
                assert error.message.strip(), "an error without a message"
                where = error.detail
                assert where.get("file") or where.get("field"), (error.message, where)
                if where.get("file"):
                    assert where["file"] in error.message, (error.message, where)
                assert table_counts() == before, f"a failed import wrote rows: {error.message}"
            raise _Undo
    except _Undo:
        pass


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- strategies ------------------------------------------------------------------------------

NASTY_TEXT = st.sampled_from(
    ["", " ", "\x00", "\ud800", "\ufeff", "\u2028", "a\tb", 'say "hi"', "x,y", "\r\n", "é" * 3]
)
TEXT = st.text(max_size=12) | NASTY_TEXT
NUMBERS = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, -1, 1e308, 2**63])
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | NUMBERS | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
FORMATS = st.sampled_from([None, None, "bge", "tevatron", "beir", "sentence_transformers"])


def _paths(value, prefix=()):
    """Every (path, value) inside a JSON value: where a mutation may strike."""
    yield prefix
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _paths(inner, (*prefix, index))


def _replace(value, path, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace(value[head], rest, new)
    return copy


def _delete(value, path):
    if len(path) == 1:
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if k != path[0]}
        return [v for i, v in enumerate(value) if i != path[0]]
    return _replace(value, path[:-1], _delete(_at(value, path[:-1]), path[-1:]))


def _at(value, path):
    for step in path:
        value = value[step]
    return value


@st.composite
def mutated_records(draw, records: list) -> list:
    """A few structural mutations: a value replaced by any JSON value, a key renamed or
    removed, a record dropped, repeated or replaced."""
    records = list(records)
    for _ in range(draw(st.integers(1, 3))):
        operation = draw(st.sampled_from(["value", "value", "delete", "rename", "records"]))
        if not records:
            records.append(draw(JSON_VALUES))
            continue
        index = draw(st.integers(0, len(records) - 1))
        paths = list(_paths(records[index]))
        path = draw(st.sampled_from(paths))
        if operation == "value":
            records[index] = _replace(records[index], path, draw(JSON_VALUES))
        elif operation == "delete" and path:
            records[index] = _delete(records[index], path)
        elif operation == "rename" and path and isinstance(path[-1], str):
            parent = _at(records[index], path[:-1])
            renamed = {draw(TEXT) if k == path[-1] else k: v for k, v in parent.items()}
            records[index] = _replace(records[index], path[:-1], renamed)
        else:
            choice = draw(st.sampled_from(["drop", "repeat", "any"]))
            if choice == "drop":
                records.pop(index)
            elif choice == "repeat":
                records.insert(index, records[index])
            else:
                records[index] = draw(JSON_VALUES)
    return records


@st.composite
def mutated_bytes(draw, data: bytes) -> bytes:
    """Byte-level mutations: bytes flipped, inserted or deleted, the file cut short, a line
    repeated or dropped."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        operation = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "lines"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if operation == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif operation == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8) | st.sampled_from([b"\n", b'"']))
        elif operation == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif operation == "truncate":
            del data[at:]
        else:
            lines = bytes(data).split(b"\n")
            line = draw(st.integers(0, len(lines) - 1))
            if draw(st.booleans()):
                lines.insert(line, lines[line])
            else:
                lines.pop(line)
            data = bytearray(b"\n".join(lines))
    return bytes(data)


# --- inputs that once found a bug (each also has a regression test in test_formats.py) ------


def damaged_parquet_page() -> bytes:
    """A parquet file whose first page header is garbage and whose footer is intact: pyarrow
    raised a raw OSError ("Couldn't deserialize thrift")."""
    data = bytearray(parquet_bytes(seed_records("tevatron")))
    data[4:12] = b"\xff" * 8
    return bytes(data)


def parquet_text_not_utf8() -> bytes:
    """A string column holding bytes that are not UTF-8: a raw UnicodeDecodeError."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    raw = pa.array([b"fine", b"\xff\xfe"], pa.binary())
    anchors = pa.Array.from_buffers(pa.string(), 2, raw.buffers())
    out = io.BytesIO()
    pq.write_table(pa.table({"anchor": anchors, "positive": ["p", "q"]}), out)
    return out.getvalue()


# --- the properties --------------------------------------------------------------------------

BYTES_KINDS = {**{kind: name for kind, (name, _) in FILE_KINDS.items()}, "beir_zip": "beir.zip"}


@fuzz_settings(examples=60)
@given(kind=st.sampled_from(list(BYTES_KINDS)), data=st.binary(max_size=200), format=FORMATS)
@example(kind="bge", data=b"", format=None)
@example(kind="st_parquet", data=b"PAR1\x00\x00PAR1", format=None)
@example(kind="beir_zip", data=b"PK\x05\x06" + b"\x00" * 18, format=None)  # an empty .zip
@example(kind="tevatron_parquet", data=damaged_parquet_page(), format=None)
@example(kind="st_parquet", data=parquet_text_not_utf8(), format=None)
def test_any_bytes_import_or_fail_with_file_and_line(kind, data, format):
    name = BYTES_KINDS[kind]
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder), "upload-" + name, data)
        import_succeeds_or_names_the_problem(path, name=name, format=format)


@fuzz_settings(examples=150)
@given(kind=st.sampled_from(list(FILE_KINDS)), data=st.data())
def test_mutated_training_files_import_or_fail_with_file_line_and_field(kind, data):
    name, right_format = FILE_KINDS[kind]
    records = data.draw(mutated_records(seed_records(kind)), label="records")
    content = file_bytes(kind, records)
    if data.draw(st.booleans(), label="mutate the bytes too"):
        content = data.draw(mutated_bytes(content), label="bytes")
    format = data.draw(st.sampled_from([None, right_format]) | FORMATS, label="format")
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder), "upload-" + name, content)
        import_succeeds_or_names_the_problem(path, name=name, format=format)


@fuzz_settings(examples=80)
@given(packed=st.booleans(), data=st.data())
def test_mutated_beir_folders_import_or_fail_with_file_line_and_field(packed, data):
    tables = json.loads(json.dumps(BEIR))
    target = data.draw(st.sampled_from(sorted(tables)), label="file")
    tables[target] = data.draw(mutated_records(tables[target]), label="records")
    files = beir_files(tables)
    if data.draw(st.booleans(), label="mutate the bytes too"):
        files[target] = data.draw(mutated_bytes(files[target]), label="bytes")
    if data.draw(st.integers(0, 9), label="drop a file") == 0:
        files.pop(target)
    format = data.draw(st.sampled_from([None, "beir"]), label="format")
    with tempfile.TemporaryDirectory() as folder:
        if packed:
            archive = zip_bytes(files)
            if data.draw(st.integers(0, 4), label="mutate the archive") == 0:
                archive = data.draw(mutated_bytes(archive), label="archive bytes")
            path = write(Path(folder), "upload-1.zip", archive)
            name = "scifact.zip"
        else:
            for relative, content in files.items():
                write(Path(folder) / "scifact", relative, content)
            path, name = Path(folder) / "scifact", "scifact"
        import_succeeds_or_names_the_problem(path, name=name, format=format)


def test_the_seed_files_import(tmp_path):
    """The corpus the mutations start from is valid: each kind imports as it is."""
    for kind, (name, format) in FILE_KINDS.items():
        path = write(tmp_path / kind, name, file_bytes(kind, seed_records(kind)))
        dataset = dataset_import(source=path, dataset_name=kind, format=None).dataset
        assert dataset.format == format and dataset.query_count == 2, kind
    folder = tmp_path / "beir"
    for relative, content in beir_files(BEIR).items():
        write(folder, relative, content)
    assert dataset_import(source=folder, dataset_name="beir").dataset.query_count == 2
    archive = write(tmp_path, "beir.zip", zip_bytes(beir_files(BEIR)))
    assert dataset_import(source=archive, dataset_name="beir-zip").dataset.query_count == 2
