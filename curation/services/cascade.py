"""The cascade of LLM judges over a dataset's hard negatives (design: curation/llm/cascade.md).

Stage 1 judges every query that has negatives, each later stage only the queries the stage
before flagged. One list-wise call per query; every verdict becomes one machine ``Judgment``
per numbered negative. Calls go through the ``LLMCall`` ledger: an answer already in it is
never paid for again, which is also how a crashed run resumes.

Work is committed in small steps so the run page sees it live and a killed worker loses
almost nothing:

* ledger rows (and the run's cost) are written the moment answers arrive;
* items, their judgments and the run's counters are committed together about once a second;
* items are created per stage in one transaction (INSERT … ON CONFLICT DO NOTHING) before
  any call of that stage, so a resumed run finds them and carries on with the pending ones.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Sum
from django.utils import timezone

from core.errors import ApplicationError
from core.jobs import JobCancelled, JobOutcome, Progress, job_enqueue, job_run

from ..llm.batch import BatchClient, batch_line
from ..llm.engine import CallFailed, CallOutcome, CallPool, JudgeClient, call_key
from ..llm.prompts import judge_prompt_build
from ..llm.stages import MICRO_USD, StageSettings, call_cost, stages_from_env
from ..llm.tokens import token_counter_for
from ..llm.verdict import ParsedVerdict, rationales_by_doc, verdict_parse
from ..models import (
    Candidate,
    CandidateRole,
    CascadeItem,
    CascadeItemStatus,
    CascadeMode,
    CascadeRun,
    Dataset,
    Judgment,
    LLMCall,
    Query,
    RaterKind,
    Verdict,
)

logger = logging.getLogger(__name__)

TAGS = ("better", "worse")
DEFAULT_FORWARD_TAGS = ["better", "worse"]  # RLHN: any negative named in the verdict
DEFAULT_FALSE_NEGATIVE_TAGS = ["better"]  # "as good as the positive": a false negative
# RLHN's cost estimate assumed this many output tokens per call.
DEFAULT_OUTPUT_TOKENS_PER_CALL = 2048
# Share of queries stage 1 flags, for the stage-2 volume of an estimate: MS MARCO in the
# RLHN paper, 391,965 of 485,823 (0.81).
DEFAULT_FLAG_RATE = 0.8
MAX_POSITIVES_IN_PROMPT = 5
ITEM_PAGE = 500  # pending items read (and prompts built) per query
CREATE_PAGE = 1000  # queries per page when creating items
FLUSH_SECONDS = 1.0  # commit judged items at least this often …
FLUSH_ITEMS = 1000  # … or once this many are waiting
LEDGER_SECONDS = 0.1  # answers reach the ledger at most this long after arriving …
LEDGER_ANSWERS = 64  # … or once this many are waiting
BATCH_POLL_SECONDS = float(os.environ.get("SIEVE_LLM_BATCH_POLL_SECONDS", "30"))


# --- settings and validation ---------------------------------------------------------------------


def cascade_defaults(*, environ: dict | None = None) -> dict:
    """What the launch form and the command start from: stages from the environment."""
    return {
        "stages": [stage.as_dict() for stage in stages_from_env(environ)],
        "mode": CascadeMode.ONLINE,
        "forward_tags": list(DEFAULT_FORWARD_TAGS),
        "false_negative_tags": list(DEFAULT_FALSE_NEGATIVE_TAGS),
        "max_negatives": 25,
        "output_tokens_per_call": DEFAULT_OUTPUT_TOKENS_PER_CALL,
        "flag_rate": DEFAULT_FLAG_RATE,
    }


def _validate(
    *,
    stages: list[StageSettings],
    mode: str,
    forward_tags: list[str],
    false_negative_tags: list[str],
    max_negatives: int,
    budget_usd: Decimal | None,
) -> None:
    if not stages:
        raise ApplicationError("a cascade needs at least one stage", detail={"field": "stages"})
    for number, stage in enumerate(stages, start=1):
        if stage.number != number:
            raise ApplicationError(
                f"stage {stage.number} is out of order", detail={"field": "stages"}
            )
        if not stage.model or not stage.base_url:
            raise ApplicationError(
                f"stage {number} needs a model and a base URL", detail={"field": "stages"}
            )
        if stage.concurrency < 1 or stage.rpm < 0 or stage.max_attempts < 1:
            raise ApplicationError(
                f"stage {number}: concurrency and attempts must be >= 1, rpm >= 0",
                detail={"field": "stages"},
            )
        if Decimal(stage.price_in_per_m) < 0 or Decimal(stage.price_out_per_m) < 0:
            raise ApplicationError(
                f"stage {number}: prices cannot be negative", detail={"field": "stages"}
            )
    if mode not in CascadeMode.values:
        raise ApplicationError(f"unknown mode {mode!r}", detail={"field": "mode"})
    for name, tags in (
        ("forward_tags", forward_tags),
        ("false_negative_tags", false_negative_tags),
    ):
        unknown = set(tags) - set(TAGS)
        if unknown or not tags:
            raise ApplicationError(
                f"{name} must be a non-empty subset of {', '.join(TAGS)}", detail={"field": name}
            )
    if not 1 <= max_negatives <= 100:
        raise ApplicationError(
            "max_negatives must be between 1 and 100", detail={"field": "max_negatives"}
        )
    if budget_usd is not None and budget_usd <= 0:
        raise ApplicationError("the budget must be more than $0", detail={"field": "budget_usd"})


def _stages(data: list) -> list[StageSettings]:
    return [s if isinstance(s, StageSettings) else StageSettings.from_dict(s) for s in data]


def _passage_text(title: str, text: str) -> str:
    return f"{title}\n{text}" if title else text


# --- estimate ------------------------------------------------------------------------------------


def _queries_with_negatives(dataset: Dataset):
    negatives = Candidate.objects.filter(query_id=OuterRef("pk"), role=CandidateRole.NEGATIVE)
    return Query.objects.filter(dataset=dataset).filter(Exists(negatives))


def cascade_estimate(
    *,
    dataset: Dataset,
    stages: list,
    max_negatives: int = 25,
    mode: str = CascadeMode.ONLINE,
    output_tokens_per_call: int = DEFAULT_OUTPUT_TOKENS_PER_CALL,
    flag_rate: float = DEFAULT_FLAG_RATE,
    sample_limit: int | None = None,
) -> dict:
    """Dry-run cost of a cascade: input tokens counted on the exact prompts we would send
    (tiktoken where its vocabulary is available, else characters / 4, flagged ``exact``
    False), ``output_tokens_per_call`` assumed per call, and each later stage judging
    ``flag_rate`` of the queries of the stage before. With ``sample_limit``, datasets with
    more queries than that are estimated from an evenly spread sample of them."""
    stages = _stages(stages)
    total = _queries_with_negatives(dataset).count()
    sampled = bool(sample_limit and total > sample_limit)
    query_ids = _queries_with_negatives(dataset).order_by("id").values_list("id", flat=True)
    if sampled:
        # Every k-th query by id: spread over the whole dataset, no ORDER BY random().
        stride = -(-total // sample_limit)
        chosen = [
            qid
            for index, qid in enumerate(query_ids.iterator(chunk_size=5000))
            if index % stride == 0
        ]
    else:
        chosen = None
    counters = {stage.number: token_counter_for(stage.model) for stage in stages}
    input_tokens = {stage.number: 0 for stage in stages}
    counted = 0
    for prompts in _prompt_pages_for_estimate(
        dataset=dataset, query_ids=chosen, max_negatives=max_negatives, stages=stages
    ):
        for per_stage in prompts:
            counted += 1
            for number, messages in per_stage.items():
                input_tokens[number] += counters[number].count_messages(messages)
    scale = total / counted if counted else 0.0
    batch = mode == CascadeMode.BATCH
    rows, calls, cost_total = [], float(total), Decimal(0)
    strong_only = None
    for index, stage in enumerate(stages):
        if index:
            calls *= flag_rate
        per_call_in = input_tokens[stage.number] / counted if counted else 0.0
        tokens_in = round(per_call_in * calls)
        tokens_out = round(output_tokens_per_call * calls)
        cost = call_cost(input_tokens=tokens_in, output_tokens=tokens_out, stage=stage, batch=batch)
        cost_total += cost
        rows.append(
            {
                "stage": stage.number,
                "model": stage.model,
                "calls": round(calls),
                "input_tokens": tokens_in,
                "output_tokens": tokens_out,
                "cost_usd": str(cost),
                "token_count": counters[stage.number].method,
                "exact": counters[stage.number].exact,
            }
        )
        if index == len(stages) - 1:
            # What the strongest judge alone would cost on every query.
            strong_only = call_cost(
                input_tokens=round(per_call_in * total),
                output_tokens=round(output_tokens_per_call * total),
                stage=stage,
                batch=batch,
            )
    return {
        "queries": total,
        "counted_queries": counted,
        "sampled": sampled,
        "scale": round(scale, 4),
        "mode": mode,
        "output_tokens_per_call": output_tokens_per_call,
        "flag_rate": flag_rate,
        "stages": rows,
        "cost_usd": str(cost_total),
        "strong_judge_only_cost_usd": str(strong_only) if strong_only is not None else None,
        "exact_tokens": all(r["exact"] for r in rows),
    }


def _prompt_pages_for_estimate(
    *, dataset, query_ids, max_negatives, stages
) -> Iterator[list[dict]]:
    """Pages of {stage number: messages} for each query (the prompt differs only in its answer
    format, JSON or tagged, which each stage may choose)."""
    if query_ids is None:
        source = _queries_with_negatives(dataset).order_by("id").values_list("id", flat=True)
        ids_iter = source.iterator(chunk_size=CREATE_PAGE)
    else:
        ids_iter = iter(query_ids)
    while True:
        page = [qid for _, qid in zip(range(CREATE_PAGE), ids_iter, strict=False)]
        if not page:
            return
        negatives = _negatives_for(page, max_negatives)
        data = _prompt_data(
            query_ids=page, candidate_ids=[c for ids in negatives.values() for c in ids]
        )
        result = []
        for qid in page:
            per_stage = {}
            for stage in stages:
                prompt = _build_prompt(data, qid, negatives[qid], json_mode=stage.json_mode)
                per_stage[stage.number] = prompt.messages
            result.append(per_stage)
        yield result


# --- run creation --------------------------------------------------------------------------------


def cascade_run_create(
    *,
    dataset: Dataset,
    stages: list,
    mode: str = CascadeMode.ONLINE,
    forward_tags: list[str] | None = None,
    false_negative_tags: list[str] | None = None,
    max_negatives: int = 25,
    budget_usd: Decimal | None = None,
    estimate: dict | None = None,
    user=None,
    enqueue: bool = True,
) -> CascadeRun:
    """Record a cascade run and (``enqueue``) send it to the ``llm`` queue once this
    transaction commits. The stage settings are stored as given; no API key ever is."""
    stages = _stages(stages)
    forward_tags = list(forward_tags or DEFAULT_FORWARD_TAGS)
    false_negative_tags = list(false_negative_tags or DEFAULT_FALSE_NEGATIVE_TAGS)
    budget_usd = Decimal(str(budget_usd)) if budget_usd not in (None, "") else None
    _validate(
        stages=stages,
        mode=mode,
        forward_tags=forward_tags,
        false_negative_tags=false_negative_tags,
        max_negatives=max_negatives,
        budget_usd=budget_usd,
    )
    if estimate is None:
        estimate = cascade_estimate(
            dataset=dataset,
            stages=stages,
            max_negatives=max_negatives,
            mode=mode,
            sample_limit=2000,
        )
    with transaction.atomic():
        run = CascadeRun.objects.create(
            dataset=dataset,
            stages=[stage.as_dict() for stage in stages],
            mode=mode,
            forward_tags=forward_tags,
            false_negative_tags=false_negative_tags,
            max_negatives=max_negatives,
            budget_usd=budget_usd,
            estimate=estimate,
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        if enqueue:
            job_enqueue(job=run)
    return run


# --- execution -----------------------------------------------------------------------------------


def cascade_run_execute(*, run_id: int, echo: Progress | None = None) -> None:
    """Worker side of a cascade run. A redelivered task of a finished run does nothing; one
    of a run whose worker died resumes it (pending items only, answers from the ledger)."""
    run = CascadeRun.objects.select_related("dataset").get(pk=run_id)

    def work(progress) -> JobOutcome:
        message = _Executor(run, progress).execute()
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


@dataclass
class _Work:
    item: CascadeItem
    messages: list[dict]
    prompt_version: str
    prompt_hash: str
    n: int
    attempt: int = 1
    key: str = ""
    params: dict = field(default_factory=dict)
    reserve: Decimal = Decimal(0)


@dataclass
class _Done:
    item: CascadeItem
    status: str
    call: LLMCall | None = None
    verdict: ParsedVerdict | None = None
    work: _Work | None = None
    error: str = ""


class _BudgetReached(Exception):
    pass


class _Executor:
    """One pass of a run: every stage in turn, resuming what an earlier pass left."""

    def __init__(self, run: CascadeRun, progress: Progress):
        self.run = run
        self.stages = _stages(run.stages)
        self.forward = frozenset(run.forward_tags)
        self.false_negative = frozenset(run.false_negative_tags)
        self.source_run = f"cascade:{run.pk}"
        self.report = progress
        self.stats = dict(run.stats or {})
        self.stats.setdefault("stages", {})
        self.stats.setdefault("batches", [])
        self.stats["budget_reached"] = bool(self.stats.get("budget_reached"))
        self.spent = _run_spent(run)  # what this run paid so far, from the ledger
        self.reserved = Decimal(0)
        self.budget = run.budget_usd

    # -- orchestration

    def execute(self) -> str:
        for index, stage in enumerate(self.stages):
            self.index = index
            self._items_create(stage)
            self._stage_stats_reload(stage)
            try:
                if self.run.mode == CascadeMode.BATCH:
                    self._stage_batch(stage)
                self._stage_online(stage)
            except _BudgetReached:
                self._skip_pending(stage)
                self.stats["budget_reached"] = True
                self._save_stats()
                return self._summary(stage)
            self._stage_stats_reload(stage)
            self._save_stats()
        return self._summary(None)

    def _summary(self, stopped_at: StageSettings | None) -> str:
        parts = []
        for stage in self.stages:
            s = self.stats["stages"].get(str(stage.number))
            if s:
                parts.append(
                    f"stage {stage.number}: {s['judged']:,} judged, {s['flagged']:,} flagged"
                )
        cost = f"${self.spent:.4f}"
        if stopped_at is not None:
            return (
                f"budget reached: {cost} of ${self.budget} spent; stopped in stage "
                f"{stopped_at.number}, pending queries skipped · " + " · ".join(parts)
            )[:200]
        return (" · ".join(parts) + f" · {cost}")[:200]

    # -- items

    def _items_create(self, stage: StageSettings) -> None:
        if CascadeItem.objects.filter(run=self.run, stage=stage.number).exists():
            return  # created in one transaction by an earlier pass
        with transaction.atomic():
            if stage.number == 1:
                for page in _query_pages(self.run.dataset):
                    negatives = _negatives_for(page, self.run.max_negatives)
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

    def _pending_pages(self, stage: StageSettings) -> Iterator[list[CascadeItem]]:
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

    def _work_for(self, stage: StageSettings, page: list[CascadeItem]) -> Iterator[_Work | _Done]:
        data = _prompt_data(
            query_ids=[item.query_id for item in page],
            candidate_ids=[c for item in page for c in item.candidate_ids],
        )
        for item in page:
            if any(c not in data.negatives for c in item.candidate_ids) or not item.candidate_ids:
                yield _Done(
                    item,
                    CascadeItemStatus.FAILED,
                    error="its candidates changed since the run started",
                )
                continue
            prompt = _build_prompt(
                data, item.query_id, item.candidate_ids, json_mode=stage.json_mode
            )
            yield _Work(item, prompt.messages, prompt.version, prompt.hash, prompt.n_negatives)

    # -- online stage

    def _prepare(self, stage: StageSettings, work: _Work, counter) -> _Work:
        work.params = stage.request_params(attempt=work.attempt)
        work.key = call_key(
            base_url=stage.base_url,
            model=stage.model,
            messages=work.messages,
            params={**work.params, "attempt": work.attempt},
        )
        if self.budget is not None:
            # The most this call can cost: its prompt plus a full answer.
            expected_out = work.params.get("max_tokens") or DEFAULT_OUTPUT_TOKENS_PER_CALL
            work.reserve = call_cost(
                input_tokens=counter.count_messages(work.messages),
                output_tokens=expected_out,
                stage=stage,
            )
        return work

    def _stage_online(self, stage: StageSettings) -> None:
        if not CascadeItem.objects.filter(
            run=self.run, stage=stage.number, status=CascadeItemStatus.PENDING
        ).exists():
            return
        api_key = os.environ.get(stage.api_key_env, "")
        counter = token_counter_for(stage.model)
        # Calls beyond the concurrency wait inside the engine, so the endpoint stays busy while
        # this thread builds prompts and commits.
        window = max(4 * stage.concurrency, 16)
        in_flight: dict[concurrent.futures.Future, _Work] = {}
        queue: deque[_Work] = deque()
        done: list[_Done] = []
        answered: list[tuple[_Work, CallOutcome]] = []
        pages = self._pending_pages(stage)
        exhausted = False
        # A hard stop (cancel, a fatal endpoint error) ends reading at once. The budget only
        # ends paying: later pages are still read for answers the ledger already holds.
        stop: BaseException | None = None
        budget_hit = False
        last_flush = time.monotonic()
        first_answer_at = 0.0

        def factory():
            return JudgeClient(
                base_url=stage.base_url, api_key=api_key, model=stage.model,
                concurrency=stage.concurrency, rpm=stage.rpm, timeout_s=stage.timeout_s,
                max_attempts=stage.max_attempts, backoff_base_s=stage.backoff_base_s,
            )  # fmt: skip

        with CallPool(factory) as pool:
            while True:
                # Read the next page of pending items once the queue runs low.
                if stop is None and not exhausted and (budget_hit or len(queue) < window):
                    page = next(pages, None)
                    if page is None:
                        exhausted = True
                    else:
                        for work in self._work_for(stage, page):
                            if isinstance(work, _Done):
                                done.append(work)
                            else:
                                queue.append(self._prepare(stage, work, counter))
                        self._resolve_cached(stage, queue, done, counter)
                # Send what the window and the budget allow.
                while stop is None and not budget_hit and queue and len(in_flight) < window:
                    work = queue[0]
                    if (
                        self.budget is not None
                        and self.spent + self.reserved + work.reserve > self.budget
                    ):
                        budget_hit = True
                        break
                    queue.popleft()
                    self.reserved += work.reserve
                    in_flight[pool.submit(messages=work.messages, params=work.params)] = work
                if budget_hit:
                    queue.clear()  # stays pending, then skipped
                if not in_flight and (stop is not None or (exhausted and not queue)):
                    break
                if in_flight:
                    finished, _ = concurrent.futures.wait(
                        in_flight,
                        timeout=LEDGER_SECONDS if answered else 0.25,
                        return_when=concurrent.futures.FIRST_COMPLETED,
                    )
                    for future in finished:
                        work = in_flight.pop(future)
                        self.reserved -= work.reserve
                        try:
                            answered.append((work, future.result()))
                        except CallFailed as error:
                            if error.stopped:
                                continue  # never sent: stays pending
                            if error.fatal:
                                # A wrong key or model fails every call: stop, and leave the
                                # items pending rather than failed.
                                stop = stop or ApplicationError(
                                    f"stage {stage.number} ({stage.model} at {stage.base_url}): "
                                    f"{error.message}",
                                    detail={"stage": stage.number},
                                )
                                pool.stop_sending()
                                continue
                            done.append(
                                _Done(
                                    work.item,
                                    CascadeItemStatus.FAILED,
                                    work=work,
                                    error=error.message[:1000],
                                )
                            )
                now = time.monotonic()
                if answered and not first_answer_at:
                    first_answer_at = now
                # Answers go to the ledger within LEDGER_SECONDS of arriving, several per
                # commit (a commit per answer made the database the bottleneck).
                if answered and (
                    not in_flight
                    or len(answered) >= LEDGER_ANSWERS
                    or now - first_answer_at >= LEDGER_SECONDS
                ):
                    calls = self._ledger_write(stage, answered)
                    for (work, _), call in zip(answered, calls, strict=True):
                        self._handle_answer(stage, work, call, queue, done, counter)
                    answered = []
                    first_answer_at = 0.0
                if done and (len(done) >= FLUSH_ITEMS or now - last_flush >= FLUSH_SECONDS):
                    self._flush(stage, done)
                    done = []
                    last_flush = now
                    try:
                        self._progress(stage)
                    except JobCancelled as cancelled:
                        stop = stop or cancelled
                        pool.stop_sending()
            self._flush(stage, done)
        if stop is not None:
            raise stop
        if budget_hit:
            raise _BudgetReached
        self._progress(stage, force=True)

    def _resolve_cached(self, stage, queue: deque[_Work], done: list[_Done], counter) -> None:
        """Answer queued work from the ledger where it can: no call, nothing paid."""
        keys = [work.key for work in queue]
        cached = {call.key: call for call in LLMCall.objects.filter(key__in=keys)}
        if not cached:
            return
        remaining = deque()
        stats = self._stage_stats(stage)
        while queue:
            work = queue.popleft()
            call = cached.get(work.key)
            if call is None:
                remaining.append(work)
                continue
            stats["cached_calls"] += 1
            self._handle_answer(stage, work, call, remaining, done, counter, cached=True)
        queue.extend(remaining)

    def _handle_answer(self, stage, work: _Work, call: LLMCall, queue, done, counter, cached=False):
        verdict = verdict_parse(
            call.response_text, n_negatives=work.n, finish_reason=call.finish_reason
        )
        if verdict.ok:
            done.append(_Done(work.item, CascadeItemStatus.JUDGED, call, verdict, work))
            return
        if work.attempt == 1:
            # Recorded (the ledger has it) and asked once more under a different key.
            self._stage_stats(stage)["retries"] += 1
            retry = self._prepare(
                stage,
                _Work(
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
                self._stage_stats(stage)["cached_calls"] += 1
                self._handle_answer(stage, retry, again, queue, done, counter, cached=True)
            else:
                queue.appendleft(retry)
            return
        done.append(
            _Done(
                work.item,
                CascadeItemStatus.UNPARSEABLE,
                call,
                verdict,
                work,
                error=f"{verdict.status}: {verdict.error}"[:1000],
            )
        )

    # -- ledger

    def _ledger_write(
        self, stage: StageSettings, answered, *, batch: bool = False
    ) -> list[LLMCall]:
        """Store answers the moment they arrive (and what they cost on the run), so a worker
        killed a second later has still paid for each of them only once."""
        rows = []
        for work, outcome in answered:
            rows.append(
                LLMCall(
                    key=work.key,
                    base_url=stage.base_url,
                    model=stage.model,
                    request={
                        "messages": work.messages,
                        "params": {**work.params, "attempt": work.attempt},
                    },
                    response_text=outcome.text,
                    finish_reason=outcome.finish_reason,
                    input_tokens=outcome.input_tokens,
                    output_tokens=outcome.output_tokens,
                    cost_usd=call_cost(
                        input_tokens=outcome.input_tokens,
                        output_tokens=outcome.output_tokens,
                        stage=stage,
                        batch=batch,
                    ),
                    latency_ms=outcome.latency_ms,
                    attempts=outcome.attempts,
                    batch=batch,
                    cascade_run=self.run,
                    stage=stage.number,
                )
            )
        paid = sum((row.cost_usd for row in rows), Decimal(0))
        tokens_in = sum(row.input_tokens for row in rows)
        tokens_out = sum(row.output_tokens for row in rows)
        with transaction.atomic():
            _commit_without_waiting_for_disk()
            LLMCall.objects.bulk_create(rows, ignore_conflicts=True)
            CascadeRun.objects.filter(pk=self.run.pk).update(
                cost_usd=F("cost_usd") + paid,
                input_tokens=F("input_tokens") + tokens_in,
                output_tokens=F("output_tokens") + tokens_out,
            )
        self.spent += paid
        stats = self._stage_stats(stage)
        stats["paid_calls"] += len(rows)
        stats["cost_usd"] = str(Decimal(stats["cost_usd"]) + paid)
        stats["input_tokens"] += tokens_in
        stats["output_tokens"] += tokens_out
        # ignore_conflicts leaves primary keys unset (and another run may have stored the
        # same key a moment earlier): look the ids up by key.
        ids = dict(LLMCall.objects.filter(key__in=[r.key for r in rows]).values_list("key", "id"))
        for row in rows:
            row.pk = ids.get(row.key)
        return rows

    # -- writing results

    def _flush(self, stage: StageSettings, done: list[_Done]) -> None:
        """Commit finished items with their judgments and the run's counters, together: an
        item is either judged with all its judgments or still pending, never half."""
        if not done:
            return
        judgments, items = [], []
        stats = self._stage_stats(stage)
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
            _commit_without_waiting_for_disk()
            _judgments_insert(judgments)
            _items_update(items)
            CascadeRun.objects.filter(pk=self.run.pk).update(stats=self.stats)

    def _judgment_rows(self, stage: StageSettings, result: _Done) -> list[tuple]:
        """One row per numbered negative, in ``JUDGMENT_COLUMNS`` order."""
        verdict, call, work = result.verdict, result.call, result.work
        n = len(result.item.candidate_ids)
        tokens_in = _split_int(call.input_tokens, n)
        tokens_out = _split_int(call.output_tokens, n)
        costs = _split_cost(call.cost_usd, n)
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
        self._stage_stats(stage)["skipped"] += skipped

    # -- stats and progress

    def _stage_stats(self, stage: StageSettings) -> dict:
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
        stats = self._stage_stats(stage)
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
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cost=Sum("cost_usd"),
        )
        stats.update(counts)
        stats["paid_calls"] = ledger["paid_calls"]
        stats["input_tokens"] = ledger["input_tokens"] or 0
        stats["output_tokens"] = ledger["output_tokens"] or 0
        stats["cost_usd"] = str((ledger["cost"] or Decimal(0)).quantize(MICRO_USD))

    def _save_stats(self) -> None:
        CascadeRun.objects.filter(pk=self.run.pk).update(stats=self.stats)

    def _progress(self, stage: StageSettings, *, force: bool = False) -> None:
        stats = self._stage_stats(stage)
        finished = stats["judged"] + stats["unparseable"] + stats["failed"] + stats["skipped"]
        total = max(stats["items"], 1)
        fraction = (self.index + min(finished / total, 1.0)) / len(self.stages)
        self.report(
            fraction,
            f"stage {stage.number}/{len(self.stages)} ({stage.model}): {finished:,} of "
            f"{stats['items']:,} queries · {stats['flagged']:,} flagged · ${self.spent:.4f}",
            force=force,
        )

    # -- Batch API

    def _stage_batch(self, stage: StageSettings) -> None:
        """Send the stage's pending, not yet answered calls as Batch API files, wait for them
        and store their answers in the ledger at half price. What the batches did not answer
        (missing lines, failed lines, unparseable answers to retry) is then done online by
        ``_stage_online``, which finds everything else in the ledger."""
        client = BatchClient(
            base_url=stage.base_url, api_key=os.environ.get(stage.api_key_env, ""),
            timeout_s=stage.timeout_s,
        )  # fmt: skip
        counter = token_counter_for(stage.model)
        folder = Path(settings.MEDIA_ROOT) / "cascade" / str(self.run.pk)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            records = [b for b in self.stats["batches"] if b["stage"] == stage.number]
            sent_items = set()
            for record in records:
                if not record.get("ingested"):
                    sent_items.update(_jsonl_custom_ids(Path(record["path"])))
            try:
                self._batch_submit_pending(stage, client, folder, counter, sent_items)
            except _BudgetReached:
                pass  # what was sent is still waited for; the online pass then stops paying
            self._batch_wait(stage, client)
        finally:
            client.close()

    def _batch_submit_pending(self, stage, client, folder, counter, sent_items) -> None:
        chunk: list[_Work] = []
        for page in self._pending_pages(stage):
            works = [w for w in self._work_for(stage, page) if isinstance(w, _Work)]
            works = [
                self._prepare(stage, w, counter) for w in works if str(w.item.id) not in sent_items
            ]
            keys = [w.key for w in works]
            known = set(LLMCall.objects.filter(key__in=keys).values_list("key", flat=True))
            for work in works:
                if work.key in known:
                    continue  # answered already: the online pass reads it from the ledger
                chunk.append(work)
                if len(chunk) >= stage.batch_max_requests:
                    self._batch_submit(stage, client, folder, chunk)
                    chunk = []
        if chunk:
            self._batch_submit(stage, client, folder, chunk)

    def _batch_submit(self, stage, client: BatchClient, folder: Path, chunk: list[_Work]) -> None:
        # Reserve the whole file at batch price (half the online price) before sending it.
        reserve = sum((w.reserve for w in chunk), Decimal(0)) / 2
        if self.budget is not None and self.spent + self.reserved + reserve > self.budget:
            raise _BudgetReached
        lines = [
            batch_line(
                custom_id=str(w.item.id), model=stage.model, messages=w.messages, params=w.params
            )
            for w in chunk
        ]
        sequence = len(self.stats["batches"]) + 1
        path = folder / f"stage{stage.number}-{sequence:05d}.jsonl"
        path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
        batch_id, file_id = client.submit(
            lines,
            filename=path.name,
            metadata={"sieve_cascade_run": self.run.pk, "file": path.name},
        )
        self.reserved += reserve
        # Recorded at once: a resumed run polls this batch instead of paying for it again.
        self.stats["batches"].append(
            {
                "stage": stage.number,
                "id": batch_id,
                "input_file_id": file_id,
                "path": str(path),
                "requests": len(lines),
                "reserve": str(reserve),
                "status": "submitted",
                "ingested": False,
            }
        )
        self._save_stats()

    def _batch_wait(self, stage, client: BatchClient) -> None:
        open_records = [
            b for b in self.stats["batches"] if b["stage"] == stage.number and not b["ingested"]
        ]
        while open_records:
            for record in list(open_records):
                state = client.retrieve(record["id"])
                record["status"] = state.status
                if state.finished:
                    self._batch_ingest(stage, client, record, state)
                    open_records.remove(record)
            self._save_stats()
            if not open_records:
                break
            done = sum(
                1 for b in self.stats["batches"] if b["stage"] == stage.number and b["ingested"]
            )
            total = sum(1 for b in self.stats["batches"] if b["stage"] == stage.number)
            try:
                self.report(
                    self.index / len(self.stages),
                    f"stage {stage.number}: waiting for the Batch API "
                    f"({done} of {total} files done)",
                )
            except JobCancelled:
                for record in open_records:
                    try:
                        client.cancel(record["id"])
                    except Exception:  # already finished, or the endpoint is gone
                        logger.warning("could not cancel batch %s", record["id"])
                raise
            time.sleep(BATCH_POLL_SECONDS)

    def _batch_ingest(self, stage, client: BatchClient, record: dict, state) -> None:
        sent = {}
        for raw in Path(record["path"]).read_text().splitlines():
            line = json.loads(raw)
            sent[line["custom_id"]] = line["body"]
        results = client.results(state)
        answered, missing = [], 0
        for custom_id, body in sent.items():
            result = results.get(custom_id)
            if result is None or result.outcome is None:
                missing += 1
                continue
            params = {k: v for k, v in body.items() if k not in ("model", "messages")}
            work = _Work(None, body["messages"], "", "", 0, attempt=1, params=params)
            work.key = call_key(
                base_url=stage.base_url,
                model=stage.model,
                messages=body["messages"],
                params={**params, "attempt": 1},
            )
            answered.append((work, result.outcome))
        if answered:
            self._ledger_write(stage, answered, batch=True)
        self.reserved -= Decimal(record.get("reserve", "0"))
        stats = self._stage_stats(stage)
        stats["batch_missing"] += missing
        record.update(ingested=True, answered=len(answered), missing=missing)
        if missing:
            logger.warning(
                "cascade #%s stage %s: batch %s answered %s of %s requests; the rest go online",
                self.run.pk, stage.number, record["id"], len(answered), len(sent),
            )  # fmt: skip


def _jsonl_custom_ids(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return {json.loads(raw)["custom_id"] for raw in path.read_text().splitlines() if raw.strip()}


def _run_spent(run: CascadeRun) -> Decimal:
    return LLMCall.objects.filter(cascade_run=run).aggregate(total=Sum("cost_usd"))[
        "total"
    ] or Decimal(0)


def _split_int(total: int, n: int) -> list[int]:
    base, extra = divmod(total or 0, n)
    return [base + (1 if i < extra else 0) for i in range(n)]


def _split_cost(total: Decimal, n: int) -> list[Decimal]:
    share = (Decimal(total) / n).quantize(MICRO_USD, rounding="ROUND_DOWN")
    first = Decimal(total) - share * (n - 1)
    return [first] + [share] * (n - 1)


# --- bulk writes ---------------------------------------------------------------------------------


def _commit_without_waiting_for_disk() -> None:
    """PostgreSQL: this transaction's COMMIT returns before its WAL reaches the disk. A
    cascade commits several times a second; waiting for each flush made the database the
    bottleneck. What it risks is narrow: a crash of the database SERVER (not of a worker) may
    lose the last fraction of a second of commits, i.e. some answers are asked (and paid) once
    more. The database stays consistent."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


JUDGMENT_COLUMNS = (
    "candidate_id", "rater", "rater_kind", "verdict", "tag", "rationale", "note", "model_name",
    "prompt_version", "prompt_hash", "input_tokens", "output_tokens", "cost_usd", "latency_ms",
    "source_run", "created_at",
)  # fmt: skip


def _judgments_insert(rows: list[tuple]) -> None:
    """Append judgments. PostgreSQL: COPY (several times faster than INSERT through the ORM:
    25 rows per judged query add up); elsewhere bulk_create."""
    if not rows:
        return
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(Judgment._meta.db_table)
        columns = ", ".join(connection.ops.quote_name(c) for c in JUDGMENT_COLUMNS)
        with connection.cursor() as cursor:
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return
    Judgment.objects.bulk_create(
        [Judgment(**dict(zip(JUDGMENT_COLUMNS, row, strict=True))) for row in rows], batch_size=2000
    )


def _items_update(items: list[tuple]) -> None:
    """Set (status, flagged, call, error) of many items. PostgreSQL: one UPDATE … FROM
    (VALUES …) per 1,000 items; elsewhere bulk_update (CASE WHEN per column)."""
    now = timezone.now()
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(CascadeItem._meta.db_table)
        for start in range(0, len(items), 1000):
            chunk = items[start : start + 1000]
            values = ", ".join(["(%s::bigint, %s, %s::boolean, %s::bigint, %s)"] * len(chunk))
            params = [value for item in chunk for value in item]
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {table} AS i SET status = v.status, flagged = v.flagged, "
                    f"call_id = v.call_id, error = v.error, updated_at = %s "
                    f"FROM (VALUES {values}) AS v(id, status, flagged, call_id, error) "
                    f"WHERE i.id = v.id",
                    [now, *params],
                )
        return
    objects = [
        CascadeItem(
            pk=pk, status=status, flagged=flagged, call_id=call_id, error=error, updated_at=now
        )
        for pk, status, flagged, call_id, error in items
    ]
    CascadeItem.objects.bulk_update(
        objects, ["status", "flagged", "call", "error", "updated_at"], batch_size=500
    )


# --- reading the dataset for prompts -------------------------------------------------------------


def _query_pages(dataset: Dataset) -> Iterator[list[int]]:
    after = 0
    while True:
        page = list(
            _queries_with_negatives(dataset)
            .filter(id__gt=after)
            .order_by("id")
            .values_list("id", flat=True)[:CREATE_PAGE]
        )
        if not page:
            return
        after = page[-1]
        yield page


def _negatives_for(query_ids: list[int], max_negatives: int) -> dict[int, list[int]]:
    """Each query's first ``max_negatives`` negatives by rank then id: the order in which the
    prompt numbers them Doc (1), Doc (2), …"""
    result: dict[int, list[int]] = {qid: [] for qid in query_ids}
    rows = (
        Candidate.objects.filter(query_id__in=query_ids, role=CandidateRole.NEGATIVE)
        .order_by("query_id", F("rank").asc(nulls_last=True), "id")
        .values_list("query_id", "id")
    )
    for query_id, candidate_id in rows.iterator(chunk_size=5000):
        listed = result[query_id]
        if len(listed) < max_negatives:
            listed.append(candidate_id)
    return result


@dataclass
class _PromptData:
    queries: dict[int, str]
    positives: dict[int, list[str]]
    negatives: dict[int, str]


def _prompt_data(*, query_ids: list[int], candidate_ids: list[int]) -> _PromptData:
    """The texts a page of prompts needs, in three queries whatever the page size."""
    queries = dict(Query.objects.filter(id__in=query_ids).values_list("id", "text"))
    positives: dict[int, list[str]] = {qid: [] for qid in query_ids}
    rows = (
        Candidate.objects.filter(query_id__in=query_ids, role=CandidateRole.POSITIVE)
        .order_by("query_id", "id")
        .values_list("query_id", "passage__title", "passage__text")
    )
    for query_id, title, text in rows:
        if len(positives[query_id]) < MAX_POSITIVES_IN_PROMPT:
            positives[query_id].append(_passage_text(title, text))
    negatives = {
        cid: _passage_text(title, text)
        for cid, title, text in Candidate.objects.filter(id__in=candidate_ids).values_list(
            "id", "passage__title", "passage__text"
        )
    }
    return _PromptData(queries, positives, negatives)


def _build_prompt(data: _PromptData, query_id: int, candidate_ids: list[int], *, json_mode: bool):
    return judge_prompt_build(
        query=data.queries[query_id],
        positives=data.positives.get(query_id, []),
        negatives=[data.negatives[c] for c in candidate_ids],
        json_mode=json_mode,
    )
