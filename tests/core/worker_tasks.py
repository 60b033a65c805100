"""A slow job for the worker tests: it lets a test stop or kill a worker in the middle of a
job and see what happens to the job on the next start. It runs on an ImportJob row only
because that is a concrete job table; nothing is imported."""

import time
from pathlib import Path

from celery import shared_task

from core.jobs import JobOutcome, ProgressReporter, job_run


@shared_task(name="tests.core.worker_tasks.slow_job_run")
def slow_job_run(job_id: int) -> None:
    from curation.models import ImportJob

    job = ImportJob.objects.get(pk=job_id)

    def work(progress) -> JobOutcome:
        # One line per start, so a test can count how often the job ran.
        with Path(job.options["attempt_log"]).open("a") as log:
            log.write("started\n")
        steps = int(job.options.get("steps", 20))
        report = ProgressReporter(job, interval=0)  # every step, for the tests to watch
        for step in range(steps):
            time.sleep(float(job.options.get("step_seconds", 0.5)))
            report((step + 1) / steps, f"step {step + 1} of {steps}")
        return JobOutcome(stats={"steps": steps})

    job_run(job=job, work=work)
