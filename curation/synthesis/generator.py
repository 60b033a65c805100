"""The generator of a synthesis run: its LLM calls through the ``LLMCall`` ledger (an answer
already there is reused, so a resumed or repeated run pays nothing twice), and the texts read
from its answers (an unusable answer is retried once, never guessed)."""

from __future__ import annotations

import concurrent.futures
import logging
from collections import Counter
from decimal import Decimal

from django.db import transaction
from django.db.models import F

from core.errors import ApplicationError

from ..llm.engine import CallFailed, CallPool, call_key
from ..llm.ledger import llm_call_row
from ..llm.stages import StageSettings
from ..models import LLMCall, SynthesisRun
from .core import Prompt, generated_parse

logger = logging.getLogger(__name__)


class Generator:
    """The run's LLM calls through the ledger: cached answers are free; paid ones are stored
    (with their cost, added to the run) the moment they arrive."""

    def __init__(self, run: SynthesisRun, stage: StageSettings, pool: CallPool):
        self.run = run
        self.stage = stage
        self.pool = pool
        self.params = stage.request_params()
        self.stats: Counter = Counter()
        self.failure_reasons: Counter = Counter()
        self.cost = Decimal(0)

    def complete(self, prompts: list[Prompt], *, attempt: int = 1) -> list[LLMCall | CallFailed]:
        """The calls for ``prompts``, from the ledger or paid now. ``attempt`` 2 is the one
        retry of an unusable answer: twice the output room, and its own ledger key."""
        params = self.params if attempt == 1 else self.stage.request_params(attempt=attempt)
        key_params = params if attempt == 1 else {**params, "attempt": attempt}
        keys = [
            call_key(base_url=self.stage.base_url, model=self.stage.model,
                     messages=p.messages, params=key_params)
            for p in prompts
        ]  # fmt: skip
        cached = {c.key: c for c in LLMCall.objects.filter(key__in=set(keys))}
        results: list[LLMCall | CallFailed | None] = [cached.get(k) for k in keys]
        self.stats["cached_calls"] += sum(1 for r in results if r is not None)
        futures = {
            self.pool.submit(messages=prompts[i].messages, params=params): i
            for i, r in enumerate(results)
            if r is None
        }
        answered: list[tuple[int, object]] = []
        fatal: CallFailed | None = None
        for future in concurrent.futures.as_completed(futures):
            i = futures[future]
            try:
                answered.append((i, future.result()))
            except CallFailed as error:
                results[i] = error
                self.stats["failed_calls"] += 1
                self.failure_reasons[error.message[:160]] += 1
                fatal = fatal or (error if error.fatal else None)
        if answered:
            for (i, _), call in zip(
                answered, self._ledger_write(answered, keys, prompts, key_params), strict=True
            ):
                results[i] = call
        if fatal is not None:
            raise ApplicationError(
                f"the generator ({self.stage.model} at {self.stage.base_url}) refused: "
                f"{fatal.message}",
                detail={"field": "generator"},
            )
        return results

    def _ledger_write(self, answered, keys, prompts, params) -> list[LLMCall]:
        rows = [
            llm_call_row(
                key=keys[i],
                stage=self.stage,
                request={
                    "messages": prompts[i].messages,
                    "params": params,
                    "purpose": f"synthesis:{self.run.pk}:{prompts[i].version}",
                },
                outcome=outcome,
            )
            for i, outcome in answered
        ]
        paid = sum((row.cost_usd for row in rows), Decimal(0))
        with transaction.atomic():
            LLMCall.objects.bulk_create(rows, ignore_conflicts=True)
            SynthesisRun.objects.filter(pk=self.run.pk).update(cost_usd=F("cost_usd") + paid)
        self.cost += paid
        self.stats["paid_calls"] += len(rows)
        self.stats["input_tokens"] += sum(r.input_tokens for r in rows)
        self.stats["output_tokens"] += sum(r.output_tokens for r in rows)
        # Another run may have stored the same key a moment earlier: use the stored row.
        stored = {c.key: c for c in LLMCall.objects.filter(key__in=[r.key for r in rows])}
        return [stored.get(row.key, row) for row in rows]


def generated_texts(
    generator: Generator, prompts: list[Prompt], field: str, counts: Counter
) -> list[str | None]:
    """The generated texts for ``prompts`` (None where there is none). An unusable answer
    (unparseable, empty, or truncated at max_tokens) is recorded and retried once, never
    read as text; a failed call is not retried here (the client already retried it)."""
    texts: list[str | None] = []
    retry: list[int] = []
    for i, call in enumerate(generator.complete(prompts)):
        texts.append(None)
        if isinstance(call, CallFailed):
            continue
        parsed = generated_parse(call.response_text, field=field, finish_reason=call.finish_reason)
        if parsed.ok:
            texts[i] = parsed.text
        else:
            counts["unusable_answers"] += 1
            retry.append(i)
            logger.info(
                "synthesis: unusable %s answer (%s), call %s; retrying",
                field, parsed.error, call.key,
            )  # fmt: skip
    if retry:
        again = generator.complete([prompts[i] for i in retry], attempt=2)
        for i, call in zip(retry, again, strict=True):
            if isinstance(call, CallFailed):
                continue
            parsed = generated_parse(
                call.response_text, field=field, finish_reason=call.finish_reason
            )
            if parsed.ok:
                texts[i] = parsed.text
                counts["recovered_on_retry"] += 1
    return texts
