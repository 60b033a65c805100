"""Evaluating a reranker the way MTEB does: two stages. No Django; mteb, torch and
sentence-transformers are imported inside.

    1. the first-stage embedding model retrieves (``core.task_evaluate`` with its cached corpus
       vectors), and mteb writes its ranking (``prediction_folder``);
    2. the task is turned into a reranking task over the top-k of that ranking
       (``AbsTaskRetrieval.convert_to_reranking``), and ``mteb.evaluate`` scores it with the
       cross-encoder (mteb's ``CrossEncoderWrapper``): nDCG@10 of the re-ordered list.

What is stored is the second stage's result (mteb's own JSON); the first stage's scores come
with it, so a page can say what reranking added. Documents the first stage did not retrieve
in its top-k are never scored by the reranker (as in MTEB and RLHN's evaluation).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from core.ml.beir import BeirError

from .core import (
    EvalEncoder,
    TaskDataError,
    TaskOutcome,
    mteb_evaluate,
    split_scores,
    task_corpus_subsample,
    task_evaluate,
)

DEFAULT_TOP_K = 100


def reranker_load(model: str, *, device: str | None = None, max_length: int | None = None):
    """A cross-encoder (a hub id or folder: a trained reranker, or any published one)."""
    from training.core.reranker import load_reranker

    return load_reranker(model, device=device, max_length=max_length)


class RerankerScorer:
    """mteb's ``CrossEncoderWrapper`` around a loaded cross-encoder, named for mteb's results
    folder, reporting each scored batch to ``on_batch`` (which may raise to stop: a cancelled
    job).

    With ``pool`` (``multi_gpu.encode_pool_start`` over the cross-encoder: one process per
    GPU) every call mteb makes is split across the processes, one chunk each; mteb is then
    handed ``devices`` times the batch, so each GPU scores a whole batch per call. Without
    a pool, a forward hook on the first module (the Transformer, which sees each tokenized
    batch) counts; with one, the calls are counted here (a hook would not survive the trip
    to the processes)."""

    def __init__(self, model, *, name: str, revision: str, pool: dict | None = None):
        from mteb.models.sentence_transformer_wrapper import CrossEncoderWrapper

        self.model = model
        self.pool = pool
        self.devices = len(pool["processes"]) if pool else 1
        self.wrapper = CrossEncoderWrapper(model)
        self.wrapper.mteb_model_meta = self.wrapper.mteb_model_meta.model_copy(
            update={"name": name, "revision": revision}
        )
        self.on_batch: Callable[[int], None] | None = None
        self._hook = None
        if pool is None:
            self._hook = model[0].register_forward_hook(self._seen)
        else:
            self.wrapper.model = _PooledCrossEncoder(model, self)

    def _seen(self, module, args, output):
        if self.on_batch is None:
            return
        features = args[0] if args else None
        ids = features.get("input_ids") if hasattr(features, "get") else None
        self.on_batch(int(ids.shape[0]) if ids is not None else 0)

    def close(self) -> None:
        if self._hook is not None:
            self._hook.remove()


class _PooledCrossEncoder:
    """What mteb's wrapper calls ``model``: the cross-encoder itself for every attribute but
    ``predict``, which scores the pairs of one call on every process of the scorer's pool."""

    def __init__(self, model, scorer: RerankerScorer):
        self._model = model
        self._scorer = scorer

    def __getattr__(self, name):
        return getattr(self._model, name)

    def predict(self, pairs, *, batch_size: int = 32, **kwargs):
        scorer = self._scorer
        per_device = max(1, -(-batch_size // scorer.devices))
        kwargs.pop("show_progress_bar", None)
        scores = self._model.predict(
            pairs,
            batch_size=per_device,
            pool=scorer.pool,
            chunk_size=max(1, -(-len(pairs) // scorer.devices)),
            show_progress_bar=False,
            **kwargs,
        )
        if scorer.on_batch is not None:
            scorer.on_batch(len(pairs))
        return scores


def task_rerank_evaluate(
    build_task: Callable[[], object],
    encoder: EvalEncoder,
    scorer: RerankerScorer,
    *,
    split: str,
    results_dir: Path | str,
    top_k: int = DEFAULT_TOP_K,
    batch_size: int = 32,
    corpus_sample: int | None = None,
    seed: int = 0,
    progress: Callable[[float, str], None] | None = None,
) -> TaskOutcome:
    """Both stages on one split; ``build_task()`` gives a fresh mteb task each time (the
    first stage unloads its data). The outcome is the reranked one, with the first stage's
    scores in ``counts["first_stage"]``."""
    report = progress or (lambda fraction, message: None)
    started = time.monotonic()
    results_dir = Path(results_dir)
    predictions = results_dir / "first-stage-predictions"
    first = task_evaluate(
        build_task(),
        encoder,
        split=split,
        results_dir=results_dir / "first-stage",
        batch_size=batch_size,
        corpus_sample=corpus_sample,
        seed=seed,
        progress=lambda f, m: report(0.5 * f, f"first stage: {m}"),
        prediction_folder=predictions,
    )

    task = build_task()
    name = task.metadata.name
    task.filter_eval_splits([split])
    try:
        task.load_data()
    except (BeirError, Exception) as error:  # loaded a moment ago: only a vanished folder
        raise TaskDataError(name, f'task "{name}": {error}') from error
    task.convert_v1_dataset_format_to_v2(num_proc=None)
    if corpus_sample is not None:
        task_corpus_subsample(task, split=split, sample=corpus_sample, seed=seed)
    task.convert_to_reranking(predictions, top_k=top_k)
    pairs = sum(
        len(docs)
        for subsets in task.dataset.values()
        if split in subsets
        for docs in (subsets[split].get("top_ranked") or {}).values()
    )
    done = [0]

    def on_batch(rows: int) -> None:
        done[0] = min(pairs, done[0] + rows)
        report(0.5 + 0.45 * done[0] / max(pairs, 1), f"{name}: reranking {done[0]:,} of {pairs:,}")

    scorer.on_batch = on_batch
    report(0.5, f"{name}: reranking the top {top_k} of each query ({pairs:,} pairs)")
    try:
        task_result, written, path = mteb_evaluate(
            scorer.wrapper,
            task,
            model_meta=scorer.wrapper.mteb_model_meta,
            results_dir=results_dir,
            batch_size=batch_size * scorer.devices,
        )
    finally:
        scorer.on_batch = None
    report(1.0, f"{name}: reranked and scored")
    return TaskOutcome(
        task_name=name,
        split=split,
        scores=split_scores(task_result.scores[split]),
        task_result=written,
        result_path=str(path),
        corpus_size=first.corpus_size,
        query_count=first.query_count,
        seconds=time.monotonic() - started,
        counts={
            **first.counts,
            "pairs_reranked": pairs,
            "top_k": top_k,
            "first_stage": {
                "main_score": first.scores.main_score,
                "ndcg_at_10": first.scores.ndcg_at_10,
                "recall_at_100": first.scores.recall_at_100,
                "result_path": first.result_path,
            },
        },
    )
