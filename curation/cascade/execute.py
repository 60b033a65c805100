"""Running a cascade: stage 1 judges every query that has negatives, each later stage only
the queries the stage before flagged (design: cascade.md). One list-wise call per query; every
verdict becomes one machine ``Judgment`` per numbered negative. Calls go through the
``LLMCall`` ledger: an answer already in it is never paid for again, which is also how a
crashed run resumes.

Work is committed in small steps so the run page sees it live and a killed worker loses
almost nothing:

* ledger rows (and the run's cost) are written the moment answers arrive (ledger.py);
* items, their judgments and the run's counters are committed together about once a second
  (``Executor.flush``, writes.py);
* items are created per stage in one transaction (INSERT … ON CONFLICT DO NOTHING) before
  any call of that stage, so a resumed run finds them and carries on with the pending ones.

A stage runs online (online.py: a window of concurrent calls) after, in batch mode, the Batch
API (batch.py) answered what it could at half price.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from decimal import Decimal

from django.db import transaction
from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from core.jobs import JobOutcome, Progress, job_run

from ..bulk import commit_without_waiting_for_disk
from ..llm.engine import call_key
from ..llm.stages import MICRO_USD, StageSettings, call_cost
from ..models import (
    CascadeItem,
    CascadeItemStatus,
    CascadeMode,
    CascadeRun,
    LLMCall,
    RaterKind,
    Verdict,
)
from .batch import BatchStage
from .create import DEFAULT_OUTPUT_TOKENS_PER_CALL, stages_parse
from .ledger import ledger_answers_store, run_spent, split_cost, split_int
from .online import OnlineStage
from .selectors import CREATE_PAGE, prompt_build, prompt_data, query_id_pages, query_negative_ids
from .verdict import rationales_by_doc, verdict_parse
from .work import BudgetReached, Done, Work
from .writes import items_update, judgments_insert

# Answers of a stage measured before its reservations follow them instead of max_tokens.
MEASURED_CALLS = 8
ITEM_PAGE = 500  # pending items read (and prompts built) per query


def cascade_run_execute(*, run_id: int, echo: Progress | None = None) -> None:
    """Worker side of a cascade run. A redelivered task of a finished run does nothing; one
    of a run whose worker died resumes it (pending items only, answers from the ledger)."""
    run = CascadeRun.objects.select_related("dataset").get(pk=run_id)

    def work(progress) -> JobOutcome:
        message = Executor(run, progress).execute()
        run.refresh_from_db(fields=["stats"])
        stages = run.stats.get("stages", {}).values()
        return JobOutcome(
            stats=run.stats,
            message=message,
            items_failed=sum(stage["failed"] for stage in stages),
            items_succeeded=sum(stage["judged"] for stage in stages),
            failure_reasons=_failure_reasons(run),
        )

    job_run(job=run, work=work, echo=echo)


def _failure_reasons(run: CascadeRun, *, top: int = 5) -> list[tuple[str, int]]:
    """The commonest reasons why items failed, counted in SQL."""
    rows = (
        CascadeItem.objects.filter(run=run, status=CascadeItemStatus.FAILED)
        .values("error")
        .annotate(n=Count("id"))
        .order_by("-n", "error")[:top]
    )
    return [(row["error"] or "no reason recorded", row["n"]) for row in rows]


class Executor:
    """One pass of a run: every stage in turn, resuming what an earlier pass left."""

    def __init__(self, run: CascadeRun, progress: Progress):
        self.run = run
        self.stages = stages_parse(run.stages)
        self.forward = frozenset(run.forward_tags)
        self.false_negative = frozenset(run.false_negative_tags)
        self.source_run = f"cascade:{run.pk}"
        self.report = progress
        self.stats = dict(run.stats or {})
        self.stats.setdefault("stages", {})
        self.stats.setdefault("batches", [])
        self.stats["budget_reached"] = bool(self.stats.get("budget_reached"))
        self.spent = run_spent(run)  # what this run paid so far, from the ledger
        self.reserved = Decimal(0)
        self.budget = run.budget_usd
        # Per stage: answers paid by this run so far, the longest (output tokens), the
        # dearest call (USD).
        self.outputs_seen: dict[int, tuple[int, int, Decimal]] = {}

    # -- orchestration

    def execute(self) -> str:
        for index, stage in enumerate(self.stages):
            self.index = index
            self._items_create(stage)
            self._stage_stats_reload(stage)
            try:
                if self.run.mode == CascadeMode.BATCH:
                    BatchStage(self, stage).run()
                OnlineStage(self, stage).run()
            except BudgetReached:
                self._skip_pending(stage)
                self.stats["budget_reached"] = True
                self.stats["resume"] = self._resume_estimate(stage)
                self.save_stats()
                return self._summary(stage)
            self._stage_stats_reload(stage)
            self.save_stats()
        return self._summary(None)

    def _summary(self, stopped_at: StageSettings | None) -> str:
        parts = []
        for stage in self.stages:
            s = self.stats["stages"].get(str(stage.number))
            if s:
                parts.append(
                    f"stage {stage.number}: {s['judged']:,} queries judged, "
                    f"{s['flagged']:,} flagged"
                )
        cost = f"${self.spent:.4f}"
        if stopped_at is not None:
            return (
                f"budget reached: {cost} of ${self.budget:.4f} spent; stopped in stage "
                f"{stopped_at.number}, pending queries skipped · " + " · ".join(parts)
            )[:200]
        return (" · ".join(parts) + f" · {cost}")[:200]

    def _resume_estimate(self, stage: StageSettings) -> dict:
        """What finishing the stopped stage would cost, at the price per call measured so far
        in it; later stages were not started (the launch estimate says what they may cost)."""
        stats = self.stage_stats(stage)
        paid = stats["paid_calls"]
        per_call = Decimal(stats["cost_usd"]) / paid if paid else None
        later = [
            row.get("cost_usd")
            for row in (self.run.estimate or {}).get("stages", [])
            if row.get("stage", 0) > stage.number
        ]
        return {
            "stage": stage.number,
            "skipped": stats["skipped"],
            "per_call_usd": str(per_call.quantize(MICRO_USD)) if per_call is not None else None,
            "stage_usd": str((per_call * stats["skipped"]).quantize(MICRO_USD))
            if per_call is not None
            else None,
            "later_stages_estimate_usd": [str(cost) for cost in later if cost is not None],
        }

    # -- items

    def _items_create(self, stage: StageSettings) -> None:
        """Stage 1: every query, once (one transaction; a later pass finds them). A later
        stage: the items the stage before forwards, added at every pass (ON CONFLICT DO
        NOTHING), so that items a retry judged and flagged are forwarded too."""
        if (
            stage.number == 1
            and CascadeItem.objects.filter(run=self.run, stage=stage.number).exists()
        ):
            return  # created in one transaction by an earlier pass
        with transaction.atomic():
            if stage.number == 1:
                for page in query_id_pages(self.run.dataset):
                    negatives = query_negative_ids(page, self.run.max_negatives)
                    CascadeItem.objects.bulk_create(
                        [
                            CascadeItem(
                                run=self.run, stage=1, query_id=qid, candidate_ids=negatives[qid]
                            )
                            for qid in page
                        ],
                        ignore_conflicts=True,
                    )
            else:
                # Forwarded: flagged, and unparseable (the cheaper judge could not tell; the
                # stronger one decides rather than nobody).
                previous = (
                    CascadeItem.objects.filter(run=self.run, stage=stage.number - 1)
                    .filter(Q(flagged=True) | Q(status=CascadeItemStatus.UNPARSEABLE))
                    .order_by("id")
                )
                after = 0
                while page := list(
                    previous.filter(id__gt=after).values_list("id", "query_id", "candidate_ids")[
                        :CREATE_PAGE
                    ]
                ):
                    after = page[-1][0]
                    CascadeItem.objects.bulk_create(
                        [
                            CascadeItem(
                                run=self.run,
                                stage=stage.number,
                                query_id=query_id,
                                candidate_ids=candidate_ids,
                            )
                            for _, query_id, candidate_ids in page
                        ],
                        ignore_conflicts=True,
                    )

    def pending_pages(self, stage: StageSettings) -> Iterator[list[CascadeItem]]:
        after = 0
        while True:
            page = list(
                CascadeItem.objects.filter(
                    run=self.run, stage=stage.number, status=CascadeItemStatus.PENDING, id__gt=after
                ).order_by("id")[:ITEM_PAGE]
            )
            if not page:
                return
            after = page[-1].id
            yield page
            if len(page) < ITEM_PAGE:
                return

    def work_for(self, stage: StageSettings, page: list[CascadeItem]) -> Iterator[Work | Done]:
        data = prompt_data(
            query_ids=[item.query_id for item in page],
            candidate_ids=[c for item in page for c in item.candidate_ids],
            max_positives=self.run.max_positives,
        )
        for item in page:
            if any(c not in data.negatives for c in item.candidate_ids) or not item.candidate_ids:
                yield Done(
                    item,
                    CascadeItemStatus.FAILED,
                    error="its candidates changed since the run started",
                )
                continue
            prompt = prompt_build(
                data, item.query_id, item.candidate_ids, json_mode=stage.json_mode
            )
            yield Work(item, prompt.messages, prompt.version, prompt.hash, prompt.n_negatives)

    # -- online stage

    def prepare(self, stage: StageSettings, work: Work, counter) -> Work:
        work.params = stage.request_params(attempt=work.attempt)
        work.key = call_key(
            base_url=stage.base_url,
            model=stage.model,
            messages=work.messages,
            params={**work.params, "attempt": work.attempt},
        )
        if self.budget is not None:
            work.input_tokens = counter.count_messages(work.messages)
            work.reserve = self.reserve_for(stage, work)
        return work

    def reserve_for(self, stage: StageSettings, work: Work) -> Decimal:
        """What to hold back from the budget while ``work``'s call is on the wire. Until
        MEASURED_CALLS answers of this stage are in: its prompt plus a full ``max_tokens``
        answer (the worst case). Then 1.5 × what the answers so far measured: the longer of
        (its prompt + 1.5 × the longest answer) and 1.5 × the dearest call, capped by the
        worst case. A real judge writes a few hundred tokens of its 4,096: holding the worst
        case for every call in flight stopped a small budget at a tenth spent (issue 10)."""
        max_tokens = work.params.get("max_tokens") or DEFAULT_OUTPUT_TOKENS_PER_CALL
        worst = call_cost(input_tokens=work.input_tokens, output_tokens=max_tokens, stage=stage)
        seen, longest, dearest = self.outputs_seen.get(stage.number, (0, 0, Decimal(0)))
        if seen < MEASURED_CALLS:
            return worst
        measured = max(
            call_cost(
                input_tokens=work.input_tokens, output_tokens=math.ceil(1.5 * longest), stage=stage
            ),
            dearest * Decimal("1.5"),
        )
        return min(worst, measured)

    def outputs_note(self, stage: StageSettings, calls) -> None:
        seen, longest, dearest = self.outputs_seen.get(stage.number, (0, 0, Decimal(0)))
        for call in calls:
            seen += 1
            longest = max(longest, call.output_tokens or 0)
            dearest = max(dearest, Decimal(call.cost_usd or 0))
        self.outputs_seen[stage.number] = (seen, longest, dearest)

    def resolve_cached(self, stage, queue: deque[Work], done: list[Done], counter) -> None:
        """Answer queued work from the ledger where it can: no call, nothing paid."""
        keys = [work.key for work in queue]
        cached = {call.key: call for call in LLMCall.objects.filter(key__in=keys)}
        if not cached:
            return
        remaining = deque()
        stats = self.stage_stats(stage)
        while queue:
            work = queue.popleft()
            call = cached.get(work.key)
            if call is None:
                remaining.append(work)
                continue
            stats["cached_calls"] += 1
            self.handle_answer(stage, work, call, remaining, done, counter, cached=True)
        queue.extend(remaining)

    def handle_answer(self, stage, work: Work, call: LLMCall, queue, done, counter, cached=False):
        verdict = verdict_parse(
            call.response_text, n_negatives=work.n, finish_reason=call.finish_reason
        )
        if verdict.ok:
            done.append(Done(work.item, CascadeItemStatus.JUDGED, call, verdict, work))
            return
        if work.attempt == 1:
            # Recorded (the ledger has it) and asked once more under a different key.
            self.stage_stats(stage)["retries"] += 1
            retry = self.prepare(
                stage,
                Work(
                    work.item,
                    work.messages,
                    work.prompt_version,
                    work.prompt_hash,
                    work.n,
                    attempt=2,
                ),
                counter,
            )
            again = LLMCall.objects.filter(key=retry.key).first()
            if again is not None:
                self.stage_stats(stage)["cached_calls"] += 1
                self.handle_answer(stage, retry, again, queue, done, counter, cached=True)
            else:
                queue.appendleft(retry)
            return
        done.append(
            Done(
                work.item,
                CascadeItemStatus.UNPARSEABLE,
                call,
                verdict,
                work,
                error=f"{verdict.status}: {verdict.error}"[:1000],
            )
        )

    # -- ledger

    def ledger_write(self, stage: StageSettings, answered, *, batch: bool = False) -> list[LLMCall]:
        """Store answers the moment they arrive (and what they cost on the run), so a worker
        killed a second later has still paid for each of them only once."""
        stored = ledger_answers_store(run=self.run, stage=stage, answered=answered, batch=batch)
        self.outputs_note(stage, stored.calls)
        self.spent += stored.paid
        stats = self.stage_stats(stage)
        stats["paid_calls"] += len(stored.calls)
        stats["cost_usd"] = str(Decimal(stats["cost_usd"]) + stored.paid)
        stats["input_tokens"] += stored.input_tokens
        stats["output_tokens"] += stored.output_tokens
        return stored.calls

    # -- writing results

    def flush(self, stage: StageSettings, done: list[Done]) -> None:
        """Commit finished items with their judgments and the run's counters, together: an
        item is either judged with all its judgments or still pending, never half."""
        if not done:
            return
        judgments, items = [], []
        stats = self.stage_stats(stage)
        for result in done:
            flagged = False
            if result.status == CascadeItemStatus.JUDGED:
                flagged = bool(result.verdict.flagged(self.forward))
                judgments.extend(self._judgment_rows(stage, result))
                stats["judged"] += 1
                stats["flagged"] += int(flagged)
            elif result.status == CascadeItemStatus.UNPARSEABLE:
                stats["unparseable"] += 1
            elif result.status == CascadeItemStatus.FAILED:
                stats["failed"] += 1
            call_id = result.call.pk if result.call is not None else None
            items.append((result.item.pk, result.status, flagged, call_id, result.error))
        with transaction.atomic():
            commit_without_waiting_for_disk()
            judgments_insert(judgments)
            items_update(items)
            CascadeRun.objects.filter(pk=self.run.pk).update(stats=self.stats)

    def _judgment_rows(self, stage: StageSettings, result: Done) -> list[tuple]:
        """One row per numbered negative, in ``JUDGMENT_COLUMNS`` order."""
        verdict, call, work = result.verdict, result.call, result.work
        n = len(result.item.candidate_ids)
        tokens_in = split_int(call.input_tokens, n)
        tokens_out = split_int(call.output_tokens, n)
        costs = split_cost(call.cost_usd, n)
        rationales = rationales_by_doc(verdict.reasoning, n)
        better, worse = set(verdict.better), set(verdict.worse)
        now = timezone.now()
        rows = []
        for index, candidate_id in enumerate(result.item.candidate_ids, start=1):
            tag = "better" if index in better else "worse" if index in worse else ""
            relevant = bool(tag) and tag in self.false_negative
            rows.append((
                candidate_id, stage.rater, RaterKind.MACHINE.value,
                Verdict.RELEVANT.value if relevant else Verdict.NOT_RELEVANT.value, tag,
                rationales.get(index, ""), "", stage.model, work.prompt_version, work.prompt_hash,
                tokens_in[index - 1], tokens_out[index - 1], costs[index - 1],
                call.latency_ms,  # the call's: a latency does not add up
                self.source_run, now,
            ))  # fmt: skip
        return rows

    def _skip_pending(self, stage: StageSettings) -> None:
        skipped = CascadeItem.objects.filter(
            run=self.run, stage=stage.number, status=CascadeItemStatus.PENDING
        ).update(
            status=CascadeItemStatus.SKIPPED, error="budget reached", updated_at=timezone.now()
        )
        self.stage_stats(stage)["skipped"] += skipped

    # -- stats and progress

    def stage_stats(self, stage: StageSettings) -> dict:
        return self.stats["stages"].setdefault(
            str(stage.number),
            {
                "model": stage.model, "items": 0, "judged": 0, "flagged": 0, "unparseable": 0,
                "failed": 0, "skipped": 0, "paid_calls": 0, "cached_calls": 0, "retries": 0,
                "batch_missing": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": "0",
            },
        )  # fmt: skip

    def _stage_stats_reload(self, stage: StageSettings) -> None:
        """Counts from the database (exact after a crash); what only this process knew
        (cached calls, retries) carries over from the saved stats."""
        stats = self.stage_stats(stage)
        counts = CascadeItem.objects.filter(run=self.run, stage=stage.number).aggregate(
            items=Count("id"),
            judged=Count("id", filter=Q(status=CascadeItemStatus.JUDGED)),
            flagged=Count("id", filter=Q(flagged=True)),
            unparseable=Count("id", filter=Q(status=CascadeItemStatus.UNPARSEABLE)),
            failed=Count("id", filter=Q(status=CascadeItemStatus.FAILED)),
            skipped=Count("id", filter=Q(status=CascadeItemStatus.SKIPPED)),
        )
        ledger = LLMCall.objects.filter(cascade_run=self.run, stage=stage.number).aggregate(
            paid_calls=Count("id"),
            tokens_in=Sum("input_tokens"),
            tokens_out=Sum("output_tokens"),
            cost=Sum("cost_usd"),
            longest=Max("output_tokens"),
            dearest=Max("cost_usd"),
        )
        self.outputs_seen[stage.number] = (
            ledger["paid_calls"],
            ledger["longest"] or 0,
            ledger["dearest"] or Decimal(0),
        )
        stats.update(counts)
        stats["paid_calls"] = ledger["paid_calls"]
        stats["input_tokens"] = ledger["tokens_in"] or 0
        stats["output_tokens"] = ledger["tokens_out"] or 0
        stats["cost_usd"] = str((ledger["cost"] or Decimal(0)).quantize(MICRO_USD))

    def save_stats(self) -> None:
        CascadeRun.objects.filter(pk=self.run.pk).update(stats=self.stats)

    def progress(self, stage: StageSettings, *, force: bool = False) -> None:
        stats = self.stage_stats(stage)
        finished = stats["judged"] + stats["unparseable"] + stats["failed"] + stats["skipped"]
        total = max(stats["items"], 1)
        fraction = (self.index + min(finished / total, 1.0)) / len(self.stages)
        self.report(
            fraction,
            f"stage {stage.number}/{len(self.stages)} ({stage.model}): {finished:,} of "
            f"{stats['items']:,} queries · {stats['flagged']:,} flagged · ${self.spent:.4f}",
            force=force,
        )
