"""One training run on several snapshots (issue 12): launched from the form, the API and the
command line with the snapshots in order, each refused with its field when one is wrong, shown
on the run page and in the runs table, and — slow — trained in process to a complete row."""

import pytest
from django.core.management import call_command
from django.urls import reverse

from core.errors import ApplicationError
from core.models import JobStatus
from training.models import TrainingRun
from training.services import training_more_snapshots, training_run_create

from . import scifact_snapshots

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _folders(folders):
    pass


@pytest.fixture
def second(shared_data, tmp_path):
    made = scifact_snapshots(
        shared_data, tmp_path / "second", formats=("tevatron",), name="scifact-b", queries=8
    )
    return made["tevatron"]


def test_snapshot_ids_are_read_in_order_and_a_bad_one_is_named(snapshot, second):
    assert training_more_snapshots(f"#{second.pk}, {snapshot.pk}") == [second, snapshot]
    assert training_more_snapshots([second.pk]) == [second]
    assert training_more_snapshots("") == [] and training_more_snapshots(None) == []
    for value, words in [("4x", "'4x' is not a snapshot id"), ([999999], "no snapshot #999999")]:
        with pytest.raises(ApplicationError, match=words) as caught:
            training_more_snapshots(value)
        assert caught.value.detail["field"] == "more_snapshots"
    with pytest.raises(ApplicationError, match="given twice") as caught:
        training_run_create(snapshot=snapshot, config={}, more_snapshots=[second, snapshot])
    assert caught.value.detail["field"] == "more_snapshots"
    assert not TrainingRun.objects.exists()


def test_the_form_launches_a_run_on_several_and_the_pages_show_them(
    client, curator, snapshot, second, sent, django_capture_on_commit_callbacks
):
    from .test_web import form_data

    client.force_login(curator)
    page = client.get(reverse("training:new", args=[snapshot.pk])).content.decode()
    assert f"<strong>#{second.pk}</strong>" in page  # the other snapshots, with their ids
    refused = client.post(
        reverse("training:launch", args=[snapshot.pk]), form_data(more_snapshots="424242")
    )
    assert refused.status_code == 400
    assert refused.context["form"].errors["more_snapshots"] == ["no snapshot #424242"]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("training:launch", args=[snapshot.pk]),
            form_data(more_snapshots=str(second.pk), task_order="sequential", mixed_steps=5),
        )
    assert response.status_code == 302
    run = TrainingRun.objects.get()
    assert run.snapshots() == [snapshot, second] and sent == [run.pk]
    assert run.config["task_order"] == "sequential" and run.config["mixed_steps"] == 5

    detail = client.get(reverse("training:run_detail", args=[run.pk])).content.decode()
    assert "Snapshots (sequential order, 5 mixed steps)" in detail
    assert f"#{second.pk} scifact-b" in detail
    listed = client.get(reverse("training:run_list")).content.decode()
    assert f'title="also trained on #{second.pk}"' in listed


def test_the_api_and_the_command_take_more_snapshots(
    curator, snapshot, second, sent, api_as, django_capture_on_commit_callbacks
):
    api = api_as(curator)
    bad = api.post(
        reverse("api:training-list"),
        {"snapshot": snapshot.pk, "more_snapshots": [snapshot.pk]},
        format="json",
    )
    assert bad.status_code == 400 and bad.json()["field"] == "more_snapshots"
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post(
            reverse("api:training-list"),
            {"snapshot": snapshot.pk, "more_snapshots": [second.pk], "config": {"max_steps": 2}},
            format="json",
        )
    assert created.status_code == 202, created.json()
    assert created.json()["more_snapshots"] == [second.pk]
    detail = api.get(reverse("api:training-detail", args=[created.json()["id"]])).json()
    assert detail["more_snapshots"] == [second.pk]

    call_command("train", "--snapshot", str(second.pk), "--also", str(snapshot.pk), "--enqueue")
    run = TrainingRun.objects.latest("id")
    assert run.snapshots() == [second, snapshot] and run.status == JobStatus.QUEUED


@pytest.mark.slow
def test_a_run_on_two_snapshots_trains_in_process_to_a_complete_row(
    snapshot, second, client, viewer
):
    run = training_run_create(
        snapshot=snapshot,
        more_snapshots=[second],
        enqueue=False,
        config={
            "max_steps": 4,
            "batch_size": 4,
            "num_negatives": 2,
            "mixed_steps": 1,
            "task_order": "round_robin",
            "query_max_length": 32,
            "passage_max_length": 64,
            "logging_steps": 1,
            "save_steps": 0,
        },  # fmt: skip
    )
    from training.services import training_run_execute

    training_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, (run.error, run.log_tail)
    assert (run.step, run.total_steps) == (4, 4)
    tasks = run.metrics["tasks"]
    assert [task["name"] for task in tasks] == [
        f"#{snapshot.pk} scifact-train · default",
        f"#{second.pk} scifact-b · default",
    ]
    assert all(task["rows"] > 0 for task in tasks)
    assert run.stats["snapshots"] == 2 and run.stats["rows"] == sum(t["rows"] for t in tasks)
    client.force_login(viewer)
    page = client.get(reverse("training:run_detail", args=[run.pk])).content.decode()
    assert f'#{second.pk} scifact-b · default: <span class="num">' in page
    assert "from 2 snapshots" in run.log_tail and "round_robin order, 1 mixed steps" in run.log_tail
