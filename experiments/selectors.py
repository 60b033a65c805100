"""Reads for the experiment pages."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from curation.models import Snapshot
from evaluation.models import EvaluationRun
from training.models import TrainingRun

from .models import PolicyComparison

# --- policy comparisons ---------------------------------------------------------------------


@dataclass
class ComparisonStep:
    policy: str
    snapshot: Snapshot | None
    training_run: TrainingRun | None
    evaluation_runs: list[EvaluationRun]


def policy_comparisons_recent(*, limit: int = 10) -> list[PolicyComparison]:
    return list(PolicyComparison.objects.select_related("dataset").order_by("-id")[:limit])


def policy_comparison_get(*, comparison_id: int) -> PolicyComparison:
    return PolicyComparison.objects.select_related("dataset", "created_by").get(pk=comparison_id)


def comparison_progress(steps: list[ComparisonStep]) -> str:
    """Where the runs a comparison started stand: the comparison's own job only starts them
    (its "succeeded" means launched), so the page says how far they got — "training runs:
    2 succeeded, 1 running · evaluations: 2 succeeded, 1 waiting for its training"."""

    def counted(statuses) -> list[str]:
        return [f"{n} {status}" for status, n in Counter(statuses).items()]

    trainings = counted(s.training_run.status for s in steps if s.training_run)
    evaluations = counted(r.status for s in steps for r in s.evaluation_runs)
    if waiting := sum(1 for s in steps if s.training_run and not s.evaluation_runs):
        evaluations.append(f"{waiting} waiting for {'its' if waiting == 1 else 'their'} training")
    parts = []
    if trainings:
        parts.append("training runs: " + ", ".join(trainings))
    if evaluations:
        parts.append("evaluations: " + ", ".join(evaluations))
    return " · ".join(parts)


def comparison_steps(*, comparison: PolicyComparison) -> list[ComparisonStep]:
    """What the comparison started so far, one line per policy (a few rows: one query each
    kind)."""
    stats = comparison.stats or {}
    snapshots = Snapshot.objects.in_bulk(list((stats.get("snapshots") or {}).values()))
    runs = TrainingRun.objects.in_bulk(list((stats.get("training_runs") or {}).values()))
    evaluations: dict[int, list[EvaluationRun]] = {}
    for run in EvaluationRun.objects.filter(training_run_id__in=list(runs)).order_by("id"):
        evaluations.setdefault(run.training_run_id, []).append(run)
    steps = []
    for policy in comparison.policies:
        run = runs.get((stats.get("training_runs") or {}).get(policy))
        steps.append(
            ComparisonStep(
                policy=policy,
                snapshot=snapshots.get((stats.get("snapshots") or {}).get(policy)),
                training_run=run,
                evaluation_runs=evaluations.get(run.pk, []) if run else [],
            )
        )
    return steps
