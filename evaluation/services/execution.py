"""The worker side of an evaluation run: load the model once, evaluate each task not yet
stored (a resumed run skips the others), and store each result with the run's stats in one
transaction. Cache and resume: ``evaluation/evaluation.md``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import transaction

from core.errors import ApplicationError
from core.jobs import JobOutcome, job_run
from core.ml.beir import BeirError

from ..models import EvalResult, EvaluationMode, EvaluationRun
from .deltas import eval_result_deltas_update
from .runs import DEFAULT_BATCH_SIZE, DEFAULT_SPLIT
from .task_specs import evaluation_task_build, evaluation_task_labels


def evaluation_run_execute(*, run_id: int, echo: Callable[..., None] | None = None) -> None:
    """Worker side. Failures and cancellation are recorded on the row. Running it again (a
    redelivered task after a crash) skips the tasks whose results are already stored and
    finds the corpus vectors it had encoded in the embedding cache."""
    run = EvaluationRun.objects.select_related("training_run").get(pk=run_id)

    def work(progress) -> JobOutcome:
        from ..core import TaskDataError  # heavy imports stay in the worker

        try:
            stats = evaluation_run_evaluate(run=run, progress=progress)
        except (TaskDataError, BeirError) as error:
            raise _application_error(error) from error
        labels = evaluation_task_labels(stats["tasks"])
        # In points, as the run's table and the leaderboard show them (0.6451 → 64.51); a
        # retrieval task's main score is its nDCG@10.
        scores = ", ".join(
            f"{labels[spec]} {task['main_score'] * 100:.2f}"
            for spec, task in stats["tasks"].items()
            if task.get("main_score") is not None
        )
        return JobOutcome(stats=stats, message=f"nDCG@10 {scores}"[:200] if scores else "done")

    job_run(job=run, work=work, echo=echo)


def _application_error(error: Exception) -> Exception:
    from ..core import TaskDataError

    if isinstance(error, TaskDataError):
        return ApplicationError(str(error), detail={"field": "tasks", "task": error.task_name})
    if isinstance(error, BeirError):
        return ApplicationError(str(error), detail={"field": "tasks"})
    return error


def _model_source(run: EvaluationRun):
    from ..core import ModelSource

    if run.training_run_id is not None:
        training = run.training_run
        return ModelSource(
            model=training.artifact_path,
            base_model=training.base_model,
            artifact_kind=training.artifact_kind,
            name=f"sieve/training-{training.pk}",
        )
    return ModelSource(model=run.model_ref)


def evaluation_run_evaluate(*, run: EvaluationRun, progress: Callable[..., None]) -> dict:
    """Evaluate ``run`` task by task; returns the run's stats (also written to the row after
    each task, so a resumed run keeps what its earlier life measured)."""
    from core.ml.encoder import EncoderSettings

    from ..core import EvalEncoder, ModelSource, model_load, task_evaluate
    from ..multi_gpu import encode_devices, encode_pool_start, encode_pool_stop
    from ..rerank import task_rerank_evaluate

    config = run.config
    task_splits: dict[str, str] = config.get("task_splits") or {
        spec: config.get("split", DEFAULT_SPLIT) for spec in run.tasks
    }
    specs = list(task_splits)
    stored = set(EvalResult.objects.filter(run=run).values_list("task", "split"))
    stats = dict(run.stats or {})
    stats.setdefault("tasks", {})
    pending = [spec for spec in specs if (spec, task_splits[spec]) not in stored]
    streamlined = run.mode == EvaluationMode.STREAMLINED
    settings_ = EncoderSettings(
        batch_size=config.get("batch_size", DEFAULT_BATCH_SIZE),
        query_prefix=config.get("query_prefix", ""),
        passage_prefix=config.get("passage_prefix", ""),
        max_seq_length=config.get("max_seq_length"),
        precision=config.get("precision", "auto"),
        quantize_4bit=streamlined,
    )
    encoder = scorer = None
    rerank = config.get("rerank")
    if pending:
        progress(0.0, f"loading {run.model_label}", force=True)
        # A reranker's run encodes with its first stage; the reranker scores afterwards.
        source = ModelSource(model=rerank["first_stage"]) if rerank else _model_source(run)
        loaded = model_load(source, settings=settings_)
        stats["model"] = {
            "ref": source.model,  # what encodes: for a reranker, its first stage
            "identity": loaded.identity,
            "mteb_name": loaded.mteb_name,
            "revision": loaded.revision,
            "device": loaded.device,
            "precision": loaded.precision,
            "max_seq_length": loaded.max_seq_length,
            "load_seconds": round(loaded.load_seconds, 2),
        }
        stats["four_bit"] = loaded.four_bit
        # Several GPUs: one encoding process each (not for 4-bit weights, which stay put).
        devices = encode_devices(loaded.device) if loaded.precision != "4bit" else []
        stats["model"]["devices"] = devices or [loaded.device]
        pool = (
            encode_pool_start(loaded.model, devices, precision=loaded.precision)
            if devices
            else None
        )
        encoder = EvalEncoder(
            loaded,
            settings=settings_,
            store_root=Path(settings.SIEVE_EMBEDDING_CACHE_DIR) / "eval",
            pool=pool,
        )
        if rerank:
            # The reranking stage on every GPU too, one scoring process each.
            scorer = _reranker_scorer(run, device=loaded.device, devices=devices)
            stats["reranker"] = {
                "ref": run.model_ref,
                "mteb_name": scorer.wrapper.mteb_model_meta.name,
                "revision": scorer.wrapper.mteb_model_meta.revision,
                "top_k": rerank["top_k"],
                "devices": devices or [loaded.device],
            }
    total = len(specs)
    try:
        for index, spec in enumerate(specs):
            split = task_splits[spec]
            # Between tasks: progress, and the cancel check that comes with it.
            progress(index / total, f"task {index + 1} of {total}: {spec}", force=True)
            if spec not in pending:
                stats["tasks"].setdefault(spec, {"split": split})["resumed"] = "already stored"
                continue
            common = {
                "split": split,
                "results_dir": run.results_dir,
                "batch_size": settings_.batch_size,
                "corpus_sample": config.get("corpus_sample") if streamlined else None,
                "seed": config.get("seed", 0),
                "progress": lambda f, m, i=index: progress((i + f) / total, m),
            }
            if scorer is not None:
                outcome = task_rerank_evaluate(
                    lambda spec=spec, split=split: evaluation_task_build(spec, split),
                    encoder,
                    scorer,
                    top_k=rerank["top_k"],
                    **common,
                )
            else:
                outcome = task_evaluate(evaluation_task_build(spec, split), encoder, **common)
            first_stage = outcome.counts.pop("first_stage", None)
            # The result and the run's stats commit together: whoever sees one (a page, a
            # resumed task) sees the other.
            with transaction.atomic():
                result = _result_store(run=run, spec=spec, outcome=outcome, first=first_stage)
                stats["tasks"][spec] = {
                    "split": split,
                    "main_score": result.main_score,
                    "corpus_size": outcome.corpus_size,
                    "query_count": outcome.query_count,
                    "seconds": round(outcome.seconds, 2),
                    "result_path": outcome.result_path,
                    **outcome.counts,
                }
                if first_stage:
                    stats["tasks"][spec]["first_stage_main_score"] = first_stage["main_score"]
                if "delta_vs_full" in result.metrics:
                    stats["tasks"][spec]["delta_vs_full"] = result.metrics["delta_vs_full"]
                stats.update(_totals(stats["tasks"]))
                EvaluationRun.objects.filter(pk=run.pk).update(stats=stats)
    finally:
        if scorer is not None:
            scorer.close()
            if scorer.pool is not None:
                encode_pool_stop(scorer.pool)
        if encoder is not None:
            encoder.close()
            if encoder.pool is not None:
                encode_pool_stop(encoder.pool)
    stats.update(_totals(stats["tasks"]))
    return stats


def _totals(tasks: dict) -> dict:
    keys = ("queries_encoded", "documents_encoded", "documents_cached")
    return {key: sum(int(t.get(key, 0)) for t in tasks.values()) for key in keys}


def _reranker_scorer(run: EvaluationRun, *, device: str, devices: list[str]):
    """The run's cross-encoder, named in mteb's results as the model it is; on ``devices``
    (several GPUs) it scores in a pool of one process each."""
    from ..core import ModelSource, model_cache_identity
    from ..multi_gpu import encode_pool_start
    from ..rerank import RerankerScorer, reranker_load

    source = _model_source(run)
    _, short_name, revision = model_cache_identity(ModelSource(model=source.model))
    name = source.name or (
        run.model_ref if not Path(run.model_ref).exists() else f"local/{short_name}"
    )
    model = reranker_load(source.model, device=device, max_length=run.config.get("max_seq_length"))
    pool = encode_pool_start(model, devices, precision="fp32") if devices else None
    return RerankerScorer(model, name=name, revision=revision, pool=pool)


def _result_store(*, run: EvaluationRun, spec: str, outcome, first: dict | None = None):
    from ..core import json_safe

    scores = outcome.scores
    metrics = json_safe(scores.metrics)
    if first:
        metrics["first_stage"] = json_safe(first)
    result, _ = EvalResult.objects.update_or_create(
        run=run,
        task=spec,
        split=outcome.split,
        defaults={
            "main_score": scores.main_score,
            "ndcg_at_10": scores.ndcg_at_10,
            "recall_at_100": scores.recall_at_100,
            "mrr_at_10": scores.mrr_at_10,
            "corpus_size": outcome.corpus_size,
            "query_count": outcome.query_count,
            "evaluation_seconds": round(outcome.seconds, 3),
            "metrics": metrics,
            "mteb_result": json_safe(outcome.task_result),
        },
    )
    eval_result_deltas_update(result=result)
    return result
