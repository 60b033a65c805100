"""Launching a cascade: the settings a run starts from, their validation, the dry-run cost
estimate, and the run row (enqueued on the ``llm`` queue once the transaction commits).
Design: cascade.md."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from django.db import transaction

from core.errors import ApplicationError
from core.jobs import job_enqueue

from ..llm.stages import StageSettings, call_cost, stages_from_env
from ..llm.tokens import token_counter_for
from ..models import CascadeMode, CascadeRun, Dataset
from .selectors import (
    CREATE_PAGE,
    prompt_build,
    prompt_data,
    queries_with_negatives,
    query_negative_ids,
)

TAGS = ("better", "worse")
# What the judge means by each tag (prompts.py asks for exactly this), for the pages.
TAG_MEANINGS = {
    "better": "answers the query as well as the positive, or better",
    "worse": "relevant, but not as good as the positive",
}
DEFAULT_FORWARD_TAGS = ["better", "worse"]  # RLHN: any negative named in the verdict
DEFAULT_FALSE_NEGATIVE_TAGS = ["better"]  # "as good as the positive": a false negative
# RLHN's cost estimate assumed this many output tokens per call.
DEFAULT_OUTPUT_TOKENS_PER_CALL = 2048
# Share of queries stage 1 flags, for the stage-2 volume of an estimate: MS MARCO in the
# RLHN paper, 391,965 of 485,823 (0.81).
DEFAULT_FLAG_RATE = 0.8


# --- settings and validation ---------------------------------------------------------------------


def cascade_defaults(*, environ: dict | None = None) -> dict:
    """What the launch form and the command start from: stages from the environment."""
    return {
        "stages": [stage.as_dict() for stage in stages_from_env(environ)],
        "mode": CascadeMode.ONLINE,
        "forward_tags": list(DEFAULT_FORWARD_TAGS),
        "false_negative_tags": list(DEFAULT_FALSE_NEGATIVE_TAGS),
        "max_negatives": 25,
        "max_positives": None,  # all of a query's positives, as RLHN's prompt shows them
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


def max_positives_parse(value) -> int | None:
    """A run's cap on the positives each prompt shows: a whole number of at least 1, or
    empty (None or "") for all of them. Text is read as a number (the form, the command);
    anything else is refused with an error on the field ``max_positives``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())
    if number is None or number < 1:
        raise ApplicationError(
            f"max_positives must be a whole number of at least 1, or empty for all positives "
            f"(got {value!r})",
            detail={"field": "max_positives"},
        )
    return number


def stages_parse(data: list) -> list[StageSettings]:
    return [s if isinstance(s, StageSettings) else StageSettings.from_dict(s) for s in data]


# --- estimate ------------------------------------------------------------------------------------


def cascade_estimate(
    *,
    dataset: Dataset,
    stages: list,
    max_negatives: int = 25,
    max_positives: int | str | None = None,
    mode: str = CascadeMode.ONLINE,
    output_tokens_per_call: int = DEFAULT_OUTPUT_TOKENS_PER_CALL,
    flag_rate: float = DEFAULT_FLAG_RATE,
    sample_limit: int | None = None,
) -> dict:
    """Dry-run cost of a cascade: input tokens counted on the exact prompts we would send
    (tiktoken where its vocabulary is available, else characters / 4, flagged ``exact``
    False), ``output_tokens_per_call`` assumed per call, and each later stage judging
    ``flag_rate`` of the queries of the stage before. With ``sample_limit``, datasets with
    more queries than that are estimated from an evenly spread sample of them. The prompts
    show ``max_positives`` positives per query (None: all), as the run would."""
    stages = stages_parse(stages)
    max_positives = max_positives_parse(max_positives)
    total = queries_with_negatives(dataset).count()
    sampled = bool(sample_limit and total > sample_limit)
    query_ids = queries_with_negatives(dataset).order_by("id").values_list("id", flat=True)
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
        dataset=dataset,
        query_ids=chosen,
        max_negatives=max_negatives,
        max_positives=max_positives,
        stages=stages,
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
        "max_positives": max_positives,
        "output_tokens_per_call": output_tokens_per_call,
        "flag_rate": flag_rate,
        "stages": rows,
        "cost_usd": str(cost_total),
        "strong_judge_only_cost_usd": str(strong_only) if strong_only is not None else None,
        "exact_tokens": all(r["exact"] for r in rows),
    }


def _prompt_pages_for_estimate(
    *, dataset, query_ids, max_negatives, max_positives, stages
) -> Iterator[list[dict]]:
    """Pages of {stage number: messages} for each query (the prompt differs only in its answer
    format, JSON or tagged, which each stage may choose)."""
    if query_ids is None:
        source = queries_with_negatives(dataset).order_by("id").values_list("id", flat=True)
        ids_iter = source.iterator(chunk_size=CREATE_PAGE)
    else:
        ids_iter = iter(query_ids)
    while True:
        page = [qid for _, qid in zip(range(CREATE_PAGE), ids_iter, strict=False)]
        if not page:
            return
        negatives = query_negative_ids(page, max_negatives)
        data = prompt_data(
            query_ids=page,
            candidate_ids=[c for ids in negatives.values() for c in ids],
            max_positives=max_positives,
        )
        result = []
        for qid in page:
            per_stage = {}
            for stage in stages:
                prompt = prompt_build(data, qid, negatives[qid], json_mode=stage.json_mode)
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
    max_positives: int | str | None = None,
    budget_usd: Decimal | None = None,
    estimate: dict | None = None,
    user=None,
    enqueue: bool = True,
) -> CascadeRun:
    """Record a cascade run and (``enqueue``) send it to the ``llm`` queue once this
    transaction commits. The stage settings are stored as given; no API key ever is."""
    stages = stages_parse(stages)
    forward_tags = list(forward_tags or DEFAULT_FORWARD_TAGS)
    false_negative_tags = list(false_negative_tags or DEFAULT_FALSE_NEGATIVE_TAGS)
    budget_usd = Decimal(str(budget_usd)) if budget_usd not in (None, "") else None
    max_positives = max_positives_parse(max_positives)
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
            max_positives=max_positives,
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
            max_positives=max_positives,
            budget_usd=budget_usd,
            estimate=estimate,
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        if enqueue:
            job_enqueue(job=run)
    return run
