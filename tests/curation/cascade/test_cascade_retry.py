"""Finishing what a cascade run left (issue 10): retrying failed and pending items on the same
run, resuming with a larger budget, and a budget that reserves from the answers measured on
the run instead of a full ``max_tokens`` answer per call in flight. The real ``openai``
client against the local OpenAI-compatible server; nothing is paid twice."""

import re
from collections import Counter
from decimal import Decimal

import pytest
from django.urls import reverse

from core.errors import ApplicationError
from core.models import JobStatus
from curation.cascade.execute import cascade_run_execute
from curation.cascade.retry import cascade_run_retry, cascade_run_retryable
from curation.llm.stages import call_cost
from curation.models import CascadeItemStatus
from tests.curation.cascade.cascade_support import (
    chat_requests,
    query_of,
    small_dataset,
    sound_judge,
    stage,
)
from tests.support.openai_server import FakeOpenAIServer, Reply

from .test_cascade_run import run_cascade, stage_items

pytestmark = pytest.mark.django_db


def _again(run):
    cascade_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def test_retry_judges_the_failed_queries_and_forwards_what_they_flag():
    """Calls for three queries fail (an endpoint down for them); the run ends with failures.
    Retried once the endpoint is back, the same run judges them, stage 2 takes the ones they
    flag, and no query is asked twice."""
    dataset = small_dataset(queries=8)
    down = {"question number 1", "question number 3", "question number 6"}
    state = {"down": True}

    def responder(body):
        if state["down"] and query_of(body) in down and body["model"] == "gpt-4o-mini":
            return Reply(status=500, content="upstream is down")
        return sound_judge(body)

    with FakeOpenAIServer(responder) as server:
        stages = [stage(1, server, max_attempts=1), stage(2, server)]
        run = run_cascade(
            dataset, stages, forward_tags=["better", "worse"], false_negative_tags=["better"]
        )
        assert run.status == JobStatus.PARTIAL_FAILURE
        assert cascade_run_retryable(run=run) == {CascadeItemStatus.FAILED: 3}
        forwarded_before = set(stage_items(run, 2).values_list("query__query_id", flat=True))
        assert not forwarded_before & {"q001", "q003", "q006"}

        state["down"] = False
        cascade_run_retry(run=run)
        run.refresh_from_db()
        assert run.status == JobStatus.QUEUED and run.error == ""
        run = _again(run)
        bodies = chat_requests(server)

    assert run.status == JobStatus.SUCCEEDED, run.error
    assert set(stage_items(run, 1).values_list("status", flat=True)) == {CascadeItemStatus.JUDGED}
    # q001 and q003 hold an ANSWERS negative, q006 a PARTLY one: all forwarded now.
    forwarded = set(stage_items(run, 2).values_list("query__query_id", flat=True))
    assert forwarded == forwarded_before | {"q001", "q003", "q006"}
    assert set(stage_items(run, 2).values_list("status", flat=True)) == {CascadeItemStatus.JUDGED}
    # Each (stage, query) was sent once, but the three that failed: once down, once retried.
    sent = Counter((b["model"], query_of(b)) for b in bodies)
    assert {key for key, n in sent.items() if n > 1} == {("gpt-4o-mini", q) for q in down}
    assert max(sent.values()) == 2
    assert run.stats["stages"]["1"]["failed"] == 0


def test_a_run_that_failed_on_its_key_is_retried_from_pending():
    dataset = small_dataset(queries=3)
    state = {"key_ok": False}

    def responder(body):
        if not state["key_ok"]:
            return Reply(status=401, content="invalid api key")
        return sound_judge(body)

    with FakeOpenAIServer(responder) as server:
        run = run_cascade(dataset, [stage(1, server)])
        assert run.status == JobStatus.FAILED
        assert cascade_run_retryable(run=run) == {CascadeItemStatus.PENDING: 3}
        state["key_ok"] = True
        cascade_run_retry(run=run)
        run = _again(run)
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert run.stats["stages"]["1"]["judged"] == 3
    with pytest.raises(ApplicationError, match="no failed or pending item"):
        cascade_run_retry(run=run)


def test_a_running_run_cannot_be_retried():
    dataset = small_dataset(queries=2)
    with FakeOpenAIServer(sound_judge) as server:
        from curation.cascade.create import cascade_run_create

        run = cascade_run_create(dataset=dataset, stages=[stage(1, server)], enqueue=False)
    with pytest.raises(ApplicationError, match="still queued"):
        cascade_run_retry(run=run)


def test_the_budget_holds_back_measured_answers_not_max_tokens():
    """A judge writes 200 tokens of its 4,000. Holding a full answer per call in flight would
    stop this run with about 40 % of its budget unspent; reserving from the measured answers
    spends nearly all of it, never more."""
    dataset = small_dataset(queries=30)
    budget = Decimal("0.006")
    with FakeOpenAIServer(sound_judge) as server:
        settings = stage(1, server, max_tokens=4000, concurrency=4)
        run = run_cascade(dataset, [settings], budget_usd=budget)
    worst_output = call_cost(input_tokens=0, output_tokens=4000, stage=settings)
    # The old rule stops once spent + one worst-case reservation would pass the budget.
    assert budget - worst_output < Decimal("0.8") * budget
    assert run.stats["budget_reached"] is True
    assert Decimal("0.8") * budget <= run.cost_usd <= budget
    resume = run.stats["resume"]
    assert (
        resume["stage"] == 1
        and resume["skipped"]
        == stage_items(run, 1).filter(status=CascadeItemStatus.SKIPPED).count()
        > 0
    )
    per_call = Decimal(resume["per_call_usd"])
    assert per_call == (run.cost_usd / run.stats["stages"]["1"]["paid_calls"]).quantize(per_call)


def test_resume_with_a_larger_budget_takes_up_the_skipped_queries_only(client, curator):
    dataset = small_dataset(queries=12)
    with FakeOpenAIServer(sound_judge) as server:
        run = run_cascade(
            dataset,
            [stage(1, server, concurrency=1), stage(2, server)],
            budget_usd=Decimal("0.0025"),
        )
        skipped = stage_items(run, 1).filter(status=CascadeItemStatus.SKIPPED).count()
        assert skipped and cascade_run_retryable(run=run) == {CascadeItemStatus.SKIPPED: skipped}
        with pytest.raises(ApplicationError, match="larger budget"):
            cascade_run_retry(run=run)

        client.force_login(curator)
        page = client.get(reverse("curation:cascade_run_detail", args=[run.pk])).content.decode()
        assert 'id="budget-stop"' in page and f"{skipped} queries of stage 1" in page
        assert "the budget of $0.0025:" in page and "larger than $0.0025 to take up" in page
        assert re.search(r"should cost about \$\d+\.\d{4} \(\$\d+\.\d{4} per call so far\)", page)
        assert "Resume with this budget" in page
        response = client.post(
            reverse("curation:cascade_run_retry", args=[run.pk]), {"budget_usd": "1"}
        )
        assert response.status_code == 302
        run.refresh_from_db()
        assert run.status == JobStatus.QUEUED and run.budget_usd == Decimal("1")
        assert run.stats["budget_reached"] is False
        run = _again(run)
        bodies = chat_requests(server)

    assert run.status == JobStatus.SUCCEEDED, run.error
    assert set(stage_items(run, 1).values_list("status", flat=True)) == {CascadeItemStatus.JUDGED}
    assert stage_items(run, 2).exists()
    sent = Counter((b["model"], query_of(b)) for b in bodies)
    assert max(sent.values()) == 1  # nothing paid twice
    page = client.get(reverse("curation:cascade_run_detail", args=[run.pk])).content.decode()
    assert 'id="cascade-retry"' not in page
