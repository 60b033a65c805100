"""Running again a training run that ended without a model: one that failed (an error, a
worker out of memory) resumes from its newest complete checkpoint, which a failed run keeps;
one that was cancelled starts again from step 0 (cancelling drops the checkpoints, see
``training.md``). The same row is queued again (``core.jobs.job_reopen``), so its page, its
``evaluate_after`` plan and its output folder stay the run's own."""

from __future__ import annotations

from core.errors import ApplicationError
from core.jobs import job_reopen
from core.models import JobStatus

from .models import TrainingRun


def training_run_retryable(*, run: TrainingRun) -> dict[str, int]:
    """``{"from_step": N}`` for a run that may run again: the step its newest checkpoint
    holds (0: from the start; a checkpoint found incomplete on the worker is skipped, so the
    resume may start a checkpoint earlier). Empty for a run that is queued, running or
    succeeded."""
    if run.status == JobStatus.FAILED:
        return {"from_step": int((run.metrics or {}).get("checkpoint_step") or 0)}
    if run.status == JobStatus.CANCELLED:
        return {"from_step": 0}
    return {}


def training_run_retry(*, run: TrainingRun) -> TrainingRun:
    """Queue ``run`` again (see the module); refused unless it failed or was cancelled."""
    left = training_run_retryable(run=run)
    if not left:
        raise ApplicationError(
            f"training #{run.pk} is {run.status}: only a failed or cancelled run runs again"
        )
    step = left["from_step"]
    changes: dict = {"progress_message": f"queued to resume from step {step:,}"}
    if not step:
        # From the start: the curve, the figures and the counters of the earlier life go.
        changes.update(
            progress_message="queued to run again from the start",
            progress=0.0,
            step=0,
            resumed_from_step=None,
            history=[],
            metrics={},
            log_tail="",
        )
    job_reopen(job=run, changes=changes)
    run.refresh_from_db()
    return run
