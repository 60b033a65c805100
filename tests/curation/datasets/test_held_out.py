"""Queries held out of a snapshot for evaluation (issue 10): picked by seed and query id alone
(the same ones under every policy), left out of the training file, written beside it with
the curated relevant passages, and offered — and scored — as the task ``heldout:<id>``."""

import json

import pytest
from django.urls import reverse

from core.errors import ApplicationError
from curation.datasets.held_out import held_out_pick
from curation.datasets.snapshots import snapshot_create, snapshot_file_path
from curation.models import CandidateRole, DecisionLabel, ExportJob
from evaluation.services.task_specs import (
    evaluation_task_build,
    evaluation_task_labels,
    evaluation_task_splits_resolve,
    evaluation_tasks_offline,
)
from tests.factories import CandidateFactory, DatasetFactory, DecisionFactory, QueryFactory

pytestmark = pytest.mark.django_db

QUERIES = 40


def test_the_pick_is_a_seeded_rule_of_the_query_id():
    ids = [f"q{i}" for i in range(20_000)]
    picked = {q for q in ids if held_out_pick(q, fraction=0.1, seed=0)}
    assert 0.09 < len(picked) / len(ids) < 0.11
    assert picked == {q for q in ids if held_out_pick(q, fraction=0.1, seed=0)}
    other_seed = {q for q in ids if held_out_pick(q, fraction=0.1, seed=1)}
    assert other_seed != picked
    larger = {q for q in ids if held_out_pick(q, fraction=0.2, seed=0)}
    assert picked < larger  # a larger share holds out the same queries and more
    assert not any(held_out_pick(q, fraction=0.0, seed=0) for q in ids[:100])


@pytest.fixture
def dataset(settings, tmp_path):
    """40 queries, each with a positive and two negatives; in every query the first negative
    is decided a false negative, and q3's positive is decided not relevant."""
    settings.SIEVE_SNAPSHOT_DIR = tmp_path / "snapshots"
    ds = DatasetFactory(name="held")
    for i in range(QUERIES):
        query = QueryFactory(dataset=ds, query_id=f"q{i}", text=f"question {i}")
        positive = CandidateFactory(
            query=query, role=CandidateRole.POSITIVE, passage__doc_id=f"p{i}",
            passage__text=f"answer {i}",
        )  # fmt: skip
        first = CandidateFactory(
            query=query, rank=1, passage__doc_id=f"n{i}a", passage__text=f"other {i}a"
        )
        CandidateFactory(query=query, rank=2, passage__doc_id=f"n{i}b", passage__text=f"b {i}")
        DecisionFactory(candidate=first, label=DecisionLabel.RELEVANT)
        if i == 3:
            DecisionFactory(candidate=positive, label=DecisionLabel.NOT_RELEVANT)
    return ds


def _training_ids(snapshot) -> set[str]:
    lines = snapshot_file_path(snapshot=snapshot).read_text().splitlines()
    return {json.loads(line)["query_id"] for line in lines}


def test_held_out_queries_leave_the_training_file_the_same_under_every_policy(dataset, settings):
    default = snapshot_create(dataset=dataset, policy="default", format="tevatron",
                              held_out=0.25, held_out_seed=7)  # fmt: skip
    relabel = snapshot_create(dataset=dataset, policy="relabel", format="tevatron",
                              held_out=0.25, held_out_seed=7)  # fmt: skip
    expected = {f"q{i}" for i in range(QUERIES) if held_out_pick(f"q{i}", fraction=0.25, seed=7)}
    assert 0 < len(expected) < QUERIES
    for snapshot in (default, relabel):
        held = snapshot.manifest["held_out"]
        assert (held["fraction"], held["seed"], held["queries"]) == (0.25, 7, len(expected))
        assert _training_ids(snapshot) == {f"q{i}" for i in range(QUERIES)} - expected
        assert snapshot.manifest["counts"]["queries_out"] == QUERIES - len(expected)
    # One benchmark for both: the same file, named by its content.
    assert default.manifest["held_out"]["sha256"] == relabel.manifest["held_out"]["sha256"]
    path = settings.SIEVE_SNAPSHOT_DIR / default.manifest["held_out"]["file_path"]
    records = {r["query_id"]: r for r in map(json.loads, path.read_text().splitlines())}
    assert set(records) == expected
    for query_id, record in records.items():
        i = query_id[1:]
        # The curated truth: the positive unless decided not relevant, plus the decided FN.
        wanted = [f"n{i}a"] if i == "3" else [f"p{i}", f"n{i}a"]
        assert record["relevant"] == wanted and record["query"] == f"question {i}"

    with pytest.raises(ApplicationError) as caught:
        snapshot_create(dataset=dataset, policy="default", format="bge", held_out=0.6)
    assert caught.value.detail["field"] == "held_out"


def test_the_held_out_queries_are_an_evaluation_task(dataset):
    snapshot = snapshot_create(dataset=dataset, policy="relabel", format="bge", held_out=0.25)
    spec = f"heldout:{snapshot.pk}"
    offered = {o.spec: o for o in evaluation_tasks_offline()}
    assert spec in offered and offered[spec].offline
    assert evaluation_task_splits_resolve([spec], "dev") == {spec: "test"}
    assert evaluation_task_labels([spec])[spec] == f"held out of snapshot #{snapshot.pk}"
    with pytest.raises(ApplicationError, match="no snapshot with queries held out"):
        evaluation_task_splits_resolve(["heldout:999999"], "test")

    task = evaluation_task_build(spec, "test")
    task.load_data()
    data = task.dataset["default"]["test"]
    held = snapshot.manifest["held_out"]
    assert len(data["queries"]) == held["queries"] and len(data["corpus"]) == QUERIES * 3
    qrels = data["relevant_docs"]
    assert all(set(docs.values()) == {1} for docs in qrels.values())
    assert sum(len(docs) for docs in qrels.values()) == held["relevant"]


def test_the_freeze_form_holds_queries_out(dataset, client, curator, monkeypatch):
    from curation import tasks
    from tests.support.sends import capture_sends

    capture_sends(monkeypatch, tasks.export_job_run)
    client.force_login(curator)
    url = reverse("curation:snapshot_freeze", args=[dataset.pk])
    data = {"policy": "default", "format": "bge", "max_false_negatives": 7}
    refused = client.post(url, {**data, "held_out_percent": 60})
    assert refused.status_code == 400
    response = client.post(url, {**data, "held_out_percent": 10, "held_out_seed": 3})
    assert response.status_code == 302
    job = ExportJob.objects.get()
    assert (job.held_out, job.held_out_seed) == (0.1, 3)


def test_the_snapshot_page_links_its_held_out_queries_to_the_evaluation_form(
    dataset, client, curator, viewer
):
    snapshot = snapshot_create(dataset=dataset, policy="relabel", format="bge", held_out=0.25)
    url = reverse("curation:snapshot_detail", args=[snapshot.pk])
    link = f"{reverse('evaluation:new')}?tasks=heldout:{snapshot.pk}"
    client.force_login(curator)
    html = client.get(url).content.decode()
    assert f'href="{link}"' in html and ">evaluate a model on them</a>" in html
    assert "<code>heldout:" not in html  # the task's id only on hover
    client.force_login(viewer)  # who cannot launch one reads what they are
    html = client.get(url).content.decode()
    assert link not in html and "an evaluation task of their own" in html
