"""A real Celery worker runs a cascade, is SIGKILLed in the middle of it and started again:
the run resumes, ends with the same judgments as an uninterrupted run, and no answer the
endpoint gave was paid for twice."""

import threading
import time
from collections import Counter

import pytest

from core.models import JobStatus
from curation.cascade.create import cascade_run_create
from curation.cascade.execute import cascade_run_execute
from curation.models import CascadeItem, CascadeItemStatus, Judgment, LLMCall
from tests.curation.cascade.cascade_support import judge_answer, query_of, small_dataset, stage
from tests.support.openai_server import FakeOpenAIServer, Reply

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Safety limits for a loaded machine; nothing here asserts a duration.
TIMEOUT = 180
ANSWER_BEFORE_KILL = 6


class KillSwitchJudge:
    """Answers the first ANSWER_BEFORE_KILL calls, then holds every further call in flight
    until the test has killed the worker (those answers go to a dead socket: never received,
    never paid). After that it answers everything."""

    def __init__(self):
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.killed = False
        self.requests: Counter = Counter()
        self.served: Counter = Counter()  # answers a live worker received
        self.held = 0

    def __call__(self, body):
        query = query_of(body)
        with self.lock:
            self.requests[query] += 1
            hold = not self.killed and sum(self.served.values()) >= ANSWER_BEFORE_KILL
            if hold:
                self.held += 1
            else:
                self.served[query] += 1
        if hold:
            self.gate.wait(TIMEOUT)
        return Reply(content=judge_answer(body), prompt_tokens=1000, completion_tokens=200)


def wait_for(predicate, what: str, worker):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}:\n{worker.log_text()[-4000:]}")


def test_sigkill_mid_cascade_resumes_without_paying_twice(celery_worker_process):
    dataset = small_dataset(queries=12, name="cascade-kill")
    judge = KillSwitchJudge()
    with FakeOpenAIServer(judge) as server:
        run = cascade_run_create(dataset=dataset, stages=[stage(1, server, concurrency=2)])

        def answered_and_held():
            return (
                LLMCall.objects.filter(cascade_run=run).count() == ANSWER_BEFORE_KILL
                and judge.held == 2
            )

        wait_for(
            answered_and_held,
            "6 answers in the ledger and 2 calls in flight",
            celery_worker_process,
        )
        run.refresh_from_db()
        assert run.status == JobStatus.RUNNING
        celery_worker_process.kill()
        with judge.lock:
            judge.killed = True
        judge.gate.set()

        celery_worker_process.start()

        def finished():
            run.refresh_from_db()
            return run.status not in (JobStatus.QUEUED, JobStatus.RUNNING)

        wait_for(finished, "the resumed run to finish", celery_worker_process)
        assert run.status == JobStatus.SUCCEEDED, (
            run.error,
            celery_worker_process.log_text()[-4000:],
        )

        # Every answer the endpoint gave to a live worker was received once and only once;
        # only the two calls in flight at the kill (never answered) were asked again.
        assert set(judge.served.values()) == {1} and len(judge.served) == 12
        repeated = {q for q, n in judge.requests.items() if n > 1}
        assert len(repeated) == 2 and all(judge.requests[q] == 2 for q in repeated)
        assert LLMCall.objects.filter(cascade_run=run).count() == 12

        items = CascadeItem.objects.filter(run=run)
        assert set(items.values_list("status", flat=True)) == {CascadeItemStatus.JUDGED}
        judgments = Judgment.objects.filter(source_run=f"cascade:{run.pk}")
        assert judgments.count() == 12 * 4
        assert judgments.values("candidate_id").distinct().count() == 12 * 4  # none twice

        # The same cascade run uninterrupted (here, in-process) gives the same verdicts, all
        # from the ledger.
        requests_before = sum(judge.requests.values())
        reference = cascade_run_create(
            dataset=dataset, stages=[stage(1, server, concurrency=2)], enqueue=False
        )
        cascade_run_execute(run_id=reference.pk)
        assert sum(judge.requests.values()) == requests_before

    def verdicts(source):
        return set(
            Judgment.objects.filter(source_run=source).values_list("candidate_id", "verdict", "tag")
        )

    assert verdicts(f"cascade:{run.pk}") == verdicts(f"cascade:{reference.pk}")
    assert ("relevant", "better") in {(v, t) for _, v, t in verdicts(f"cascade:{run.pk}")}
