"""The "Train" button of a snapshot page, the launch form, the live run page (loss curve,
throughput, log tail; its htmx fragment stops polling once the run ended) and Cancel."""

import re

import pytest
from django.urls import reverse

from core.models import JobStatus
from training.models import TrainingRun
from training.services import training_config_defaults

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _folders(folders):
    pass


def form_data(**overrides) -> dict:
    data = {k: v for k, v in training_config_defaults().items() if v is not None}
    data["lora_target_modules"] = ", ".join(data["lora_target_modules"])
    data = {k: v for k, v in data.items() if not isinstance(v, bool) or v}
    data.update(name="my run", **overrides)
    return data


def test_snapshot_page_offers_train_to_curators_only(client, curator, viewer, snapshot):
    client.force_login(curator)
    page = client.get(reverse("curation:snapshot_detail", args=[snapshot.pk])).content.decode()
    assert reverse("training:new", args=[snapshot.pk]) in page
    client.force_login(viewer)
    page = client.get(reverse("curation:snapshot_detail", args=[snapshot.pk])).content.decode()
    assert reverse("training:new", args=[snapshot.pk]) not in page


def test_form_shows_defaults_and_one_click_launches(
    client, curator, snapshot, sent, django_capture_on_commit_callbacks
):
    client.force_login(curator)
    page = client.get(reverse("training:new", args=[snapshot.pk]))
    assert page.status_code == 200
    form = page.context["form"]
    assert form["lora_r"].value() == 8 and form["method"].value() == "lora"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("training:launch", args=[snapshot.pk]), form_data(max_steps=5, lora_r=4)
        )
    run = TrainingRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("training:run_detail", args=[run.pk])
    assert sent == [run.pk]
    assert run.name == "my run" and run.method == "lora" and run.snapshot == snapshot
    assert run.config["lora_r"] == 4 and run.config["max_steps"] == 5
    assert run.base_model == training_config_defaults()["base_model"]


def test_a_bad_value_comes_back_on_its_field(client, curator, snapshot, sent):
    client.force_login(curator)
    response = client.post(
        reverse("training:launch", args=[snapshot.pk]),
        form_data(base_model="/no/such/model/folder"),
    )
    assert response.status_code == 400
    assert response.context["form"].errors["base_model"]
    assert not TrainingRun.objects.exists() and sent == []


def test_run_page_draws_the_loss_curve_and_stops_polling_when_done(client, viewer, snapshot):
    run = TrainingRun.objects.create(
        snapshot=snapshot, base_model="m", method="lora", status=JobStatus.RUNNING,
        step=20, total_steps=40, progress=0.5,
        history=[{"step": s, "loss": 2.0 - s / 20} for s in (5, 10, 15, 20)],
        metrics={"samples_per_s": 12.5, "eta_s": 30, "model_tflops_per_s": 212.7,
                 "peak_tflops": 989.0, "mfu": 0.2151},
        log_tail="step 20 <script>alert(1)</script>",
    )  # fmt: skip
    client.force_login(viewer)
    page = client.get(reverse("training:run_detail", args=[run.pk]))
    html = page.content.decode()
    assert "<polyline" in html and "12.50" in html and "30 s" in html
    assert "212.700" in html and "22 %" in html and "peak of 989 TFLOP/s" in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    fragment = client.get(reverse("training:run_detail", args=[run.pk]), HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200 and 'hx-trigger="every 2s"' in fragment.content.decode()
    TrainingRun.objects.filter(pk=run.pk).update(status=JobStatus.SUCCEEDED)
    fragment = client.get(reverse("training:run_detail", args=[run.pk]), HTTP_HX_REQUEST="true")
    assert fragment.status_code == 286  # htmx stops polling


def test_cancel_from_the_page(client, curator, snapshot):
    run = TrainingRun.objects.create(
        snapshot=snapshot, base_model="m", method="lora", status=JobStatus.RUNNING
    )
    client.force_login(curator)
    response = client.post(reverse("training:run_cancel", args=[run.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    run.refresh_from_db()
    assert run.cancel_requested
    assert "Cancellation requested" in response.content.decode()


def test_the_base_model_field_names_the_default_without_its_folder(
    client, curator, snapshot, sent, settings, django_capture_on_commit_callbacks
):
    """The tour found the field prefilled with the offline copy's folder inside the
    virtualenv. It starts empty with the default's name as placeholder; left empty, the
    run gets the default as runs always did (the folder, which loaders and caches read);
    a configured SIEVE_EMBEDDING_MODEL is named as configured."""
    client.force_login(curator)
    html = client.get(reverse("training:new", args=[snapshot.pk])).content.decode()
    field = re.search(r'<input[^>]*name="base_model"[^>]*>', html)[0]
    assert 'placeholder="sentence-transformers/all-MiniLM-L6-v2 (offline copy)"' in field
    assert "value=" not in field and "site-packages" not in html
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("training:launch", args=[snapshot.pk]),
                    {**form_data(max_steps=5), "base_model": ""})  # fmt: skip
    assert TrainingRun.objects.get().base_model == training_config_defaults()["base_model"]

    settings.SIEVE_EMBEDDING_MODEL = "intfloat/e5-small-v2"
    html = client.get(reverse("training:new", args=[snapshot.pk])).content.decode()
    assert 'placeholder="intfloat/e5-small-v2"' in html
