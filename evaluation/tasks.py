"""Celery tasks: thin wrappers, primary key in, one service call. The service records
failures on the job row itself. Routed to the ``gpu`` queue (config/settings/base.py)."""

from celery import shared_task


@shared_task(name="evaluation.tasks.evaluation_run")
def evaluation_run(job_id: int) -> None:
    from .services.execution import evaluation_run_execute

    evaluation_run_execute(run_id=job_id)
