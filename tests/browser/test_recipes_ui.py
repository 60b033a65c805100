"""The papers' recipes in a real browser (issue 12): the Train form's several snapshots and
reranker kind, and a reranker beside the embedders on the leaderboard — with the pictures
the README shows."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from tests.browser.conftest import log_in, screenshot
from tests.factories import (
    DatasetFactory,
    EvalResultFactory,
    EvaluationRunFactory,
    SnapshotFactory,
    TrainingRunFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BASE = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture
def curator(django_user_model):
    user = django_user_model.objects.create_user(username="cora", password="pw-cora")
    user.groups.add(Group.objects.get_or_create(name="curator")[0])
    return user


def test_the_train_form_offers_other_snapshots_and_the_reranker_kind(
    live_server, new_page, curator
):
    dataset = DatasetFactory(name="msmarco-rlhn")
    snapshot = SnapshotFactory(dataset=dataset, policy="relabel")
    other = SnapshotFactory(dataset=DatasetFactory(name="scifact-train"), policy="relabel")
    page = new_page()
    log_in(page, live_server, "cora", "pw-cora")
    page.goto(live_server.url + reverse("training:new", args=[snapshot.pk]))
    page.click("details.other-snapshots summary")
    listed = page.inner_text("details.other-snapshots")
    assert f"#{other.pk}" in listed and "scifact-train" in listed
    kinds = page.locator("#id_model_kind option").all_inner_texts()
    assert any(kind.startswith("reranker") for kind in kinds)
    orders = page.locator("#id_task_order option").all_inner_texts()
    assert [o.split(":")[0] for o in orders] == ["proportional", "round robin", "sequential"]
    page.fill("#id_more_snapshots", str(other.pk))
    page.locator("#id_more_snapshots").scroll_into_view_if_needed()
    screenshot(page, "training-several-snapshots")
    assert page.errors == []


def test_a_reranker_sits_beside_the_embedders_with_its_delta(live_server, new_page, curator):
    suffix = f"|rerank top-100 of {BASE}"
    embedder = EvaluationRunFactory(model_ref=BASE, model_label="all-MiniLM-L6-v2")
    base_reranker = EvaluationRunFactory(
        model_ref=BASE, model_key=BASE + suffix, base_model=BASE + suffix,
        model_label="all-MiniLM-L6-v2 (reranks the top 100 of all-MiniLM-L6-v2)",
        config={"rerank": {"first_stage": BASE, "first_stage_label": "all-MiniLM-L6-v2",
                           "top_k": 100}},
    )  # fmt: skip
    training = TrainingRunFactory(
        base_model=BASE, method="full", name="reranker on relabel",
        config={"model_kind": "reranker", "method": "full"},
    )  # fmt: skip
    tuned = EvaluationRunFactory(
        training_run=training, model_ref=training.artifact_path,
        model_key=f"training:{training.pk}{suffix}", base_model=BASE + suffix,
        model_label="reranker on relabel (reranks the top 100 of all-MiniLM-L6-v2)",
        config=base_reranker.config,
    )  # fmt: skip
    for run, score in ((embedder, 0.6451), (base_reranker, 0.4120), (tuned, 0.6930)):
        EvalResultFactory(run=run, task="beir:scifact", main_score=score, ndcg_at_10=score)
    page = new_page()
    log_in(page, live_server, "cora", "pw-cora")
    page.goto(live_server.url + reverse("evaluation:leaderboard"))
    rows = page.locator("#leaderboard tbody tr")
    assert rows.count() == 3
    first = rows.nth(0).inner_text()
    assert "reranker on relabel" in first and "reranker" in first and "69.30" in first
    assert "+28.10" in first  # Δ against the base reranker over the same first stage
    assert page.locator("#leaderboard .badge", has_text="reranker").count() == 2
    screenshot(page, "leaderboard-rerankers")
    assert page.errors == []
