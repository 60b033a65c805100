"""Celery tasks: thin wrappers, primary key in, one service call. The services record
failures on the job row themselves."""

from celery import shared_task


@shared_task(name="curation.tasks.import_job_run")
def import_job_run(job_id: int) -> None:
    from .datasets.imports import import_job_run as run

    run(job_id=job_id)


@shared_task(name="curation.tasks.export_job_run")
def export_job_run(job_id: int) -> None:
    from .datasets.snapshots import export_job_run as run

    run(job_id=job_id)


@shared_task(name="curation.tasks.mining_run")
def mining_run(job_id: int) -> None:
    from .mining.services import mining_run_execute

    mining_run_execute(run_id=job_id)


# Routed to the `llm` queue (config/settings/base.py): many concurrent I/O-bound calls.
@shared_task(name="curation.tasks.cascade_run")
def cascade_run(job_id: int) -> None:
    from .cascade.execute import cascade_run_execute

    cascade_run_execute(run_id=job_id)


@shared_task(name="curation.tasks.synthesis_run")
def synthesis_run(job_id: int) -> None:
    from .synthesis.services import synthesis_run_execute

    synthesis_run_execute(run_id=job_id)


@shared_task(name="curation.tasks.approval_apply")
def approval_apply(job_id: int) -> None:
    from .cascade.approvals import approval_execute

    approval_execute(run_id=job_id)


# Routed to the `llm` queue: it must run where the cascade's calls will run (preflight.py).
@shared_task(name="curation.tasks.llm_preflight")
def llm_preflight(stages: list[dict]) -> list[dict]:
    from .llm.preflight import stages_preflight
    from .llm.stages import StageSettings

    return stages_preflight([StageSettings.from_dict(stage) for stage in stages])
