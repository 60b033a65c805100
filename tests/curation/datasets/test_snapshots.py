"""snapshot_create on a hand-built dataset: exact content per policy, the k rule, latest
decision wins, stable sha256, manifest counts, deduplication."""

import hashlib
import json

import pytest
from django.core.management import call_command

from core.errors import ApplicationError
from curation.datasets.selectors import dataset_candidates_stream, decision_cutoff
from curation.datasets.snapshots import snapshot_create, snapshot_file_path
from curation.models import CandidateRole, Decision, DecisionLabel, Snapshot
from tests.factories import CandidateFactory, DatasetFactory, DecisionFactory, QueryFactory

pytestmark = pytest.mark.django_db

NOT_RELEVANT = DecisionLabel.NOT_RELEVANT
POSITIVE = CandidateRole.POSITIVE


@pytest.fixture(autouse=True)
def snapshot_dir(settings, tmp_path):
    settings.SIEVE_SNAPSHOT_DIR = tmp_path / "snapshots"
    return settings.SIEVE_SNAPSHOT_DIR


def add(query, doc_id, role=CandidateRole.NEGATIVE, rank=None, score=None, title=""):
    return CandidateFactory(
        query=query,
        role=role,
        rank=rank,
        teacher_score=score,
        passage__doc_id=doc_id,
        passage__title=title,
        passage__text=f"text of {doc_id}",
    )


def decide(candidate, *labels):
    for label in labels:
        DecisionFactory(candidate=candidate, label=label)


@pytest.fixture
def dataset():
    """Six queries exercising every rule:

    q01  p + n1..n3; n2 confirmed FN (not_relevant, then relevant: latest wins)
    q02  p + n1..n3; n1 was relevant, then not_relevant: latest wins, no FN
    q03  p + 8 FNs + 1 plain negative: ambiguous at k = 7
    q04  p + 7 FNs + 1 plain negative: kept at k = 7
    q05  no positive; n1 FN, n2 plain
    q06  p (decided relevant: positives are never FNs) + n1
    """
    ds = DatasetFactory(name="hand-built")
    q = {
        i: QueryFactory(dataset=ds, query_id=f"q0{i}", text=f"query {i}")
        for i in (4, 2, 6, 1, 5, 3)
    }

    add(q[1], "q01-p", POSITIVE)
    # created out of rank order on purpose: output follows rank, not insertion
    add(q[1], "q01-n3", rank=3)
    n1 = add(q[1], "q01-n1", rank=1)
    n2 = add(q[1], "q01-n2", rank=2)
    decide(n2, NOT_RELEVANT, DecisionLabel.RELEVANT)
    decide(n1, NOT_RELEVANT)

    add(q[2], "q02-p", POSITIVE)
    first = add(q[2], "q02-n1", rank=1)
    add(q[2], "q02-n2", rank=2)
    add(q[2], "q02-n3", rank=3)
    decide(first, DecisionLabel.RELEVANT, NOT_RELEVANT)

    for qi, fns in ((3, 8), (4, 7)):
        add(q[qi], f"q0{qi}-p", POSITIVE)
        for r in range(1, fns + 1):
            decide(add(q[qi], f"q0{qi}-fn{r}", rank=r), DecisionLabel.RELEVANT)
        add(q[qi], f"q0{qi}-plain", rank=fns + 1)

    decide(add(q[5], "q05-n1", rank=1), DecisionLabel.RELEVANT)
    add(q[5], "q05-n2", rank=2)

    decide(add(q[6], "q06-p", POSITIVE), DecisionLabel.RELEVANT)
    add(q[6], "q06-n1", rank=1)
    return ds


def read_lines(snapshot):
    path = snapshot_file_path(snapshot=snapshot)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def content(snapshot):
    """query_id -> (positive doc ids, negative doc ids), in file order."""
    return {
        row["query_id"]: (
            [p["docid"] for p in row["positive_passages"]],
            [n["docid"] for n in row["negative_passages"]],
        )
        for row in read_lines(snapshot)
    }


def fns(qi, count):
    return [f"q0{qi}-fn{r}" for r in range(1, count + 1)]


def test_default_keeps_everything_as_imported(dataset):
    snapshot = snapshot_create(dataset=dataset, policy="default", format="tevatron")
    assert content(snapshot) == {
        "q01": (["q01-p"], ["q01-n1", "q01-n2", "q01-n3"]),
        "q02": (["q02-p"], ["q02-n1", "q02-n2", "q02-n3"]),
        "q03": (["q03-p"], fns(3, 8) + ["q03-plain"]),
        "q04": (["q04-p"], fns(4, 7) + ["q04-plain"]),
        "q06": (["q06-p"], ["q06-n1"]),
    }
    # file order is query_id order, whatever order the queries were created in
    assert [row["query_id"] for row in read_lines(snapshot)] == ["q01", "q02", "q03", "q04", "q06"]
    assert snapshot.manifest["counts"]["dropped_no_positive"] == 1


def test_remove_drops_queries_with_a_false_negative(dataset):
    snapshot = snapshot_create(dataset=dataset, policy="remove", format="tevatron")
    assert content(snapshot) == {
        "q02": (["q02-p"], ["q02-n1", "q02-n2", "q02-n3"]),
        "q06": (["q06-p"], ["q06-n1"]),
    }


def test_remove_hn_drops_only_the_false_negatives(dataset):
    snapshot = snapshot_create(dataset=dataset, policy="remove_hn", format="tevatron")
    assert content(snapshot) == {
        "q01": (["q01-p"], ["q01-n1", "q01-n3"]),
        "q02": (["q02-p"], ["q02-n1", "q02-n2", "q02-n3"]),
        "q04": (["q04-p"], ["q04-plain"]),
        "q06": (["q06-p"], ["q06-n1"]),
    }


def test_relabel_moves_false_negatives_to_the_positives(dataset):
    snapshot = snapshot_create(dataset=dataset, policy="relabel", format="tevatron")
    assert content(snapshot) == {
        "q01": (["q01-p", "q01-n2"], ["q01-n1", "q01-n3"]),
        "q02": (["q02-p"], ["q02-n1", "q02-n2", "q02-n3"]),
        "q04": (["q04-p"] + fns(4, 7), ["q04-plain"]),
        "q05": (["q05-n1"], ["q05-n2"]),
        "q06": (["q06-p"], ["q06-n1"]),
    }


def test_manifest_counts(dataset):
    snapshot = snapshot_create(dataset=dataset, policy="relabel", format="tevatron")
    assert snapshot.manifest["counts"] == {
        "queries_in": 6,
        "queries_out": 5,
        "dropped_ambiguous": 1,
        "dropped_remove": 0,
        "dropped_no_positive": 0,
        "dropped_no_negative": 0,
        "positives": 2 + 1 + 8 + 1 + 1,
        "negatives": 2 + 3 + 1 + 1 + 1,
        "false_negatives_confirmed": 1 + 8 + 7 + 1,
        "false_negatives_removed": 0,
        "false_negatives_relabelled": 1 + 7 + 1,
        "positives_removed": 0,
        "rows": 5,
    }
    manifest = snapshot.manifest
    assert manifest["policy"] == "relabel"
    assert manifest["max_false_negatives"] == 7
    assert manifest["format"] == "tevatron"
    assert manifest["dataset"] == {"id": dataset.pk, "name": "hand-built"}
    assert manifest["decision_cutoff"] == Decision.objects.latest("id").pk
    assert manifest["sha256"] == snapshot.sha256
    assert manifest["created_at"] == snapshot.created_at.isoformat()
    assert manifest["sieve_version"]

    remove = snapshot_create(dataset=dataset, policy="remove", format="tevatron").manifest["counts"]
    assert (remove["queries_out"], remove["dropped_remove"], remove["dropped_ambiguous"]) == (
        2,
        3,
        1,
    )
    remove_hn = snapshot_create(dataset=dataset, policy="remove_hn", format="tevatron")
    assert remove_hn.manifest["counts"]["false_negatives_removed"] == 1 + 7
    assert remove_hn.manifest["counts"]["dropped_no_positive"] == 1


def test_k_is_a_parameter(dataset):
    lenient = snapshot_create(
        dataset=dataset, policy="remove_hn", format="tevatron", max_false_negatives=8
    )
    assert content(lenient)["q03"] == (["q03-p"], ["q03-plain"])
    strict = snapshot_create(
        dataset=dataset, policy="remove_hn", format="tevatron", max_false_negatives=6
    )
    assert "q04" not in content(strict)
    assert strict.manifest["counts"]["dropped_ambiguous"] == 2


def test_sha256_is_the_file_digest_stable_and_follows_decisions(dataset, snapshot_dir):
    first = snapshot_create(dataset=dataset, policy="remove_hn", format="bge")
    data = snapshot_file_path(snapshot=first).read_bytes()
    assert hashlib.sha256(data).hexdigest() == first.sha256
    assert first.size_bytes == len(data)

    again = snapshot_create(dataset=dataset, policy="remove_hn", format="bge")
    assert again.pk == first.pk  # same bytes: the existing snapshot, not a duplicate
    assert Snapshot.objects.count() == 1

    q02_n2 = dataset.queries.get(query_id="q02").candidates.get(passage__doc_id="q02-n2")
    decide(q02_n2, DecisionLabel.RELEVANT)
    changed = snapshot_create(dataset=dataset, policy="remove_hn", format="bge")
    assert changed.sha256 != first.sha256
    assert "text of q02-n2" not in snapshot_file_path(snapshot=changed).read_text()
    # the first snapshot is untouched
    assert snapshot_file_path(snapshot=first).read_bytes() == data

    decide(q02_n2, NOT_RELEVANT)  # the latest decision wins again: back to the first bytes
    reverted = snapshot_create(dataset=dataset, policy="remove_hn", format="bge")
    assert reverted.pk == first.pk
    assert Snapshot.objects.count() == 2
    # no temporary files left behind
    assert not [p for p in snapshot_dir.rglob(".partial-*")]


def test_same_bytes_under_another_policy_is_another_snapshot(dataset):
    Decision.objects.all().delete()
    default = snapshot_create(dataset=dataset, policy="default", format="bge")
    relabel = snapshot_create(dataset=dataset, policy="relabel", format="bge")
    assert default.sha256 == relabel.sha256
    assert default.pk != relabel.pk


def test_decisions_after_the_cutoff_are_not_seen(dataset):
    cutoff = decision_cutoff()
    q02_n2 = dataset.queries.get(query_id="q02").candidates.get(passage__doc_id="q02-n2")
    decide(q02_n2, DecisionLabel.RELEVANT)
    before = {
        q.query_id: q for q in dataset_candidates_stream(dataset=dataset, decision_cutoff=cutoff)
    }
    after = {
        q.query_id: q
        for q in dataset_candidates_stream(dataset=dataset, decision_cutoff=decision_cutoff())
    }
    assert [n.false_negative for n in before["q02"].negatives] == [False, False, False]
    assert any(n.doc_id == "q02-n2" and n.false_negative for n in after["q02"].negatives)


def test_stream_batches_do_not_lose_or_mix_queries(dataset):
    whole = list(dataset_candidates_stream(dataset=dataset, decision_cutoff=decision_cutoff()))
    in_pairs = list(
        dataset_candidates_stream(dataset=dataset, decision_cutoff=decision_cutoff(), batch_size=2)
    )
    assert [q.query_id for q in whole] == ["q01", "q02", "q03", "q04", "q05", "q06"]
    assert in_pairs == whole


def test_stream_cost_does_not_grow_with_the_number_of_queries(dataset, django_assert_num_queries):
    for i in range(50):
        add(QueryFactory(dataset=dataset, query_id=f"x{i:02}"), f"x{i:02}-p", POSITIVE)
    cutoff = decision_cutoff()
    # one page of queries + one statement for all their candidates and latest decisions,
    # for 56 queries as for 6
    with django_assert_num_queries(2):
        streamed = list(dataset_candidates_stream(dataset=dataset, decision_cutoff=cutoff))
    assert len(streamed) == 56
    with django_assert_num_queries(2 * 3):
        in_pages = list(
            dataset_candidates_stream(dataset=dataset, decision_cutoff=cutoff, batch_size=20)
        )
    assert in_pages == streamed


def test_bge_scores_and_title(dataset):
    q = QueryFactory(dataset=dataset, query_id="q07", text="scored")
    add(q, "q07-p", POSITIVE, score=0.75)
    add(q, "q07-n1", rank=1, score=0.5, title="Title")
    snapshot = snapshot_create(dataset=dataset, policy="default", format="bge")
    rows = {row["query"]: row for row in read_lines(snapshot)}
    assert rows["scored"] == {
        "query": "scored",
        "pos": ["text of q07-p"],
        "neg": ["Title text of q07-n1"],
        "pos_scores": [0.75],
        "neg_scores": [0.5],
    }
    assert "pos_scores" not in rows["query 1"]


def test_sentence_transformers_triplets(dataset):
    snapshot = snapshot_create(dataset=dataset, policy="remove", format="sentence_transformers")
    rows = read_lines(snapshot)
    assert rows[:3] == [
        {"anchor": "query 2", "positive": "text of q02-p", "negative": f"text of q02-n{i}"}
        for i in (1, 2, 3)
    ]
    assert rows[3:] == [
        {"anchor": "query 6", "positive": "text of q06-p", "negative": "text of q06-n1"}
    ]
    assert snapshot.manifest["counts"]["rows"] == 4
    assert snapshot.manifest["layout"] == "triplets"


def test_sentence_transformers_triplet_query_left_without_negatives_is_counted(dataset):
    snapshot = snapshot_create(dataset=dataset, policy="remove_hn", format="sentence_transformers")
    counts = snapshot.manifest["counts"]
    assert counts["dropped_no_negative"] == 0
    # q04 keeps one plain negative; strip it to leave the query with none
    dataset.queries.get(query_id="q04").candidates.filter(passage__doc_id="q04-plain").delete()
    counts = snapshot_create(
        dataset=dataset, policy="remove_hn", format="sentence_transformers"
    ).manifest["counts"]
    assert counts["dropped_no_negative"] == 1
    assert counts["queries_out"] == 3


def test_sentence_transformers_pairs_when_dataset_has_no_negatives():
    ds = DatasetFactory(name="positives-only")
    for i in (1, 2):
        q = QueryFactory(dataset=ds, query_id=f"q{i}", text=f"question {i}")
        add(q, f"d{i}", POSITIVE)
    snapshot = snapshot_create(dataset=ds, policy="default", format="sentence_transformers")
    assert read_lines(snapshot) == [
        {"anchor": "question 1", "positive": "text of d1"},
        {"anchor": "question 2", "positive": "text of d2"},
    ]
    assert snapshot.manifest["layout"] == "pairs"


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"policy": "keep", "format": "bge"}, "policy"),
        ({"policy": "default", "format": "csv"}, "format"),
        ({"policy": "default", "format": "bge", "max_false_negatives": -1}, "max_false_negatives"),
    ],
)
def test_bad_arguments_name_the_field(dataset, kwargs, field):
    with pytest.raises(ApplicationError) as error:
        snapshot_create(dataset=dataset, **kwargs)
    assert error.value.detail["field"] == field
    assert not Snapshot.objects.exists()


def test_export_snapshot_command(dataset, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    call_command("export_snapshot", "hand-built", policy="relabel", format="tevatron", out=str(out))
    snapshot = Snapshot.objects.get()
    assert out.read_bytes() == snapshot_file_path(snapshot=snapshot).read_bytes()
    printed = capsys.readouterr().out
    assert snapshot.sha256 in printed
    assert "queries_out 5" in printed


def test_positives_decided_not_relevant_leave_the_snapshot():
    """A rejected synthetic triplet (its positive decided not relevant) and an overturned
    imported positive: gone under remove_hn, kept under default."""
    ds = DatasetFactory(name="rejected")
    kept = QueryFactory(dataset=ds, query_id="q1", text="query 1")
    decide(add(kept, "q1-wrong", POSITIVE), NOT_RELEVANT)
    add(kept, "q1-p", POSITIVE)
    add(kept, "q1-n1", rank=1)
    synthetic = QueryFactory(dataset=ds, query_id="q2", text="query 2")
    decide(add(synthetic, "q2-p", POSITIVE), DecisionLabel.RELEVANT, NOT_RELEVANT)
    add(synthetic, "q2-n1", rank=1)

    cleaned = snapshot_create(dataset=ds, policy="remove_hn", format="tevatron")
    assert content(cleaned) == {"q1": (["q1-p"], ["q1-n1"])}
    counts = cleaned.manifest["counts"]
    assert counts["positives_removed"] == 2 and counts["dropped_no_positive"] == 1
    default = snapshot_create(dataset=ds, policy="default", format="tevatron")
    assert content(default) == {
        "q1": (["q1-wrong", "q1-p"], ["q1-n1"]),
        "q2": (["q2-p"], ["q2-n1"]),
    }
