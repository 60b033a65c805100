"""The cascade end to end in-process: the real openai client against a FakeOpenAIServer on
127.0.0.1, the service writing items, ledger rows and judgments to the test database."""

import json
import time
from decimal import Decimal

import pytest

from core.models import JobStatus
from curation.cascade.create import cascade_run_create
from curation.cascade.execute import cascade_run_execute
from curation.datasets.imports import dataset_import
from curation.models import (
    Candidate,
    CascadeItem,
    CascadeItemStatus,
    CascadeRun,
    Judgment,
    LLMCall,
    Verdict,
)
from tests.curation.cascade.cascade_support import (
    CountingResponder,
    chat_requests,
    judge_answer,
    per_query,
    query_of,
    small_dataset,
    sound_judge,
    stage,
)
from tests.support.openai_server import FakeOpenAIServer, Reply

pytestmark = pytest.mark.django_db


def run_cascade(dataset, stages, **options) -> CascadeRun:
    run = cascade_run_create(dataset=dataset, stages=stages, enqueue=False, **options)
    cascade_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def stage_items(run, number):
    return CascadeItem.objects.filter(run=run, stage=number).select_related("query")


# --- the RLHN replay -----------------------------------------------------------------------------


def _records(shared_data, name):
    with open(shared_data / "rlhn" / name, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_rlhn_replay_forwards_the_published_queries_and_judges_the_right_passages(shared_data):
    stage1 = {
        r["query"]: r for r in _records(shared_data, "msmarco_passage.stage_1.gpt-4o-mini.jsonl")
    }
    stage2 = {r["query"]: r for r in _records(shared_data, "msmarco_passage.stage_2.gpt-4o.jsonl")}
    published = (
        (shared_data / "rlhn" / "msmarco_passage.stage_1.query_ids.with.false_negatives.txt")
        .read_text()
        .split()
    )
    result = dataset_import(
        source=shared_data / "rlhn" / "msmarco_passage.stage_1.gpt-4o-mini.jsonl",
        dataset_name="rlhn-replay",
        format="tevatron",
    )

    def replay(body):
        # Match our prompt to the recorded call by the query text in it.
        records = stage1 if body["model"] == "gpt-4o-mini" else stage2
        record = records[query_of(body).replace("‹", "<").replace("›", ">")]
        return Reply(content=record["response"], finish_reason=record["finish_reason"])

    with FakeOpenAIServer(replay) as server:
        stages = [stage(1, server, json_mode=False), stage(2, server, json_mode=False)]
        run = run_cascade(
            result.dataset, stages, forward_tags=["better", "worse"], false_negative_tags=["better"]
        )
        first_pass = len(chat_requests(server))
        again = run_cascade(result.dataset, stages)

    assert run.status == JobStatus.SUCCEEDED, run.error
    assert first_pass == 25 + 19
    forwarded = {item.query.query_id for item in stage_items(run, 2)}
    assert forwarded == set(published)
    flagged = {item.query.query_id for item in stage_items(run, 1).filter(flagged=True)}
    assert flagged == set(published)
    assert run.stats["stages"]["1"]["judged"] == 25
    assert run.stats["stages"]["2"]["judged"] == 19
    assert run.stats["stages"]["2"]["flagged"] == 19 - sum(
        1
        for r in stage2.values()
        if "[]" in r["response"].split("<worse>")[0].split("<better>")[-1]
        and "[]" in r["response"].split("<worse>")[-1]
    )

    # Doc (i) of each recorded answer lands on the passage that was i-th in its list.
    from curation.cascade.verdict import verdict_parse

    for _number, records, rater in (
        (1, stage1, "llm:gpt-4o-mini:stage1"),
        (2, stage2, "llm:gpt-4o:stage2"),
    ):
        for record in records.values():
            verdict = verdict_parse(record["response"], n_negatives=25)
            judgments = {
                j.candidate.passage.doc_id: j
                for j in Judgment.objects.filter(
                    rater=rater,
                    source_run=f"cascade:{run.pk}",
                    candidate__query__query_id=record["query_id"],
                ).select_related("candidate__passage")
            }
            assert len(judgments) == 25
            for index, doc_id in enumerate(record["negative_passage_ids"], start=1):
                judgment = judgments[doc_id]
                expected_tag = (
                    "better"
                    if index in verdict.better
                    else "worse"
                    if index in verdict.worse
                    else ""
                )
                assert judgment.tag == expected_tag, (record["query_id"], index)
                expected = Verdict.RELEVANT if expected_tag == "better" else Verdict.NOT_RELEVANT
                assert judgment.verdict == expected
                if expected_tag:
                    assert f"Doc ({index})" in judgment.rationale

    # The same cascade again: everything comes from the ledger, nothing is paid twice.
    assert again.status == JobStatus.SUCCEEDED
    assert len(chat_requests(server)) == first_pass
    assert again.cost_usd == 0
    assert again.stats["stages"]["1"]["cached_calls"] == 25
    assert {i.query.query_id for i in stage_items(again, 2)} == set(published)


# --- judgments, ledger and cost ------------------------------------------------------------------


def test_each_verdict_becomes_one_judgment_per_numbered_negative():
    dataset = small_dataset(queries=6, negatives=4)
    with FakeOpenAIServer(sound_judge) as server:
        run = run_cascade(
            dataset, [stage(1, server), stage(2, server)],
            forward_tags=["better"], false_negative_tags=["better"], max_negatives=3,
        )  # fmt: skip

    assert run.status == JobStatus.SUCCEEDED, run.error
    # max_negatives=3 numbers ranks 1..3 (not the 4th, not by id).
    item = stage_items(run, 1).get(query__query_id="q003")
    ranks = list(Candidate.objects.filter(id__in=item.candidate_ids).values_list("id", "rank"))
    assert [dict(ranks)[c] for c in item.candidate_ids] == [1, 2, 3]
    # Stage 2 only saw the queries with a "better" negative (odd ones).
    assert sorted(i.query.query_id for i in stage_items(run, 2)) == ["q001", "q003", "q005"]
    stage1 = Judgment.objects.filter(rater="llm:gpt-4o-mini:stage1")
    assert stage1.count() == 6 * 3
    relevant = stage1.filter(verdict=Verdict.RELEVANT).select_related("candidate__passage")
    assert sorted(j.candidate.passage.text for j in relevant) == [
        "passage 1.2 ANSWERS", "passage 3.2 ANSWERS", "passage 5.2 ANSWERS",
    ]  # fmt: skip
    worse = stage1.get(candidate__passage__text="passage 3.3 PARTLY")
    assert (worse.tag, worse.verdict) == ("worse", Verdict.NOT_RELEVANT)  # FN tags: better only
    # Tokens and cost of a call are split over its judgments and add up to the call.
    call = LLMCall.objects.get(pk=item.call_id)
    on_item = Judgment.objects.filter(
        candidate_id__in=item.candidate_ids, rater="llm:gpt-4o-mini:stage1"
    )
    assert sum(j.input_tokens for j in on_item) == call.input_tokens == 1000
    assert sum(j.output_tokens for j in on_item) == call.output_tokens == 200
    assert sum(j.cost_usd for j in on_item) == call.cost_usd == Decimal("0.000270")
    assert {j.prompt_version for j in on_item} == {"listwise-v1-json"}
    assert all(len(j.prompt_hash) == 64 and j.source_run == f"cascade:{run.pk}" for j in on_item)
    # The run's cost is the ledger's: 6 stage-1 calls and 3 stage-2 calls.
    assert run.cost_usd == 6 * Decimal("0.000270") + 3 * Decimal("0.004500")
    assert run.input_tokens == 9 * 1000 and run.output_tokens == 9 * 200
    assert run.stages[0]["model"] == "gpt-4o-mini" and "api_key" not in json.dumps(
        run.stages
    ).replace("api_key_env", "")


def test_a_repeated_run_pays_nothing_twice():
    dataset = small_dataset(queries=5)
    with FakeOpenAIServer(sound_judge) as server:
        first = run_cascade(dataset, [stage(1, server)])
        second = run_cascade(dataset, [stage(1, server)])
    assert len(chat_requests(server)) == 5
    assert second.status == JobStatus.SUCCEEDED
    assert second.cost_usd == 0 and first.cost_usd > 0
    assert second.stats["stages"]["1"]["cached_calls"] == 5
    assert Judgment.objects.filter(source_run=f"cascade:{second.pk}").count() == 5 * 4


# --- faults --------------------------------------------------------------------------------------


def test_a_429_storm_is_waited_out_as_retry_after_says():
    dataset = small_dataset(queries=4)
    storm = {"left": 6, "ended": None}

    def respond(body, number):
        if storm["left"] > 0:
            storm["left"] -= 1
            if storm["left"] == 0:
                storm["ended"] = time.monotonic()
            return Reply(status=429, headers={"Retry-After": "0.4"}, content="slow down")
        return sound_judge(body)

    responder = CountingResponder(respond)
    arrivals = []

    def recording(body):
        arrivals.append(time.monotonic())
        return responder(body)

    with FakeOpenAIServer(recording) as server:
        run = run_cascade(dataset, [stage(1, server, max_attempts=5, concurrency=1)])
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert run.stats["stages"]["1"]["judged"] == 4
    assert run.stats["stages"]["1"]["failed"] == 0
    # After the last 429 nobody asked again before its Retry-After had passed.
    after_storm = [t for t in arrivals if t > storm["ended"]]
    assert after_storm and min(after_storm) - storm["ended"] >= 0.4
    assert run.stats["stages"]["1"]["paid_calls"] == 4  # 429s are not paid answers


def test_timeouts_are_retried_and_a_query_that_never_answers_fails_alone():
    dataset = small_dataset(queries=3)

    def respond(body, number):
        if query_of(body) == "question number 2":
            return Reply(content=judge_answer(body), delay=1.0)  # always too slow
        if number == 1:
            return Reply(content=judge_answer(body), delay=1.0)  # too slow once
        return sound_judge(body)

    responder = CountingResponder(respond)
    with FakeOpenAIServer(responder) as server:
        run = run_cascade(dataset, [stage(1, server, timeout_s=0.3, max_attempts=2)])
    # Ran to its end with one query failed: "finished with failures", never a green success.
    assert run.status == JobStatus.PARTIAL_FAILURE, run.error
    assert run.error.startswith("1 item failed (2 succeeded): 1× ") and "timed out" in run.error
    assert run.error_detail["items_failed"] == 1
    items = {i.query.query_id: i for i in stage_items(run, 1)}
    assert items["q001"].status == items["q003"].status == CascadeItemStatus.JUDGED
    assert responder.calls["question number 1"] == 2
    failed = items["q002"]
    assert failed.status == CascadeItemStatus.FAILED and "timed out" in failed.error
    assert not Judgment.objects.filter(candidate__query=failed.query).exists()
    assert run.stats["stages"]["1"]["failed"] == 1


def test_garbage_is_recorded_and_asked_once_more():
    dataset = small_dataset(queries=2)

    def respond(body, number):
        if query_of(body) == "question number 1" and number == 1:
            return Reply(content="Sure! Here is my analysis of the documents.")
        return sound_judge(body)

    with FakeOpenAIServer(CountingResponder(respond)) as server:
        run = run_cascade(dataset, [stage(1, server)])
    item = stage_items(run, 1).get(query__query_id="q001")
    assert item.status == CascadeItemStatus.JUDGED and item.flagged
    # Both answers are in the ledger (the garbage was paid for), under different keys.
    first = next(b for b in chat_requests(server) if query_of(b) == "question number 1")
    calls = LLMCall.objects.filter(cascade_run=run, request__messages=first["messages"])
    assert sorted(c.request["params"]["attempt"] for c in calls) == [1, 2]
    assert run.stats["stages"]["1"]["retries"] == 1


def test_an_answer_unreadable_twice_is_unparseable_never_no_false_negatives():
    dataset = small_dataset(queries=2)

    def respond(body, number):
        if query_of(body) == "question number 1":
            return Reply(content='{"better": "Doc 2 I think"}')
        return sound_judge(body)

    with FakeOpenAIServer(CountingResponder(respond)) as server:
        run = run_cascade(dataset, [stage(1, server), stage(2, server)], forward_tags=["better"])
    item = stage_items(run, 1).get(query__query_id="q001")
    assert item.status == CascadeItemStatus.UNPARSEABLE and not item.flagged
    assert "unparseable" in item.error
    assert not Judgment.objects.filter(
        candidate__query=item.query, rater__endswith="stage1"
    ).exists()
    assert per_query(server)["question number 1"] == 2 + 2  # twice per stage
    # The cheap judge could not tell: the strong judge gets the query.
    assert stage_items(run, 2).filter(query__query_id="q001").exists()
    assert run.stats["stages"]["1"]["unparseable"] == 1


@pytest.mark.parametrize("finish_reason", ["length", ["length"]])  # some servers send a list
def test_a_truncated_answer_is_retried_with_more_room(finish_reason):
    dataset = small_dataset(queries=1)

    def respond(body, number):
        if number == 1:
            return Reply(content='{"reasoning": "Doc (1) is', finish_reason=finish_reason)
        return sound_judge(body)

    with FakeOpenAIServer(CountingResponder(respond)) as server:
        run = run_cascade(dataset, [stage(1, server, max_tokens=300)])
    assert stage_items(run, 1).get().status == CascadeItemStatus.JUDGED
    assert [b["max_tokens"] for b in chat_requests(server)] == [300, 600]
    truncated = LLMCall.objects.get(cascade_run=run, finish_reason="length")
    assert truncated.response_text.startswith('{"reasoning"')


def test_a_wrong_key_fails_the_run_and_leaves_items_pending():
    dataset = small_dataset(queries=3)
    with FakeOpenAIServer(lambda body: Reply(status=401, content="invalid api key")) as server:
        run = run_cascade(dataset, [stage(1, server)])
    assert run.status == JobStatus.FAILED
    assert "HTTP 401" in run.error and "stage 1" in run.error
    assert set(stage_items(run, 1).values_list("status", flat=True)) == {CascadeItemStatus.PENDING}


def test_a_run_whose_every_call_failed_ends_failed_with_the_reason():
    """Not "succeeded" over 0 judged: the run says what went wrong and how often."""
    dataset = small_dataset(queries=3)
    with FakeOpenAIServer(lambda body: Reply(status=500, content="upstream is down")) as server:
        run = run_cascade(dataset, [stage(1, server, max_attempts=1)])
    assert run.status == JobStatus.FAILED
    assert run.error.startswith("3 items failed (0 succeeded): 3× "), run.error
    assert run.error_detail["reasons"][0]["count"] == 3
    assert run.stats["stages"]["1"]["failed"] == 3


# --- budget and cancel ---------------------------------------------------------------------------


def test_a_budget_cap_stops_the_run_cleanly_mid_stage():
    dataset = small_dataset(queries=10)
    # Reserve per call at most: ~input + 1000 output tokens at $0.60/M + input at $0.15/M.
    with FakeOpenAIServer(sound_judge) as server:
        run = run_cascade(
            dataset, [stage(1, server, concurrency=1), stage(2, server)],
            budget_usd=Decimal("0.0025"),
        )  # fmt: skip
    assert run.status == JobStatus.SUCCEEDED
    assert run.progress_message.startswith("budget reached")
    assert run.stats["budget_reached"] is True
    counts = dict(
        (s, stage_items(run, 1).filter(status=s).count())
        for s in (CascadeItemStatus.JUDGED, CascadeItemStatus.SKIPPED, CascadeItemStatus.PENDING)
    )
    assert counts[CascadeItemStatus.JUDGED] >= 1 and counts[CascadeItemStatus.SKIPPED] >= 1
    assert counts[CascadeItemStatus.PENDING] == 0
    assert counts[CascadeItemStatus.JUDGED] + counts[CascadeItemStatus.SKIPPED] == 10
    assert run.cost_usd <= Decimal("0.0025")
    assert len(chat_requests(server)) == counts[CascadeItemStatus.JUDGED]
    assert not stage_items(run, 2).exists()  # nothing paid after the cap


def test_cancel_stops_between_batches():
    dataset = small_dataset(queries=30)
    slow = lambda body: Reply(content=judge_answer(body), delay=0.1)  # noqa: E731
    with FakeOpenAIServer(slow) as server:
        run = cascade_run_create(
            dataset=dataset, stages=[stage(1, server, concurrency=1)], enqueue=False
        )
        CascadeRun.objects.filter(pk=run.pk).update(cancel_requested=True)
        cascade_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED
    # What was judged before the stop is kept (with its judgments); the rest is still pending.
    judged = stage_items(run, 1).filter(status=CascadeItemStatus.JUDGED)
    pending = stage_items(run, 1).filter(status=CascadeItemStatus.PENDING)
    assert judged.exists() and pending.count() >= 10
    assert Judgment.objects.filter(source_run=f"cascade:{run.pk}").count() == judged.count() * 4
    assert len(chat_requests(server)) == judged.count()


# --- Batch API -----------------------------------------------------------------------------------


def test_batch_mode_splits_files_checks_every_id_and_asks_the_missing_online(monkeypatch):
    monkeypatch.setattr("curation.cascade.batch.BATCH_POLL_SECONDS", 0.05)
    dataset = small_dataset(queries=7)
    lost = "question number 4"
    with FakeOpenAIServer(
        sound_judge, batch_drop=lambda line: query_of(line["body"]) == lost
    ) as server:
        run = run_cascade(dataset, [stage(1, server, batch_max_requests=3)], mode="batch")
    assert run.status == JobStatus.SUCCEEDED, run.error
    uploads = [r for r in server.requests if r["path"].rstrip("/") == "/v1/files"]
    assert len(uploads) == 3 and {u["body"]["purpose"] for u in uploads} == {"batch"}
    assert len(server.batch_lines) == 7
    # The lost line was asked again online, and only that one.
    assert [query_of(b) for b in chat_requests(server)] == [lost]
    assert run.stats["stages"]["1"]["batch_missing"] == 1
    assert stage_items(run, 1).filter(status=CascadeItemStatus.JUDGED).count() == 7
    batch_calls = LLMCall.objects.filter(cascade_run=run, batch=True)
    assert batch_calls.count() == 6
    assert {c.cost_usd for c in batch_calls} == {Decimal("0.000135")}  # half of 0.000270
    assert LLMCall.objects.get(cascade_run=run, batch=False).cost_usd == Decimal("0.000270")


def test_a_batch_run_that_dies_while_waiting_polls_its_batches_again_instead_of_resending(
    monkeypatch,
):
    from curation.llm.batch import BatchClient

    monkeypatch.setattr("curation.cascade.batch.BATCH_POLL_SECONDS", 0.05)
    dataset = small_dataset(queries=5)
    real_retrieve = BatchClient.retrieve
    crash = {"left": 1}

    def retrieve_then_die(self, batch_id):
        if crash["left"]:
            crash["left"] -= 1
            raise SystemError("worker lost while polling")  # as a killed worker would stop
        return real_retrieve(self, batch_id)

    monkeypatch.setattr(BatchClient, "retrieve", retrieve_then_die)
    with FakeOpenAIServer(sound_judge) as server:
        run = run_cascade(dataset, [stage(1, server, batch_max_requests=2)], mode="batch")
        assert run.status == JobStatus.FAILED
        assert len(run.stats["batches"]) == 3  # recorded the moment they were created
        # What worker reconciliation does for a run whose worker died: queue it again.
        CascadeRun.objects.filter(pk=run.pk).update(status=JobStatus.QUEUED)
        cascade_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, run.error
    uploads = [r for r in server.requests if r["path"].rstrip("/") == "/v1/files"]
    assert len(uploads) == 3  # nothing sent twice
    assert len(server.batch_lines) == 5 and not chat_requests(server)
    assert stage_items(run, 1).filter(status=CascadeItemStatus.JUDGED).count() == 5
    assert all(b["ingested"] for b in run.stats["batches"])
