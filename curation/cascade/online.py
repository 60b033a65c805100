"""The online pass of one cascade stage: a window of concurrent calls kept full while this
thread reads pending items, answers what the ledger already holds, stores new answers and
commits results (design: cascade.md, "Online").

Each turn of the loop: read a page of pending items once the queue runs low ─► send what the
window and the budget allow ─► collect finished calls ─► store answers in the ledger
(within ``LEDGER_SECONDS``) ─► commit finished items (about once a second, with the cancel
check). A hard stop (cancel, a fatal endpoint error) ends reading at once; the budget only
ends paying: later pages are still read for answers the ledger already holds.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections import deque
from typing import TYPE_CHECKING

from core.errors import ApplicationError
from core.jobs import JobCancelled

from ..llm.engine import CallFailed, CallOutcome, CallPool, stage_client_factory
from ..llm.stages import StageSettings
from ..llm.tokens import token_counter_for
from ..models import CascadeItem, CascadeItemStatus
from .work import BudgetReached, Done, Work

if TYPE_CHECKING:
    from .execute import Executor

FLUSH_SECONDS = 1.0  # commit judged items at least this often …
FLUSH_ITEMS = 1000  # … or once this many are waiting
LEDGER_SECONDS = 0.1  # answers reach the ledger at most this long after arriving …
LEDGER_ANSWERS = 64  # … or once this many are waiting


class OnlineStage:
    """The state of one stage's window loop; ``run`` drives it to the end of the stage."""

    def __init__(self, executor: Executor, stage: StageSettings):
        self.executor = executor
        self.stage = stage
        self.counter = token_counter_for(stage.model)
        # Calls beyond the concurrency wait inside the engine, so the endpoint stays busy while
        # this thread builds prompts and commits.
        self.window = max(4 * stage.concurrency, 16)
        self.in_flight: dict[concurrent.futures.Future, Work] = {}
        self.queue: deque[Work] = deque()
        self.done: list[Done] = []
        self.answered: list[tuple[Work, CallOutcome]] = []
        self.pages = executor.pending_pages(stage)
        self.exhausted = False
        self.stop: BaseException | None = None
        self.budget_hit = False
        self.last_flush = time.monotonic()
        self.first_answer_at = 0.0
        self.pool: CallPool | None = None

    def run(self) -> None:
        """Judge the stage's pending items. Raises the hard stop (``JobCancelled``, a fatal
        endpoint error) or ``BudgetReached`` once everything sent was committed."""
        executor, stage = self.executor, self.stage
        if not CascadeItem.objects.filter(
            run=executor.run, stage=stage.number, status=CascadeItemStatus.PENDING
        ).exists():
            return
        with CallPool(stage_client_factory(stage)) as pool:
            self.pool = pool
            while True:
                self._read()
                self._send()
                if not self.in_flight and (
                    self.stop is not None or (self.exhausted and not self.queue)
                ):
                    break
                self._collect()
                now = time.monotonic()
                self._store_answers(now)
                self._commit_if_due(now)
            executor.flush(stage, self.done)
        if self.stop is not None:
            raise self.stop
        if self.budget_hit:
            raise BudgetReached
        executor.progress(stage, force=True)

    def _read(self) -> None:
        """The next page of pending items, once the queue runs low."""
        if self.stop is not None or self.exhausted:
            return
        if not self.budget_hit and len(self.queue) >= self.window:
            return
        page = next(self.pages, None)
        if page is None:
            self.exhausted = True
            return
        for work in self.executor.work_for(self.stage, page):
            if isinstance(work, Done):
                self.done.append(work)
            else:
                self.queue.append(self.executor.prepare(self.stage, work, self.counter))
        self.executor.resolve_cached(self.stage, self.queue, self.done, self.counter)

    def _send(self) -> None:
        """Send what the window and the budget allow."""
        executor = self.executor
        while (
            self.stop is None
            and not self.budget_hit
            and self.queue
            and len(self.in_flight) < self.window
        ):
            work = self.queue[0]
            if executor.budget is not None:
                # Measured answers may have arrived since the work was prepared.
                work.reserve = executor.reserve_for(self.stage, work)
            if (
                executor.budget is not None
                and executor.spent + executor.reserved + work.reserve > executor.budget
            ):
                if self.in_flight or self.answered:
                    # Calls on the wire hold back their worst case; their answers return
                    # most of it. Wait for them before calling the budget reached.
                    break
                self.budget_hit = True
                break
            self.queue.popleft()
            executor.reserved += work.reserve
            self.in_flight[self.pool.submit(messages=work.messages, params=work.params)] = work
        if self.budget_hit:
            self.queue.clear()  # stays pending, then skipped

    def _collect(self) -> None:
        """Wait briefly for calls to finish; keep their answers or record their failures."""
        if not self.in_flight:
            return
        finished, _ = concurrent.futures.wait(
            self.in_flight,
            timeout=LEDGER_SECONDS if self.answered else 0.25,
            return_when=concurrent.futures.FIRST_COMPLETED,
        )
        for future in finished:
            work = self.in_flight.pop(future)
            try:
                # The reservation is released once the answer's cost is on the run
                # (_store_answers), never before: spent + reserved never undercounts.
                self.answered.append((work, future.result()))
            except CallFailed as error:
                self.executor.reserved -= work.reserve
                self._failed(work, error)

    def _failed(self, work: Work, error: CallFailed) -> None:
        if error.stopped:
            return  # never sent: stays pending
        if error.fatal:
            # A wrong key or model fails every call: stop, and leave the items pending rather
            # than failed.
            stage = self.stage
            self.stop = self.stop or ApplicationError(
                f"stage {stage.number} ({stage.model} at {stage.base_url}): {error.message}",
                detail={"stage": stage.number},
            )
            self.pool.stop_sending()
            return
        self.done.append(
            Done(work.item, CascadeItemStatus.FAILED, work=work, error=error.message[:1000])
        )

    def _store_answers(self, now: float) -> None:
        """Answers go to the ledger within LEDGER_SECONDS of arriving, several per commit (a
        commit per answer made the database the bottleneck)."""
        if self.answered and not self.first_answer_at:
            self.first_answer_at = now
        if not self.answered or not (
            not self.in_flight
            or len(self.answered) >= LEDGER_ANSWERS
            or now - self.first_answer_at >= LEDGER_SECONDS
        ):
            return
        executor = self.executor
        calls = executor.ledger_write(self.stage, self.answered)
        for work, _ in self.answered:
            executor.reserved -= work.reserve
        for (work, _), call in zip(self.answered, calls, strict=True):
            executor.handle_answer(self.stage, work, call, self.queue, self.done, self.counter)
        self.answered = []
        self.first_answer_at = 0.0

    def _commit_if_due(self, now: float) -> None:
        if not self.done or (
            len(self.done) < FLUSH_ITEMS and now - self.last_flush < FLUSH_SECONDS
        ):
            return
        self.executor.flush(self.stage, self.done)
        self.done = []
        self.last_flush = now
        try:
            self.executor.progress(self.stage)
        except JobCancelled as cancelled:
            self.stop = self.stop or cancelled
            self.pool.stop_sending()
