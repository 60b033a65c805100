"""The "Evaluate a model" form as a curator meets it: it answers without listing mteb's
registry, offers Sieve's datasets that hold an evaluation split, finds registry tasks by
search, launches on a dataset task, and speaks of the machine it runs on."""

import pytest
from django.urls import reverse

from core.ml.hardware import Machine
from core.models import JobStatus
from curation.models import ImportJob
from evaluation import tasks
from evaluation.models import EvaluationRun
from evaluation.services import task_specs
from tests.factories import CandidateFactory, DatasetFactory, QueryFactory
from tests.support.sends import capture_sends

pytestmark = pytest.mark.django_db

REGISTRY = [
    {"name": "NFCorpus", "splits": ["test"], "description": "Nutrition questions, medical."},
    {"name": "SciFact", "splits": ["test"], "description": "Scientific claims."},
    {"name": "MSMARCO", "splits": ["dev"], "description": "Web search queries."},
    *[{"name": f"Task{i:03d}", "splits": ["test"], "description": "filler"} for i in range(400)],
]
CPU = Machine(gpu=False, gpu_names=(), bitsandbytes=False)
GPU_4BIT = Machine(gpu=True, gpu_names=("NVIDIA H200",), bitsandbytes=True)


def imported(name: str, split: str, *, queries: int = 2):
    """A dataset as a BEIR import of ``split`` leaves it: queries with a positive each."""
    dataset = DatasetFactory(name=name, format="beir", query_count=queries)
    for _ in range(queries):
        CandidateFactory(query=QueryFactory(dataset=dataset), role="positive")
    ImportJob.objects.create(
        dataset_name=name, source_path="/tmp/x", status=JobStatus.SUCCEEDED, dataset=dataset,
        stats={"format": "beir", "split": split, "queries_added": queries},
    )  # fmt: skip
    return dataset


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setattr(task_specs, "_registry_tasks", lambda: REGISTRY)


@pytest.fixture
def no_registry(monkeypatch):
    def refuse():
        raise AssertionError("the form listed mteb's registry")

    monkeypatch.setattr(task_specs, "_registry_tasks", refuse)


@pytest.fixture
def cpu(monkeypatch):
    import evaluation.forms
    import evaluation.views

    monkeypatch.setattr(evaluation.views, "machine_detect", lambda: CPU)
    monkeypatch.setattr(evaluation.forms, "machine_detect", lambda: CPU)


def test_the_form_answers_without_the_registry_and_offers_evaluation_splits(
    client, curator, no_registry, cpu
):
    test_split = imported("scifact-test", "test", queries=3)
    imported("msmarco-dev", "dev")
    imported("scifact-train", "train")
    client.force_login(curator)
    page = client.get(reverse("evaluation:new")).content.decode()
    assert "scifact-test" in page and "msmarco-dev" in page
    assert "scifact-train" not in page  # a training split is no benchmark
    assert f'value="dataset:{test_split.pk}"' in page
    assert "Sieve dataset, test split: 3 queries" in page
    # The registry arrives with the picker's search, not with the page.
    assert reverse("evaluation:task_search") in page and "Loading mteb" in page


def test_search_finds_registry_tasks_and_leaves_out_the_chosen_ones(client, curator, registry):
    imported("nfcorpus-local", "test")
    client.force_login(curator)
    url = reverse("evaluation:task_search")
    first = client.get(url, {"q": "nfc"}, HTTP_HX_REQUEST="true").content.decode()
    assert 'value="NFCorpus"' in first and "nfcorpus-local" in first
    assert first.index("nfcorpus-local") < first.index('value="NFCorpus"')  # offline first
    by_words = client.get(url, {"q": "medical"}, HTTP_HX_REQUEST="true").content.decode()
    assert 'value="NFCorpus"' in by_words and 'value="SciFact"' not in by_words
    chosen = client.get(url, {"q": "nfc", "tasks": ["NFCorpus"]}).content.decode()
    assert 'value="NFCorpus"' not in chosen
    many = client.get(url, {"q": "task"}).content.decode()
    assert many.count('name="tasks"') == 25 and "375 more matches" in many
    start = client.get(url).content.decode()  # nothing typed: offline + well-known ones
    assert 'value="SciFact"' in start and 'value="Task000"' not in start


def test_search_without_javascript_comes_back_in_the_page(client, curator, registry, cpu):
    client.force_login(curator)
    page = client.get(reverse("evaluation:new"), {"q": "scifact"}).content.decode()
    assert 'value="SciFact"' in page and "Loading mteb" not in page


def test_launch_on_a_dataset_and_a_registry_task(client, curator, registry, cpu, monkeypatch):
    capture_sends(monkeypatch, tasks.evaluation_run)
    dataset = imported("scifact-test", "test")
    client.force_login(curator)
    response = client.post(
        reverse("evaluation:launch"),
        {"tasks": [f"dataset:{dataset.pk}", "SciFact"], "mode": "full", "split": "test",
         "batch_size": 32, "seed": 0},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[-2000:]
    run = EvaluationRun.objects.get()
    assert run.tasks == [f"dataset:{dataset.pk}", "SciFact"]
    assert run.config["task_splits"] == {f"dataset:{dataset.pk}": "test", "SciFact": "test"}
    page = client.get(response["Location"]).content.decode()
    assert "runs on the CPU" in page and "GPU workers" not in page
    assert "scifact-test" in page  # the task by its dataset's name


def test_an_unknown_dataset_or_no_task_comes_back_on_the_picker(client, curator, registry, cpu):
    client.force_login(curator)
    url = reverse("evaluation:launch")
    base = {"mode": "full", "split": "test", "batch_size": 32, "seed": 0}
    empty = client.post(url, base)
    assert empty.status_code == 400 and "choose at least one task" in empty.content.decode()
    unknown = client.post(url, {**base, "tasks": ["dataset:999999", "SciFact"]})
    page = unknown.content.decode()
    assert unknown.status_code == 400 and "no dataset imported from an evaluation split" in page
    # What was chosen stays chosen.
    assert 'value="SciFact" form="launch-form" checked' in page


def test_the_wording_follows_the_machine(client, curator, no_registry, monkeypatch):
    import evaluation.forms
    import evaluation.views

    client.force_login(curator)
    for machine, says, never in (
        (CPU, "runs on the CPU (no GPU on this machine)", ("4-bit", "GPU workers")),
        (GPU_4BIT, "runs on the GPU (NVIDIA H200)", ("no GPU",)),
    ):
        monkeypatch.setattr(evaluation.views, "machine_detect", lambda m=machine: m)
        monkeypatch.setattr(evaluation.forms, "machine_detect", lambda m=machine: m)
        page = client.get(reverse("evaluation:new")).content.decode()
        assert says in page
        assert all(word not in page for word in never), machine
    assert "4-bit model on the GPU" in page


def test_the_fine_tuned_list_says_which_runs_are_rerankers(client, curator, no_registry, cpu):
    """A reranker run is evaluated as a reranker (over its first stage): the list says so."""
    from tests.factories import TrainingRunFactory

    embedder = TrainingRunFactory(name="bge on v2", status=JobStatus.SUCCEEDED)
    reranker = TrainingRunFactory(
        name="ce on v2", status=JobStatus.SUCCEEDED, config={"model_kind": "reranker"},
        base_model="/models/cross-encoder/ms-marco-MiniLM-L6-v2",
    )  # fmt: skip
    TrainingRunFactory(name="still running", status=JobStatus.RUNNING)
    client.force_login(curator)
    page = client.get(reverse("evaluation:new")).content.decode()
    assert f">#{reranker.pk} ce on v2 · reranker · ms-marco-MiniLM-L6-v2 (" in page
    assert f">#{embedder.pk} bge on v2 · embedder · " in page
    assert "still running" not in page
