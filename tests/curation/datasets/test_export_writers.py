"""Format writers (no database): exact lines for known input."""

import io
import json

import pytest

from curation.datasets.export import Candidate, QueryData, writer_for


def c(doc_id, text, title="", score=None, rank=None):
    return Candidate(doc_id=doc_id, title=title, text=text, rank=rank, teacher_score=score)


def lines(format, queries, **kw):
    out = io.StringIO()
    writer = writer_for(format, out, **kw)
    rows = [writer.write(q) for q in queries]
    return rows, [json.loads(line) for line in out.getvalue().splitlines()], out.getvalue()


QUERY = QueryData(
    "q1",
    "capital of France",
    (c("d1", "Paris is the capital.", title="Paris", score=0.9),),
    (
        c("d2", "Lyon is a city.", score=0.2, rank=1),
        c("d3", "Nice has a beach.", score=0.1, rank=2),
    ),
)


def test_bge_joins_title_and_writes_scores_when_all_present():
    rows, [obj], _ = lines("bge", [QUERY])
    assert rows == [1]
    assert obj == {
        "query": "capital of France",
        "pos": ["Paris Paris is the capital."],
        "neg": ["Lyon is a city.", "Nice has a beach."],
        "pos_scores": [0.9],
        "neg_scores": [0.2, 0.1],
    }


def test_bge_leaves_scores_out_when_one_is_missing():
    query = QueryData("q", "t", QUERY.positives, QUERY.negatives + (c("d4", "no score", rank=3),))
    _, [obj], _ = lines("bge", [query])
    assert "pos_scores" not in obj and "neg_scores" not in obj
    assert obj["neg"][-1] == "no score"


def test_tevatron_keeps_ids_and_titles():
    _, [obj], text = lines("tevatron", [QUERY])
    assert obj == {
        "query_id": "q1",
        "query": "capital of France",
        "positive_passages": [{"docid": "d1", "title": "Paris", "text": "Paris is the capital."}],
        "negative_passages": [
            {"docid": "d2", "title": "", "text": "Lyon is a city."},
            {"docid": "d3", "title": "", "text": "Nice has a beach."},
        ],
    }
    assert list(obj) == ["query_id", "query", "positive_passages", "negative_passages"]


def test_sentence_transformers_writes_one_triplet_per_positive_and_negative():
    query = QueryData("q", "a", (c("p1", "P1"), c("p2", "P2")), QUERY.negatives)
    rows, objs, _ = lines("sentence_transformers", [query])
    assert rows == [4]
    assert objs == [
        {"anchor": "a", "positive": "P1", "negative": "Lyon is a city."},
        {"anchor": "a", "positive": "P1", "negative": "Nice has a beach."},
        {"anchor": "a", "positive": "P2", "negative": "Lyon is a city."},
        {"anchor": "a", "positive": "P2", "negative": "Nice has a beach."},
    ]


def test_sentence_transformers_pairs_when_the_dataset_has_no_negatives():
    query = QueryData("q", "a", (c("p1", "P1", title="T"),), ())
    rows, objs, _ = lines("sentence_transformers", [query], dataset_has_negatives=False)
    assert rows == [1]
    assert objs == [{"anchor": "a", "positive": "T P1"}]


def test_sentence_transformers_query_without_negatives_writes_nothing_in_triplet_mode():
    rows, objs, _ = lines("sentence_transformers", [QueryData("q", "a", (c("p", "P"),), ())])
    assert rows == [0] and objs == []


def test_non_ascii_is_written_as_utf8_and_output_is_deterministic():
    query = QueryData("q", "café ☕", (c("p", "naïve résumé"),), ())
    _, _, first = lines("tevatron", [query])
    _, _, second = lines("tevatron", [query])
    assert "café ☕" in first
    assert first == second


def test_unknown_format_is_refused():
    with pytest.raises(ValueError):
        writer_for("csv", io.StringIO())
