"""Reads for evaluation pages: runs, the leaderboard and the policy experiments.

The leaderboard reads at most one result per (model, task): the newest succeeded one, found
with one GROUP BY in SQL (``evalresult_task_idx``), so its cost follows the number of
models × tasks, not the number of evaluation runs. The arithmetic (mean, rank, Δ) is in the
pure ``evaluation/leaderboard.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.db.models import Count, Max, QuerySet

from core.models import JobStatus
from training.models import TrainingRun

from .leaderboard import (
    LeaderboardRow,
    ModelEntry,
    leaderboard_build,
    manifest_summary,
    model_key_for,
)
from .models import EvalResult, EvaluationMode, EvaluationRun
from .services.task_specs import evaluation_task_labels

DEFAULT_SPLIT = "test"


def evaluation_run_get(*, run_id: int) -> EvaluationRun:
    return EvaluationRun.objects.select_related(
        "training_run", "training_run__snapshot", "created_by"
    ).get(pk=run_id)


def evaluation_run_results(*, run: EvaluationRun) -> list[EvalResult]:
    return list(run.results.order_by("task", "split"))


def evaluation_runs_recent(*, limit: int = 20, training_run=None) -> list[EvaluationRun]:
    """The newest runs, each with ``task_names``: its tasks as pages name them."""
    runs = EvaluationRun.objects.select_related("training_run")
    if training_run is not None:
        runs = runs.filter(training_run=training_run)
    runs = list(runs.order_by("-id")[:limit])
    labels = evaluation_task_labels([t for run in runs for t in run.tasks])
    for run in runs:
        run.task_names = [labels.get(t, t) for t in run.tasks]
    return runs


def _latest_results(*, mode: str, split: str) -> QuerySet:
    latest = (
        EvalResult.objects.filter(run__status=JobStatus.SUCCEEDED, run__mode=mode, split=split)
        .values("run__model_key", "task")
        .annotate(latest=Max("id"))
        .values("latest")
    )
    return EvalResult.objects.filter(id__in=latest).select_related(
        "run",
        "run__training_run",
        "run__training_run__snapshot",
        "run__training_run__snapshot__dataset",
    )


def _entry(run: EvaluationRun) -> ModelEntry:
    training = run.training_run
    info: dict = {"evaluation_run_id": run.pk, "model_ref": run.model_ref}
    base_key = None
    if training is not None:
        snapshot = training.snapshot
        base_key = model_key_for(training.base_model)
        info.update(
            training_run_id=training.pk,
            base_model=training.base_model,
            method=training.method,
            snapshot_id=snapshot.pk,
            policy=snapshot.policy,
            dataset=snapshot.dataset.name,
            dataset_id=snapshot.dataset_id,
            counts=manifest_summary(snapshot.manifest or {}),
        )
    rerank = (run.config or {}).get("rerank")
    if rerank:
        # A reranker's scores depend on its first stage: its base is the base reranker over
        # the same first stage (the key the run recorded), not the base as an embedder.
        info["reranker"] = rerank
        base_key = run.base_model if training is not None else None
    return ModelEntry(key=run.model_key, label=run.model_label, base_key=base_key, info=info)


@dataclass
class Leaderboard:
    tasks: list[str]  # the selected columns
    all_tasks: list[str]  # every task with a result in this mode and split
    rows: list[LeaderboardRow]
    mode: str
    split: str
    results: dict[tuple[str, str], EvalResult] = field(default_factory=dict)
    task_labels: dict[str, str] = field(default_factory=dict)  # spec → what the page shows


def leaderboard_mode_counts(*, split: str = DEFAULT_SPLIT) -> dict[str, int]:
    """{mode: how many models have a result in it}, for the leaderboard's tabs."""
    counts = (
        EvalResult.objects.filter(run__status=JobStatus.SUCCEEDED, split=split)
        .values("run__mode")
        .annotate(models=Count("run__model_key", distinct=True))
    )
    found = {row["run__mode"]: row["models"] for row in counts}
    return {mode: found.get(mode, 0) for mode in EvaluationMode.values}


def leaderboard_default_mode(counts: dict[str, int]) -> str:
    """The tab the leaderboard opens on: the full corpus when it has results, else the
    first mode that has some (a streamlined-only start is not an empty page)."""
    if counts.get(EvaluationMode.FULL):
        return EvaluationMode.FULL
    return next((mode for mode, n in counts.items() if n), EvaluationMode.FULL)


def leaderboard_get(
    *, tasks: list[str] | None = None, mode: str = EvaluationMode.FULL, split: str = DEFAULT_SPLIT
) -> Leaderboard:
    results = list(_latest_results(mode=mode, split=split))
    all_tasks = sorted({r.task for r in results})
    selected = [t for t in (tasks or all_tasks) if t in all_tasks]
    newest_run: dict[str, EvaluationRun] = {}
    scores: dict[tuple[str, str], float] = {}
    by_cell: dict[tuple[str, str], EvalResult] = {}
    for result in results:
        key = result.run.model_key
        scores[(key, result.task)] = result.main_score
        by_cell[(key, result.task)] = result
        if key not in newest_run or result.run.pk > newest_run[key].pk:
            newest_run[key] = result.run
    models = [_entry(run) for run in newest_run.values()]
    rows = leaderboard_build(models=models, scores=scores, tasks=selected)
    return Leaderboard(
        tasks=selected, all_tasks=all_tasks, rows=rows, mode=mode, split=split, results=by_cell,
        task_labels=evaluation_task_labels(all_tasks),
    )  # fmt: skip


# --- experiments: runs that differ only in snapshot policy -----------------------------------


@dataclass
class Experiment:
    """Training runs on one dataset with the same base model, method and hyper-parameters,
    whose snapshots differ only in policy (RLHN's default vs remove_hn vs relabel)."""

    dataset: str
    base_model: str
    method: str
    config: dict
    runs: list[TrainingRun]
    rows: list[LeaderboardRow]  # the base model first when evaluated, then one per run
    policies: list[str]
    # The shares of queries the snapshots held out for evaluation: more than one, and their
    # training sets differ by more than the policy.
    held_out: list[float]


def _held_out_share(snapshot) -> float:
    return float(((snapshot.manifest or {}).get("held_out") or {}).get("fraction") or 0.0)


def _experiment_signature(run: TrainingRun) -> str:
    snapshot = run.snapshot
    config = {k: v for k, v in (run.config or {}).items() if k != "base_model"}
    return json.dumps(
        [snapshot.dataset_id, snapshot.format, run.base_model, run.method, config],
        sort_keys=True,
    )


def experiments_get(
    *, mode: str = EvaluationMode.FULL, split: str = DEFAULT_SPLIT, limit_runs: int = 500
) -> tuple[list[str], list[Experiment]]:
    board = leaderboard_get(mode=mode, split=split)
    rows_by_key = {row.key: row for row in board.rows}
    runs = (
        TrainingRun.objects.filter(status=JobStatus.SUCCEEDED)
        .select_related("snapshot", "snapshot__dataset")
        .order_by("-id")[:limit_runs]
    )
    groups: dict[str, list[TrainingRun]] = {}
    for run in runs:
        groups.setdefault(_experiment_signature(run), []).append(run)
    experiments = []
    for members in groups.values():
        members.sort(key=lambda r: (r.snapshot.policy, r.pk))
        rows = [
            rows_by_key[f"training:{r.pk}"] for r in members if f"training:{r.pk}" in rows_by_key
        ]
        if not rows:
            continue
        base_row = rows_by_key.get(model_key_for(members[0].base_model))
        first = members[0]
        experiments.append(
            Experiment(
                dataset=first.snapshot.dataset.name,
                base_model=first.base_model,
                method=first.method,
                config=first.config,
                runs=members,
                rows=([base_row] if base_row else []) + rows,
                policies=sorted({r.snapshot.policy for r in members}),
                held_out=sorted({_held_out_share(r.snapshot) for r in members}),
            )
        )
    # Comparisons first: groups with several policies, then the newest.
    experiments.sort(key=lambda e: (-len(e.policies), -max(r.pk for r in e.runs)))
    return board.tasks, experiments
