"""The pure readers (no database): what they yield from real files, and the clear error
each malformed input gets."""

import csv
import gzip
import hashlib
import json
from collections import Counter

import pytest

from curation.datasets.formats import (
    CandidateRow,
    FormatError,
    OptionError,
    PassageRow,
    QueryRow,
    detect_format,
    open_dataset,
    text_hash,
    text_id,
)
from curation.datasets.formats.base import RecentKeys


def read(path, **kwargs):
    reader = open_dataset(path, **kwargs)
    rows = list(reader.rows())
    return reader, rows


def of(rows, kind):
    return [row for row in rows if type(row) is kind]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def blake(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


# --- real files -------------------------------------------------------------------------


def test_bge_msmarco_example_keeps_teacher_scores_and_ranks(shared_data):
    path = shared_data / "bge" / "msmarco.jsonl"
    reader, rows = read(path)
    assert reader.format == "bge"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    candidates = of(rows, CandidateRow)
    assert len(of(rows, QueryRow)) == 10
    assert Counter(c.role for c in candidates) == {"positive": 10, "negative": 250}

    first = records[0]
    query_id = text_id(first["query"])
    mine = [c for c in candidates if c.query_id == query_id]
    negatives = [c for c in mine if c.role == "negative"]
    assert [c.rank for c in negatives] == list(range(1, 26))
    assert [c.teacher_score for c in negatives] == first["neg_scores"]
    assert [c.doc_id for c in negatives] == [text_id(text) for text in first["neg"]]
    (positive,) = [c for c in mine if c.role == "positive"]
    assert positive.teacher_score == first["pos_scores"][0] and positive.rank is None
    assert reader.notes["prompt"] == first["prompt"]


def test_ids_and_hashes_are_blake2b_128_of_the_text(shared_data):
    _, rows = read(shared_data / "bge" / "msmarco.jsonl")
    passage = of(rows, PassageRow)[0]
    assert passage.doc_id == "h:" + blake(passage.text)
    assert passage.text_hash == blake("\n" + passage.text) == text_hash("", passage.text)
    query = of(rows, QueryRow)[0]
    assert query.query_id == "h:" + blake(query.text)


def test_bge_nq_repeated_passage_is_yielded_once(shared_data):
    _, rows = read(shared_data / "bge" / "nq.jsonl")
    passages = of(rows, PassageRow)
    candidates = of(rows, CandidateRow)
    assert len(candidates) == 989
    assert len({p.doc_id for p in passages}) == len(passages) == 986
    assert {c.doc_id for c in candidates} == {p.doc_id for p in passages}


def test_rlhn_stage1_reads_as_tevatron(shared_data):
    path = shared_data / "rlhn" / "msmarco_passage.stage_1.gpt-4o-mini.jsonl"
    assert detect_format(path) == "tevatron"
    _, rows = read(path)
    queries = of(rows, QueryRow)
    assert len(queries) == 25
    negatives = Counter(c.query_id for c in of(rows, CandidateRow) if c.role == "negative")
    assert set(negatives.values()) == {25} and len(negatives) == 25
    first = json.loads(path.read_text().splitlines()[0])
    assert queries[0].query_id == first["query_id"]
    ids = [c.doc_id for c in of(rows, CandidateRow) if c.query_id == first["query_id"]]
    assert ids == first["positive_passage_ids"] + first["negative_passage_ids"]


def test_tevatron_gz_reads_like_the_plain_file(shared_data, tmp_path):
    source = shared_data / "rlhn" / "msmarco_passage.stage_2.gpt-4o.jsonl"
    packed = tmp_path / "stage2.jsonl.gz"
    packed.write_bytes(gzip.compress(source.read_bytes()))
    assert detect_format(packed) == "tevatron"
    _, plain = read(source)
    reader, unpacked = read(packed)
    strip = lambda rows: [row[:-1] if type(row) is CandidateRow else row[:-2] for row in rows]  # noqa: E731
    assert strip(unpacked) == strip(plain)
    assert reader.fraction() == 1.0


def test_beir_scifact_train(shared_data):
    reader, rows = read(shared_data / "beir" / "scifact")
    assert reader.format == "beir" and reader.split == "train"
    assert len(of(rows, PassageRow)) == 5183
    assert len(of(rows, QueryRow)) == 1109  # the importer keeps the 809 with qrels
    candidates = of(rows, CandidateRow)
    assert len(candidates) == 919 and {c.role for c in candidates} == {"positive"}
    assert len({c.query_id for c in candidates}) == 809
    assert candidates[0].where.file == "qrels/train.tsv" and candidates[0].where.line == 2


def test_beir_trecdl_sample_has_no_header_line(shared_data):
    folder = shared_data / "beir" / "msmarco_trecdl_sample"
    _, rows = read(folder)
    candidates = of(rows, CandidateRow)
    assert len(candidates) == 4102
    first = (folder / "qrels" / "test.tsv").read_text().splitlines()[0].split("\t")
    assert (candidates[0].query_id, candidates[0].doc_id) == (first[0], first[1])
    assert candidates[0].where.line == 1


def test_beir_min_relevance_splits_grades(shared_data):
    reader, rows = read(
        shared_data / "beir" / "msmarco_trecdl_sample", options={"min_relevance": 2}
    )
    candidates = of(rows, CandidateRow)
    assert len(candidates) == 1804 + 697
    assert reader.notes["qrels_below_min_relevance"] == 1601


# --- small files written here -----------------------------------------------------------


def make_beir(folder, *, qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\n", split="test"):
    (folder / "qrels").mkdir(parents=True)
    write_jsonl(
        folder / "corpus.jsonl",
        [{"_id": "d1", "title": "T1", "text": "one"}, {"_id": "d2", "title": "", "text": "two"}],
    )
    write_jsonl(
        folder / "queries.jsonl", [{"_id": "q1", "text": "q one"}, {"_id": "q2", "text": "q two"}]
    )
    (folder / "qrels" / f"{split}.tsv").write_text(qrels)
    return folder


def test_beir_score_zero_is_a_negative_and_header_is_skipped(tmp_path):
    _, rows = read(make_beir(tmp_path / "b"))
    assert [(c.doc_id, c.role) for c in of(rows, CandidateRow)] == [
        ("d1", "positive"),
        ("d2", "negative"),
    ]
    assert of(rows, PassageRow)[0].text_hash == text_hash("T1", "one")


@pytest.mark.parametrize(
    "qrels",
    [
        "q1 0 d1 1\nq1 0 d2 0\nq2 Q0 d2 2\n",  # TREC's 4 columns, separated by spaces
        "q1\td1\t1\nq1\td2\t0\nq2\td2\t2\n",  # BEIR's 3 columns, no header line
    ],
    ids=["trec-4-columns-spaces", "3-columns-no-header"],
)
def test_beir_qrels_read_the_same_by_the_importer_and_by_evaluation(tmp_path, qrels):
    from core.ml.beir import beir_folder_open, beir_split_read

    folder = make_beir(tmp_path / "b", qrels=qrels)
    _, rows = read(folder)
    candidates = of(rows, CandidateRow)
    assert [(c.query_id, c.doc_id, c.role, c.where.line) for c in candidates] == [
        ("q1", "d1", "positive", 1),
        ("q1", "d2", "negative", 2),
        ("q2", "d2", "positive", 3),
    ]
    evaluated = beir_split_read(beir_folder_open(folder), "test")
    assert evaluated.qrels == {"q1": {"d1": 1, "d2": 0}, "q2": {"d2": 2}}
    assert {(c.query_id, c.doc_id) for c in candidates} == {
        (q, d) for q, docs in evaluated.qrels.items() for d in docs
    }
    passages = {p.doc_id: (p.title, p.text) for p in of(rows, PassageRow)}
    assert passages == evaluated.corpus
    queries = {q.query_id: q.text for q in of(rows, QueryRow)}
    assert {q: queries[q] for q in evaluated.queries} == evaluated.queries


def test_beir_split_must_exist(tmp_path):
    folder = make_beir(tmp_path / "b")
    with pytest.raises(OptionError, match=r"no qrels/dev\.tsv; splits here: test"):
        open_dataset(folder, options={"split": "dev"})


def test_sentence_transformers_jsonl_ntuples(tmp_path):
    path = write_jsonl(
        tmp_path / "triplets.jsonl",
        [
            {"anchor": "a1", "positive": "p1", "negative_1": "n1", "negative_2": "n2"},
            {"anchor": "a1", "positive": "p1", "negative_1": "n3", "negative_2": None},
        ],
    )
    assert detect_format(path) == "sentence_transformers"
    _, rows = read(path)
    candidates = of(rows, CandidateRow)
    assert [(c.role, c.rank) for c in candidates] == [
        ("positive", None),
        ("negative", 1),
        ("negative", 2),
        ("positive", None),
        ("negative", 1),
    ]
    assert len(of(rows, QueryRow)) == 1  # the repeated anchor is one query
    assert [p.text for p in of(rows, PassageRow)] == ["p1", "n1", "n2", "n3"]


def test_sentence_transformers_csv_with_query_pos_neg_columns(tmp_path):
    path = tmp_path / "pairs.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["query", "pos", "neg"])
        writer.writerow(["what is x", "x is a letter,\nsaid the book", "y is not"])
        writer.writerow(["what is y", "y is a letter", "x is not"])
    _, rows = read(path)
    candidates = of(rows, CandidateRow)
    assert len(candidates) == 4
    # the quoted newline makes the second record start on line 4
    assert [c.where.line for c in candidates] == [2, 2, 4, 4]
    assert of(rows, PassageRow)[0].text == "x is a letter,\nsaid the book"


def test_sentence_transformers_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "triplets.parquet"
    table = pa.table(
        {
            "anchor": ["a1", "a2", "a3"],
            "positive": ["p1", "p2", "p3"],
            "negative": ["n1", "n1", "p1"],
        }
    )
    pq.write_table(table, path, row_group_size=2)
    reader, rows = read(path)
    assert reader.format == "sentence_transformers"
    assert len(of(rows, CandidateRow)) == 6
    assert len(of(rows, PassageRow)) == 4  # n1 and p1 repeat
    assert [c.where.line for c in of(rows, CandidateRow)] == [1, 1, 2, 2, 3, 3]
    assert reader.fraction() == 1.0


def test_detect_format_tells_each_kind(tmp_path, shared_data):
    assert detect_format(shared_data / "bge" / "nq.jsonl") == "bge"
    assert detect_format(shared_data / "beir" / "scifact") == "beir"
    assert detect_format(write_jsonl(tmp_path / "t.jsonl", [{"anchor": "a", "positive": "p"}])) == (
        "sentence_transformers"
    )
    unknown = write_jsonl(tmp_path / "u.jsonl", [{"question": "a", "answer": "p"}])
    with pytest.raises(
        FormatError, match=r"u\.jsonl line 1: cannot tell the format.*answer, question"
    ):
        detect_format(unknown)


def test_recent_keys_stay_bounded():
    recent = RecentKeys(capacity=100)
    assert [recent.seen(key) for key in (1, 2, 1)] == [False, False, True]
    for key in range(10_000):
        recent.seen(key)
    assert len(recent._new) + len(recent._old) <= 200
    assert recent.seen(9_999) and not recent.seen(5)


def test_reader_streams_rows_before_reading_the_whole_file(tmp_path):
    path = write_jsonl(
        tmp_path / "big.jsonl",
        [{"query": f"q{i}", "pos": [f"p{i}"], "neg": [f"n{i}"]} for i in range(20_000)],
    )
    reader = open_dataset(path)
    rows = reader.rows()
    next(rows)
    assert 0 < reader.fraction() < 0.5
    rows.close()


# --- malformed inputs: each its own message naming file, line and field ---------------


BGE_OK = {"query": "q", "pos": ["p"], "neg": ["n1", "n2"]}


def bge_file(tmp_path, *records, name="train.jsonl"):
    return write_jsonl(tmp_path / name, [BGE_OK, *records])


def error_of(path, **kwargs) -> FormatError:
    with pytest.raises(FormatError) as caught:
        read(path, **kwargs)
    return caught.value


def test_truncated_json(tmp_path):
    path = tmp_path / "train.jsonl"
    line = json.dumps(BGE_OK)
    path.write_text(line + "\n" + line[:20] + "\n")
    error = error_of(path, format="bge")
    assert error.message.startswith("train.jsonl line 2: invalid JSON")
    assert "truncated" in error.message and error.line == 2


def test_wrong_type_of_a_list(tmp_path):
    error = error_of(bge_file(tmp_path, {"query": "q2", "pos": ["p"], "neg": 7}))
    assert error.message == 'train.jsonl line 2, field "neg": expected a list of strings, got int'
    assert error.detail == {"file": "train.jsonl", "line": 2, "field": "neg"}


def test_wrong_type_of_an_item(tmp_path):
    error = error_of(bge_file(tmp_path, {"query": "q2", "pos": ["p"], "neg": ["n", {"x": 1}]}))
    assert error.message == 'train.jsonl line 2, field "neg[1]": expected a string, got object'


def test_scores_not_matching_passages(tmp_path):
    error = error_of(
        bge_file(tmp_path, {"query": "q2", "pos": ["p"], "neg": ["a", "b"], "neg_scores": [0.1]})
    )
    assert (
        error.message
        == 'train.jsonl line 2, field "neg_scores": has 1 scores for 2 passages in "neg"'
    )


def test_missing_field(tmp_path):
    error = error_of(bge_file(tmp_path, {"pos": ["p"], "neg": []}))
    assert error.message == 'train.jsonl line 2, field "query": the field is missing'


def test_missing_field_in_a_tevatron_passage(tmp_path):
    path = write_jsonl(
        tmp_path / "tev.jsonl",
        [
            {
                "query_id": "1",
                "query": "q",
                "positive_passages": [{"docid": "d", "text": "t"}],
                "negative_passages": [{"docid": "e", "title": "x"}],
            }
        ],
    )
    error = error_of(path)
    assert (
        error.message == 'tev.jsonl line 1, field "negative_passages[0].text": the field is missing'
    )


def test_non_utf8_bytes(tmp_path):
    path = tmp_path / "train.jsonl"
    good = json.dumps(BGE_OK).encode()
    path.write_bytes(good + b"\n" + good + b"\n" + b'{"query": "caf\xe9", "pos": []}\n')
    error = error_of(path, format="bge")
    assert error.line == 3
    assert error.message.startswith("train.jsonl line 3: byte 15 of the line is not valid UTF-8")


def test_empty_file(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("\n\n")
    assert error_of(path, format="bge").message == "train.jsonl: the file is empty (no records)"
    with pytest.raises(FormatError, match="empty"):
        detect_format(path)


def test_nul_character_cannot_be_stored(tmp_path):
    error = error_of(bge_file(tmp_path, {"query": "q2", "pos": ["bad\u0000text"], "neg": []}))
    assert error.message.startswith('train.jsonl line 2, field "pos[0]": contains a NUL character')


def test_lone_surrogate(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(BGE_OK) + '\n{"query": "x\\ud800y", "pos": []}\n')
    error = error_of(path, format="bge")
    assert error.message.startswith(
        'train.jsonl line 2, field "query": contains an invalid unicode'
    )


def test_truncated_gzip(tmp_path):
    path = tmp_path / "train.jsonl.gz"
    data = gzip.compress(("\n".join(json.dumps(BGE_OK) for _ in range(2000)) + "\n").encode())
    path.write_bytes(data[: len(data) // 2])
    error = error_of(path, format="bge")
    assert "gzip data is damaged or truncated" in error.message and error.line > 1


def test_qrels_with_a_bad_score(tmp_path):
    folder = make_beir(tmp_path / "b", qrels="q1\td1\t1\nq1\td2\tyes\n")
    error = error_of(folder)
    assert error.message == 'qrels/test.tsv line 2, field "score": expected a number, got "yes"'


def test_qrels_with_wrong_columns(tmp_path):
    folder = make_beir(tmp_path / "b", qrels="q1\td1\n")
    assert error_of(folder).message == (
        "qrels/test.tsv line 1: expected 3 columns (query-id, corpus-id, score) or TREC's 4 "
        "(query-id, iteration, corpus-id, score), separated by tabs or spaces; got 2"
    )


def test_qrels_with_an_empty_id(tmp_path):
    error = error_of(make_beir(tmp_path / "b", qrels="q1\td1\t1\n\td2\t0\n"))
    assert (error.file, error.line, error.field) == ("qrels/test.tsv", 2, "query-id")
    assert error.message == 'qrels/test.tsv line 2, field "query-id": the id is empty'


def test_beir_corpus_record_without_id(tmp_path):
    folder = make_beir(tmp_path / "b")
    write_jsonl(folder / "corpus.jsonl", [{"_id": "d1", "text": "one"}, {"text": "two"}])
    assert error_of(folder).message == 'corpus.jsonl line 2, field "_id": the field is missing'


def test_id_too_long(tmp_path):
    path = write_jsonl(
        tmp_path / "tev.jsonl",
        [{"query_id": "x" * 201, "query": "q", "positive_passages": []}],
    )
    assert error_of(path).message == (
        'tev.jsonl line 1, field "query_id": the id is 201 characters long; at most 200 are allowed'
    )


def test_csv_row_with_missing_cells(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("anchor,positive,negative\na,p,n\nb,p\n")
    assert error_of(path).message == "t.csv line 3: expected 3 cells as in the header, got 2"


def test_csv_without_anchor_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("sentence1,sentence2\na,b\n")
    assert (
        error_of(path).message
        == 't.csv line 1, field "anchor": the column "anchor" (or "query") is missing'
    )


def test_parquet_column_of_the_wrong_type(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"anchor": ["a"], "positive": [3]}), path)
    assert (
        error_of(path).message
        == 't.parquet, field "positive": expected a column of strings, got int64'
    )


def test_parquet_null_anchor_names_the_row(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"anchor": ["a", None], "positive": ["p", "q"]}), path)
    assert error_of(path).message == 't.parquet row 2, field "anchor": expected a string, got null'


def test_parquet_with_a_damaged_page_names_the_file_and_row(tmp_path):
    """Found by the fuzz test: a page header pyarrow cannot decode raised a raw OSError
    ("Couldn't deserialize thrift") instead of an error naming the file."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"anchor": ["a", "b"], "positive": ["p", "q"]}), path)
    data = bytearray(path.read_bytes())
    data[4:12] = b"\xff" * 8  # the first page header, right after the magic; the footer stays
    path.write_bytes(bytes(data))
    error = error_of(path)
    assert error.message.startswith("t.parquet row 1: the parquet data is damaged (")
    assert (error.file, error.line) == ("t.parquet", 1)


def test_parquet_text_that_is_not_utf8_names_the_row_and_field(tmp_path):
    """Found with the fuzz test: a string column holding bytes that are not UTF-8 (other
    writers do not check) raised a raw UnicodeDecodeError for the whole batch."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    raw = pa.array([b"fine", b"\xff\xfe not text"], pa.binary())
    anchors = pa.Array.from_buffers(pa.string(), 2, raw.buffers())  # no UTF-8 check
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"anchor": anchors, "positive": ["p", "q"]}), path)
    assert error_of(path).message == 't.parquet row 2, field "anchor": the text is not valid UTF-8'
