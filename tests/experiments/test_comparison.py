"""RLHN's policy comparison in one click: the plan is checked up front, then snapshots,
training runs and evaluations follow one another; the experiments page shows them side by
side. The end-to-end test runs everything in-process on CPU, the queued tasks captured and
run one after the other."""

import re

import pytest
from django.urls import reverse

from core.errors import ApplicationError
from curation.embeddings import default_model_name
from curation.models import Candidate, CandidateRole, Decision, DecisionLabel, DecisionSource
from evaluation import tasks as evaluation_tasks
from evaluation.models import EvaluationRun
from evaluation.selectors import experiments_get
from evaluation.services.execution import evaluation_run_execute
from experiments import tasks as experiments_tasks
from experiments.models import PolicyComparison
from experiments.services import policy_comparison_create, policy_comparison_execute
from tests.conftest import SHARED_DATA
from tests.evaluation import TEST_MAX_SEQ_LENGTH, scifact_mini
from tests.support.environment import missing
from tests.support.sends import capture_sends
from tests.training import scifact_snapshots
from training import tasks as training_tasks
from training.models import TrainingRun
from training.services import training_run_execute

pytestmark = pytest.mark.django_db

TRAIN = {"max_steps": 3, "batch_size": 8, "query_max_length": 32, "passage_max_length": 96,
         "logging_steps": 1, "save_steps": 0}  # fmt: skip
TASK = "beir:scifact-mini"


@pytest.fixture
def folders(settings, tmp_path):
    if not SHARED_DATA.is_dir():
        missing(f"real data folder {SHARED_DATA} is not present")
    settings.SIEVE_SNAPSHOT_DIR = tmp_path / "snapshots"
    settings.SIEVE_MODEL_DIR = tmp_path / "models"
    settings.SIEVE_EVAL_DATA_DIRS = [tmp_path / "eval-data"]
    settings.SIEVE_EMBEDDING_CACHE_DIR = tmp_path / "embeddings"
    settings.SIEVE_EVAL_RESULTS_DIR = tmp_path / "results"
    scifact_mini(SHARED_DATA, tmp_path / "eval-data" / "scifact-mini", queries=15, distractors=40)
    return tmp_path


@pytest.fixture
def queued(monkeypatch):
    """Tasks sent to Celery, captured in order as (task name, job id) instead of sent."""
    return capture_sends(
        monkeypatch, experiments_tasks.policy_comparison, evaluation_tasks.evaluation_run,
        training_tasks.training_run, named=True,
    )  # fmt: skip


@pytest.fixture
def dataset(folders):
    """SciFact-train claims, two of whose negatives a curator confirmed as false negatives:
    the policies then give three different snapshots."""
    dataset = scifact_snapshots(SHARED_DATA, folders / "data", queries=16)["dataset"]
    negatives = Candidate.objects.filter(query__dataset=dataset, role=CandidateRole.NEGATIVE)
    for candidate in negatives.order_by("id")[:2]:
        Decision.objects.create(
            candidate=candidate, label=DecisionLabel.RELEVANT, source=DecisionSource.ADJUDICATION
        )
    return dataset


def test_the_plan_is_checked_before_anything_is_queued(dataset, queued):
    def error(**kwargs) -> ApplicationError:
        options = {"dataset": dataset, "train_config": TRAIN, "eval_tasks": [TASK], **kwargs}
        with pytest.raises(ApplicationError) as caught:
            policy_comparison_create(**options)
        return caught.value

    assert error(policies=["default", "keep_all"]).detail["field"] == "policies"
    assert error(policies=["relabel"]).detail["field"] == "policies"
    assert error(eval_tasks=["beir:nowhere"]).detail["field"] == "tasks"
    assert error(train_config={**TRAIN, "learning_rate": -1}).detail["field"] == "learning_rate"
    assert error(max_false_negatives=-1).detail["field"] == "max_false_negatives"
    assert not PolicyComparison.objects.exists() and queued == []


@pytest.mark.slow
def test_one_click_gives_three_fine_tunes_side_by_side(
    dataset, queued, curator, django_capture_on_commit_callbacks, client
):
    with django_capture_on_commit_callbacks(execute=True):
        comparison = policy_comparison_create(
            dataset=dataset, name="rlhn", train_config=TRAIN, eval_tasks=[TASK],
            eval_config={"max_seq_length": TEST_MAX_SEQ_LENGTH, "precision": "fp32"},
            user=curator,
        )  # fmt: skip
    assert queued == [("experiments.tasks.policy_comparison", comparison.pk)]

    # The comparison's worker: snapshots, then each training run queued with its evaluation.
    queued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        policy_comparison_execute(comparison_id=comparison.pk)
    comparison.refresh_from_db()
    assert comparison.status == "succeeded", comparison.error
    stats = comparison.stats
    assert set(stats["training_runs"]) == {"default", "remove_hn", "relabel"}
    trainings = TrainingRun.objects.in_bulk(list(stats["training_runs"].values()))
    shas = {trainings[pk].snapshot.sha256 for pk in trainings}
    assert len(shas) == 3  # the confirmed false negatives make three different files
    relabel = trainings[stats["training_runs"]["relabel"]].snapshot.manifest["counts"]
    assert relabel["false_negatives_relabelled"] == 2
    assert [name for name, _ in queued].count("training.tasks.training_run") == 3
    assert [name for name, _ in queued].count("evaluation.tasks.evaluation_run") == 1  # base

    # A redelivered comparison task starts nothing twice.
    PolicyComparison.objects.filter(pk=comparison.pk).update(status="running")
    policy_comparison_execute(comparison_id=comparison.pk)
    assert TrainingRun.objects.count() == 3 and EvaluationRun.objects.count() == 1

    # The comparison's own job only launched them: the page says how far the runs got.
    client.force_login(curator)
    detail = reverse("experiments:comparison_detail", args=[comparison.pk])
    progress = "training runs: 3 queued · evaluations: 3 waiting for their training"
    assert progress in client.get(detail).content.decode()

    # The gpu workers: each training run, then the evaluation it queued on success.
    for name, job_id in list(queued):
        if name == "training.tasks.training_run":
            with django_capture_on_commit_callbacks(execute=True):
                training_run_execute(run_id=job_id)
            assert TrainingRun.objects.get(pk=job_id).status == "succeeded"
    evaluations = [job_id for name, job_id in queued if name == "evaluation.tasks.evaluation_run"]
    assert len(evaluations) == 4  # the base model and the three fine-tunes
    for job_id in evaluations:
        evaluation_run_execute(run_id=job_id)
        run = EvaluationRun.objects.get(pk=job_id)
        assert run.status == "succeeded", run.error

    tasks, experiments = experiments_get()
    assert tasks == [TASK]
    (experiment,) = experiments
    assert experiment.policies == ["default", "relabel", "remove_hn"]
    assert len(experiment.rows) == 4 and not experiment.rows[0].key.startswith("training:")

    client.force_login(curator)
    page = client.get(reverse("experiments:comparison_detail", args=[comparison.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    for pk in stats["training_runs"].values():
        assert reverse("training:run_detail", args=[pk]) in html
    assert "succeeded" in html
    assert "training runs: 3 succeeded · evaluations: 3 succeeded" in html


def test_the_form_launches_for_curators_only(dataset, queued, client, curator, annotator):
    url = reverse("experiments:comparison_new", args=[dataset.pk])
    client.force_login(annotator)
    assert client.get(url).status_code == 403
    client.force_login(curator)
    page = client.get(url)
    assert page.status_code == 200 and "Compare policies" in page.content.decode()
    # The base model field names the offline default; its folder in the virtualenv is no
    # value a person should read or keep.
    field = re.search(r'<input[^>]*name="train-base_model"[^>]*>', page.content.decode())[0]
    assert 'placeholder="sentence-transformers/all-MiniLM-L6-v2 (offline copy)"' in field
    assert "value=" not in field and "site-packages" not in page.content.decode()
    assert (
        reverse("experiments:comparison_new", args=[dataset.pk])
        in client.get(reverse("curation:dataset_detail", args=[dataset.pk])).content.decode()
    )

    launch = reverse("experiments:comparison_launch", args=[dataset.pk])
    form = {
        "policies": ["default", "remove_hn", "relabel"], "max_false_negatives": 7,
        "tasks": [TASK], "mode": "full",
        **{f"train-{k}": v for k, v in {
            "method": "lora", "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.1,
            "num_negatives": 3, "temperature": 0.05, "learning_rate": 1e-4, "batch_size": 8,
            "epochs": 1, "max_steps": 3, "query_max_length": 32, "passage_max_length": 96,
            "mini_batch_size": 8, "bf16": "auto", "seed": 0, "warmup_ratio": 0.1,
            "weight_decay": 0.0, "logging_steps": 1, "save_steps": 0,
        }.items()},
    }  # fmt: skip
    bad = client.post(launch, {**form, "policies": ["default"]})
    assert bad.status_code == 400 and "at least two policies" in bad.content.decode()
    response = client.post(launch, form)
    comparison = PolicyComparison.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("experiments:comparison_detail", args=[comparison.pk])
    assert comparison.train_config["max_steps"] == 3 and comparison.eval_tasks == [TASK]
    # Left empty, the field took the default: the offline folder, as runs always recorded.
    assert comparison.train_config["base_model"] == default_model_name()
    assert comparison.created_by == curator


def test_the_api_starts_and_shows_a_comparison(dataset, queued, curator, viewer):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(viewer)
    body = {"dataset": dataset.pk, "train_config": TRAIN, "eval_tasks": [TASK]}
    assert api.post("/api/policy-comparisons/", body, format="json").status_code == 403
    api.force_authenticate(curator)
    bad = api.post("/api/policy-comparisons/", {**body, "policies": ["relabel"]}, format="json")
    assert bad.status_code == 400 and "at least two policies" in str(bad.json())
    created = api.post("/api/policy-comparisons/", body, format="json")
    assert created.status_code == 202
    pk = created.json()["id"]
    assert created.json()["policies"] == ["default", "remove_hn", "relabel"]
    detail = api.get(reverse("api:comparison-detail", args=[pk])).json()
    assert detail["status"] == "queued" and detail["eval_tasks"] == [TASK]
    api.force_authenticate(viewer)
    assert api.get("/api/policy-comparisons/").json()["results"][0]["id"] == pk
