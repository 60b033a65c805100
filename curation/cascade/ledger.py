"""The cascade's side of the ``LLMCall`` ledger: answers stored the moment they arrive, with
what they cost added to the run in the same commit, so a worker killed a second later has
still paid for each of them only once (and a resumed run finds them by key)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.db.models import F, Sum

from ..bulk import commit_without_waiting_for_disk
from ..llm.ledger import llm_call_row
from ..llm.stages import MICRO_USD, StageSettings
from ..models import CascadeRun, LLMCall


@dataclass
class Stored:
    """Calls just stored (primary keys set), and what they added to the run."""

    calls: list[LLMCall]
    paid: Decimal
    input_tokens: int
    output_tokens: int


def ledger_answers_store(
    *, run: CascadeRun, stage: StageSettings, answered: list, batch: bool = False
) -> Stored:
    """Store (work, outcome) pairs as ``LLMCall`` rows keyed by ``work.key`` and add their
    cost and tokens to the run, in one transaction."""
    rows = [
        llm_call_row(
            key=work.key,
            stage=stage,
            request={
                "messages": work.messages,
                "params": {**work.params, "attempt": work.attempt},
            },
            outcome=outcome,
            batch=batch,
            cascade_run=run,
            stage_number=stage.number,
        )
        for work, outcome in answered
    ]
    paid = sum((row.cost_usd for row in rows), Decimal(0))
    tokens_in = sum(row.input_tokens for row in rows)
    tokens_out = sum(row.output_tokens for row in rows)
    with transaction.atomic():
        commit_without_waiting_for_disk()
        LLMCall.objects.bulk_create(rows, ignore_conflicts=True)
        CascadeRun.objects.filter(pk=run.pk).update(
            cost_usd=F("cost_usd") + paid,
            input_tokens=F("input_tokens") + tokens_in,
            output_tokens=F("output_tokens") + tokens_out,
        )
    # ignore_conflicts leaves primary keys unset (and another run may have stored the
    # same key a moment earlier): look the ids up by key.
    ids = dict(LLMCall.objects.filter(key__in=[r.key for r in rows]).values_list("key", "id"))
    for row in rows:
        row.pk = ids.get(row.key)
    return Stored(rows, paid, tokens_in, tokens_out)


def run_spent(run: CascadeRun) -> Decimal:
    return LLMCall.objects.filter(cascade_run=run).aggregate(total=Sum("cost_usd"))[
        "total"
    ] or Decimal(0)


# A call judges n negatives at once: its tokens and cost are shared out over the n judgments
# so that sums over judgments equal the ledger's (the first takes the rounding remainder).


def split_int(total: int, n: int) -> list[int]:
    base, extra = divmod(total or 0, n)
    return [base + (1 if i < extra else 0) for i in range(n)]


def split_cost(total: Decimal, n: int) -> list[Decimal]:
    share = (Decimal(total) / n).quantize(MICRO_USD, rounding="ROUND_DOWN")
    first = Decimal(total) - share * (n - 1)
    return [first] + [share] * (n - 1)
