"""Celery tasks of the review app: thin wrappers, primary key in, one service call. Routed to
the ``default`` queue (``review.tasks.*`` in config/settings/base.py)."""

from celery import shared_task


@shared_task(name="review.tasks.agreement_report_run")
def agreement_report_run(job_id: int) -> None:
    from .agreement.services import agreement_report_run as run

    run(report_id=job_id)
