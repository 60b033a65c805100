"""Celery tasks: thin wrappers, primary key in, one service call. Routed to the ``gpu`` queue
(config/settings/base.py). The service records failures on the job row itself."""

from celery import shared_task


@shared_task(name="training.tasks.training_run")
def training_run(job_id: int) -> None:
    from .services import training_run_execute

    training_run_execute(run_id=job_id)
