"""Reading snapshot files into training examples (all three formats, through the real import
and snapshot services) and building the (anchor, positive, negative_1..k) rows."""

import json

import pytest

from curation.datasets.snapshots import snapshot_file_path
from training.core.data import (
    Example,
    SnapshotFormatError,
    build_rows,
    first_usable_example,
    read_examples,
)

from . import scifact_snapshots


def _examples(n_negatives_by_query: dict[str, int]) -> list[Example]:
    return [
        Example(query=q, positives=[f"{q}-pos"], negatives=[f"{q}-neg{i}" for i in range(n)])
        for q, n in n_negatives_by_query.items()
    ]


def test_k_hard_negatives_are_a_seeded_sample_of_the_querys_own():
    examples = _examples({"a": 10, "b": 10})
    rows = build_rows(examples, num_negatives=3, seed=7)
    assert list(rows.columns) == ["anchor", "positive", "negative_1", "negative_2", "negative_3"]
    assert rows.columns["anchor"] == ["a", "b"] and rows.columns["positive"] == ["a-pos", "b-pos"]
    for i, query in enumerate("ab"):
        chosen = [rows.columns[f"negative_{n}"][i] for n in (1, 2, 3)]
        assert len(set(chosen)) == 3 and all(c.startswith(f"{query}-neg") for c in chosen)

    def negatives_of(result):
        return [tuple(result.columns[f"negative_{n}"]) for n in (1, 2, 3)]

    assert negatives_of(build_rows(examples, num_negatives=3, seed=7)) == negatives_of(rows)
    assert negatives_of(build_rows(examples, num_negatives=3, seed=8)) != negatives_of(rows)
    # A row's sample depends on its own position only, not on the rows before it.
    later = build_rows([examples[0], examples[1]], num_negatives=3, seed=7)
    assert negatives_of(later) == negatives_of(rows)
    assert rows.stats["rows_with_repeated_negatives"] == 0 and rows.stats["layout"] == "n-tuples"


def test_too_few_negatives_are_repeated_and_queries_without_any_are_left_out():
    rows = build_rows(_examples({"a": 2, "b": 0, "c": 5}), num_negatives=4, seed=0)
    assert rows.columns["anchor"] == ["a", "c"]
    a_negatives = [rows.columns[f"negative_{n}"][0] for n in range(1, 5)]
    assert sorted(set(a_negatives)) == ["a-neg0", "a-neg1"]
    assert rows.stats["rows_with_repeated_negatives"] == 1
    assert rows.stats["examples_without_negatives"] == 1
    assert rows.stats["examples_used"] == 2 and rows.num_negatives == 4


def test_pairs_only_when_no_example_has_negatives_or_k_is_zero():
    rows = build_rows(_examples({"a": 0, "b": 0}), num_negatives=3, seed=0)
    assert list(rows.columns) == ["anchor", "positive"] and len(rows) == 2
    assert rows.stats["layout"] == "pairs" and rows.stats["examples_without_negatives"] == 0
    rows = build_rows(_examples({"a": 4}), num_negatives=0, seed=0)
    assert list(rows.columns) == ["anchor", "positive"]


def test_one_row_per_positive_with_prefixes_and_no_negative_that_is_a_positive():
    example = Example(query="q", positives=["p1", "p2", "p1"], negatives=["p2", "n1", "n2", "n1"])
    rows = build_rows(
        [example, Example(query="  ", positives=["x"])],
        num_negatives=2,
        seed=0,
        query_prefix="query: ",
        passage_prefix="passage: ",
    )
    assert rows.columns["anchor"] == ["query: q", "query: q"]
    assert rows.columns["positive"] == ["passage: p1", "passage: p2"]
    for i in range(2):
        assert {rows.columns["negative_1"][i], rows.columns["negative_2"][i]} == {
            "passage: n1",
            "passage: n2",
        }
    assert rows.stats["negatives_equal_to_a_positive"] == 1
    assert rows.stats["examples_without_positive"] == 1


def test_a_bad_line_names_file_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        json.dumps({"query": "q", "pos": ["p"], "neg": []}) + "\n"
        + json.dumps({"query": "q2", "pos": "p"}) + "\n"
    )  # fmt: skip
    with pytest.raises(SnapshotFormatError) as caught:
        list(read_examples(path, "bge"))
    assert caught.value.detail == {"file": "bad.jsonl", "line": 2, "field": "pos"}
    # The cheap check reads no further than the first usable example.
    assert first_usable_example(path, "bge").query == "q"
    path.write_text("{not json\n")
    with pytest.raises(SnapshotFormatError, match="line 1"):
        first_usable_example(path, "bge")


def test_sentence_transformers_rows_are_grouped_back_by_anchor(tmp_path):
    path = tmp_path / "st.jsonl"
    lines = [
        {"anchor": "q1", "positive": "p1", "negative": "n1"},
        {"anchor": "q1", "positive": "p1", "negative": "n2"},
        {"anchor": "q2", "positive": "p2", "negative_1": "m1", "negative_2": "m2"},
        {"anchor": "q1", "positive": "p1b", "negative": "n1"},
        {"query": "q3", "positive": "p3"},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    examples = list(read_examples(path, "sentence_transformers"))
    assert examples == [
        Example("q1", ["p1", "p1b"], ["n1", "n2"]),
        Example("q2", ["p2"], ["m1", "m2"]),
        Example("q3", ["p3"], []),
    ]


@pytest.mark.django_db
def test_the_three_snapshot_formats_give_the_same_examples(shared_data, settings, tmp_path):
    settings.SIEVE_SNAPSHOT_DIR = tmp_path / "snapshots"
    made = scifact_snapshots(
        shared_data, tmp_path, formats=("bge", "tevatron", "sentence_transformers"), queries=12
    )
    expected = {r["query"]: (sorted(r["pos"]), sorted(r["neg"])) for r in made["records"]}
    assert len(expected) == 12
    for format in ("bge", "tevatron", "sentence_transformers"):
        path = snapshot_file_path(snapshot=made[format])
        examples = list(read_examples(path, format))
        got = {e.query: (sorted(e.positives), sorted(e.negatives)) for e in examples}
        assert got == expected, format
        rows = build_rows(examples, num_negatives=2, seed=3)
        assert rows.stats["examples_used"] == 12
        assert len(rows) == sum(len(r["pos"]) for r in made["records"])
