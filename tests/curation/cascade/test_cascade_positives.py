"""The positives a judge prompt shows: all of a query's (RLHN's prompt) unless the run caps
them. The cap is a run setting on the service, the form, the command and the run page; it
changes the prompts, so the estimate counts it; and the default leaves the prompts of queries
with at most 5 positives (the old fixed cap) byte for byte as they were, so ledgers still hit."""

import re

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder
from django.urls import reverse

from core.errors import ApplicationError
from core.models import JobStatus
from curation.cascade import create as cascade
from curation.cascade.create import cascade_estimate, cascade_run_create
from curation.cascade.execute import cascade_run_execute
from curation.cascade.selectors import prompt_build, prompt_data, query_negative_ids
from curation.llm.engine import call_key
from curation.models import CascadeRun
from tests.curation.cascade.cascade_support import (
    byte_counter,
    chat_requests,
    dataset_with_positives,
    form_data,
    ground_truths_of,
    received_tokens,
    sound_judge,
    stage,
)
from tests.factories import DatasetFactory
from tests.support.openai_server import FakeOpenAIServer

pytestmark = pytest.mark.django_db

SEVEN = ["A title\npositive passage 1"] + [f"positive passage {n}" for n in range(2, 8)]


def run_against_server(dataset, **options) -> tuple[CascadeRun, list[dict]]:
    with FakeOpenAIServer(sound_judge) as server:
        run = cascade_run_create(
            dataset=dataset, stages=[stage(1, server)], enqueue=False, **options
        )
        cascade_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run, chat_requests(server)


def test_by_default_the_prompt_shows_every_positive():
    run, bodies = run_against_server(dataset_with_positives(7))
    assert run.max_positives is None and run.status == JobStatus.SUCCEEDED
    [body] = bodies
    assert ground_truths_of(body) == SEVEN


def test_a_cap_of_two_shows_the_first_two_and_the_estimate_counts_what_is_sent(monkeypatch):
    dataset = dataset_with_positives(7)
    monkeypatch.setattr(cascade, "token_counter_for", lambda model: byte_counter())
    capped = cascade_estimate(dataset=dataset, stages=[stage(1)], max_positives=2)
    every = cascade_estimate(dataset=dataset, stages=[stage(1)])
    assert (capped["max_positives"], every["max_positives"]) == (2, None)

    run, bodies = run_against_server(dataset, max_positives=2)
    assert run.max_positives == 2 and run.estimate["max_positives"] == 2
    assert [ground_truths_of(body) for body in bodies] == [SEVEN[:2]]
    # The estimate's input tokens are those of the prompts the server received.
    assert capped["stages"][0]["input_tokens"] == received_tokens(bodies)
    _, all_bodies = run_against_server(dataset)
    assert every["stages"][0]["input_tokens"] == received_tokens(all_bodies)
    assert capped["stages"][0]["input_tokens"] < every["stages"][0]["input_tokens"]


# Ledger keys of these prompts as the code before the cap became a setting built them (at
# most 5 positives, always): computed on main at dd3c65c with the same dataset and stage.
KEYS_BEFORE = {
    (1, True): "42c4138b199fb3e80cf313e72daf8840afa118390f43074de5f9139ef90c7f38",
    (3, True): "7061cd45a9a3c5fd6d956e4b180bed1731021b1a4b64b37164cb169da8eefc19",
    (5, True): "201a22a09df8707f5d6dabd953c9071620526231219335c7b402a15aea527c63",
    (1, False): "42fee8d3c60712d704f4d81188c023008ffaf46d965ecc99b9b0d2e513a6fc1b",
    (3, False): "381fa426a557d5b0a3c965fa37377f1eebc2c0fd2effed16a28a330ca7cb0f5a",
    (5, False): "0c29889b94ad9e43e7d9561ad5b75daa538ea91d6ca523586e52cf1ef7e70e89",
}


@pytest.mark.parametrize("positives, json_mode", sorted(KEYS_BEFORE))
def test_up_to_five_positives_the_default_prompt_and_its_ledger_key_are_unchanged(
    positives, json_mode
):
    query = dataset_with_positives(positives).queries.get()
    negatives = query_negative_ids([query.pk], 25)[query.pk]
    judge = stage(1, json_mode=json_mode)
    data = prompt_data(query_ids=[query.pk], candidate_ids=negatives)
    prompt = prompt_build(data, query.pk, negatives, json_mode=json_mode)
    key = call_key(
        base_url=judge.base_url,
        model=judge.model,
        messages=prompt.messages,
        params={**judge.request_params(attempt=1), "attempt": 1},
    )
    assert key == KEYS_BEFORE[positives, json_mode]


def test_a_ledger_written_with_the_old_cap_still_answers_the_default_run():
    dataset = dataset_with_positives(5)
    with FakeOpenAIServer(sound_judge) as server:
        runs = []
        for max_positives in (5, None):  # the old fixed cap, then today's default
            run = cascade_run_create(
                dataset=dataset,
                stages=[stage(1, server)],
                max_positives=max_positives,
                enqueue=False,
            )
            cascade_run_execute(run_id=run.pk)
            run.refresh_from_db()
            runs.append(run.stats["stages"]["1"])
    assert len(chat_requests(server)) == 1
    assert [(s["paid_calls"], s["cached_calls"]) for s in runs] == [(1, 0), (0, 1)]


def create(dataset, max_positives) -> CascadeRun:
    return cascade_run_create(
        dataset=dataset, stages=[stage(1)], max_positives=max_positives, enqueue=False
    )


@pytest.mark.parametrize("value", [0, -2, "0", "two", "2.5", 2.5, True, "1e3"])
def test_the_service_refuses_anything_but_a_whole_number_of_at_least_one(value):
    with pytest.raises(ApplicationError, match="whole number of at least 1") as refused:
        create(dataset_with_positives(2), value)
    assert refused.value.detail == {"field": "max_positives"}
    assert not CascadeRun.objects.exists()


@pytest.mark.parametrize("value, stored", [(None, None), ("", None), (" ", None), ("3", 3), (1, 1)])
def test_the_service_takes_empty_as_all_and_text_as_a_number(value, stored):
    assert create(dataset_with_positives(2), value).max_positives == stored


def test_the_database_refuses_a_cap_below_one():
    with pytest.raises(IntegrityError), transaction.atomic():
        CascadeRun.objects.create(dataset=DatasetFactory(), max_positives=0)


# --- the launch form and the run page --------------------------------------------------------


def _field_errors(html: str, name: str) -> list[str]:
    field = re.search(
        rf'<div class="field has-error">\s*<label for="id_{name}">.*?</div>', html, re.S
    )
    return (
        re.findall(r'<small class="error" role="alert">(.*?)</small>', field.group(0))
        if field
        else []
    )


def test_the_form_estimates_and_launches_with_a_cap(curator_client, env_stages):
    dataset = dataset_with_positives(7)
    estimate_url = reverse("curation:cascade_estimate", args=[dataset.pk])
    every = curator_client.post(estimate_url, form_data(max_positives="")).content.decode()
    capped = curator_client.post(estimate_url, form_data(max_positives="2")).content.decode()
    assert "Prompts show all positives per query" in every
    assert "Prompts show at most 2 positives per query" in capped

    curator_client.post(
        reverse("curation:cascade_launch", args=[dataset.pk]), form_data(max_positives="2")
    )
    run = CascadeRun.objects.get()
    assert run.max_positives == 2 and run.estimate["max_positives"] == 2
    page = curator_client.get(
        reverse("curation:cascade_run_detail", args=[run.pk])
    ).content.decode()
    assert re.search(r"<dt>Positives per call</dt><dd>at most 2</dd>", page)
    assert "Prompts show at most 2 positives per query" in page


def test_the_run_page_says_all_by_default(curator_client):
    run = cascade_run_create(dataset=dataset_with_positives(7), stages=[stage(1)], enqueue=False)
    page = curator_client.get(
        reverse("curation:cascade_run_detail", args=[run.pk])
    ).content.decode()
    assert re.search(r"<dt>Positives per call</dt><dd>all</dd>", page)


@pytest.mark.parametrize(
    "value, error",
    [
        ("0", "greater than or equal to 1"),
        ("-1", "greater than or equal to 1"),
        ("two", "whole number"),
        ("1.5", "whole number"),
    ],
)
def test_the_form_refuses_a_bad_cap_on_its_field(curator_client, env_stages, value, error):
    dataset = dataset_with_positives(2)
    for name in ("cascade_estimate", "cascade_launch"):
        page = curator_client.post(
            reverse(f"curation:{name}", args=[dataset.pk]), form_data(max_positives=value)
        )
        assert page.status_code == 400
        [message] = _field_errors(page.content.decode(), "max_positives")
        assert error in message
    assert not CascadeRun.objects.exists()


# --- the command ---------------------------------------------------------------------------------


def _stage1_input_tokens(out: str) -> int:
    return int(
        re.search(r"stage 1 [\w.-]+: [\d,]+ calls, ([\d,]+) in", out).group(1).replace(",", "")
    )


def test_the_command_caps_positives(capsys):
    dataset_with_positives(7, name="cmd-positives")
    call_command("run_cascade", "cmd-positives", "--estimate-only")
    every = capsys.readouterr().out
    call_command("run_cascade", "cmd-positives", "--estimate-only", "--max-positives", "2")
    capped = capsys.readouterr().out
    assert "positives per prompt: all" in every and "positives per prompt: 2" in capped
    assert _stage1_input_tokens(capped) < _stage1_input_tokens(every)
    assert not CascadeRun.objects.exists()

    with FakeOpenAIServer(sound_judge) as server:
        call_command(
            "run_cascade", "cmd-positives", "--stages", "1", "--base-url", server.base_url,
            "--max-positives", "2",
        )  # fmt: skip
    run = CascadeRun.objects.get()
    assert run.status == JobStatus.SUCCEEDED and run.max_positives == 2
    assert [ground_truths_of(body) for body in chat_requests(server)] == [SEVEN[:2]]

    with pytest.raises(CommandError, match="--max-positives: .*whole number of at least 1"):
        call_command("run_cascade", "cmd-positives", "--max-positives", "0")
    assert CascadeRun.objects.count() == 1


# --- runs recorded before the setting ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_runs_recorded_before_the_setting_keep_the_old_cap_of_five():
    dataset = DatasetFactory()
    executor = MigrationExecutor(connection)
    # Found by name, so that renumbering the migration when branches merge keeps this test.
    [migration] = [
        key
        for key in executor.loader.graph.nodes
        if key[0] == "curation" and key[1].endswith("_cascade_max_positives")
    ]
    before = [parent.key for parent in executor.loader.graph.node_map[migration].parents]
    executor.migrate(before)  # unapplies every later migration too, in every app
    try:
        old_model = executor.loader.project_state(before).apps.get_model("curation", "CascadeRun")
        old = old_model.objects.create(dataset_id=dataset.pk, stages=[])
    finally:
        # Back to the newest state of every app, not just this migration: the tests after
        # this one need the later migrations (a later column, a later table).
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert CascadeRun.objects.get(pk=old.pk).max_positives == 5
    recorder = MigrationRecorder(connection)
    applied = set(recorder.applied_migrations())
    assert set(executor.loader.graph.leaf_nodes()) <= applied
