"""Streamlined vs full: how far a streamlined result is from the newest full-mode result of
the same model, task and split, written into the streamlined result by whichever of the two
is stored second."""

from __future__ import annotations

from ..models import EvalResult, EvaluationMode

SUMMARY_FIELDS = ("main_score", "ndcg_at_10", "recall_at_100", "mrr_at_10")


def _newest_full_result(result: EvalResult) -> EvalResult | None:
    return (
        EvalResult.objects.filter(
            run__model_key=result.run.model_key,
            run__mode=EvaluationMode.FULL,
            task=result.task,
            split=result.split,
        )
        .exclude(pk=result.pk)
        .select_related("run")
        .order_by("-run_id")
        .first()
    )


def eval_result_delta_vs_full(*, result: EvalResult) -> dict | None:
    """How far a streamlined result is from the newest full-mode result of the same model,
    task and split (streamlined minus full), or None when there is no full one yet."""
    if result.run.mode != EvaluationMode.STREAMLINED:
        return None
    full = _newest_full_result(result)
    if full is None:
        return None
    delta = {
        name: (
            round(getattr(result, name) - getattr(full, name), 6)
            if getattr(result, name) is not None and getattr(full, name) is not None
            else None
        )
        for name in SUMMARY_FIELDS
    }
    return {
        **delta,
        "full_run": full.run_id,
        "full_main_score": full.main_score,
        "full_corpus_size": full.corpus_size,
        "corpus_size": result.corpus_size,
    }


def eval_result_deltas_update(*, result: EvalResult) -> int:
    """Write ``delta_vs_full`` into streamlined results' metrics, whichever mode arrived
    second: a streamlined result compares with the newest full one; a full result updates
    every streamlined result of the same model, task and split. Returns results updated."""
    if result.run.mode == EvaluationMode.STREAMLINED:
        targets = [result]
    else:
        targets = list(
            EvalResult.objects.filter(
                run__model_key=result.run.model_key,
                run__mode=EvaluationMode.STREAMLINED,
                task=result.task,
                split=result.split,
            ).select_related("run")
        )
    updated = 0
    for target in targets:
        delta = eval_result_delta_vs_full(result=target)
        if delta is None:
            continue
        target.metrics = {**target.metrics, "delta_vs_full": delta}
        EvalResult.objects.filter(pk=target.pk).update(metrics=target.metrics)
        updated += 1
    return updated
