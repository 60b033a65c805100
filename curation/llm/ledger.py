"""One ``LLMCall`` ledger row from one answered call, for the cascade's judges and for
synthesis's generator: the same endpoint, model, tokens, cost and timing columns whoever
asked. Storing the rows (and what they add to a run) stays with the caller. Also the budget
a retry of either asks for."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from core.errors import ApplicationError

from ..models import CascadeRun, LLMCall
from .engine import CallOutcome
from .stages import StageSettings, call_cost


def llm_call_row(
    *,
    key: str,
    stage: StageSettings,
    request: dict,
    outcome: CallOutcome,
    batch: bool = False,
    cascade_run: CascadeRun | None = None,
    stage_number: int | None = None,
) -> LLMCall:
    """An unsaved row; a cascade's row also names its run and stage number."""
    return LLMCall(
        key=key,
        base_url=stage.base_url,
        model=stage.model,
        request=request,
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
        cascade_run=cascade_run,
        stage=stage_number,
    )


def retry_budget_parse(value) -> Decimal | None:
    """The budget a retry of a cascade or synthesis run asks for: None (keep the run's), or
    an amount in USD above zero; ``ApplicationError`` on ``budget_usd`` otherwise."""
    if value in (None, ""):
        return None
    try:
        budget = Decimal(str(value))
    except InvalidOperation:
        raise ApplicationError(
            f"the budget must be an amount in USD, got {value!r}", detail={"field": "budget_usd"}
        ) from None
    if budget <= 0:
        raise ApplicationError("the budget must be more than $0", detail={"field": "budget_usd"})
    return budget
