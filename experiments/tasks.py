"""Celery tasks of the experiments app: thin wrappers, primary key in, one service call."""

from celery import shared_task


@shared_task(name="experiments.tasks.policy_comparison")
def policy_comparison(job_id: int) -> None:
    from .services import policy_comparison_execute

    policy_comparison_execute(comparison_id=job_id)
