"""What management commands share: a progress line on the terminal, and running a job in the
command's own process through the job framework (``core.jobs``)."""

import time

from django.core.management.base import BaseCommand, CommandError

from .models import Job, JobStatus


class ProgressLine:
    """Rewrites one line on a terminal; prints a line now and then into a log."""

    def __init__(self, stream):
        self.stream = stream
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.interval = 0.5 if self.tty else 10.0
        self._last = 0.0

    def __call__(self, fraction: float, message: str = "", *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        line = f"{fraction:6.1%}  {message}"
        if self.tty:
            self.stream.write(f"\r{line:<79}", ending="")
            if fraction >= 0.8:
                self.stream.write("", ending="\n")
        else:
            self.stream.write(line)
        self.stream.flush()


def command_job_run(command: BaseCommand, *, job: Job, execute) -> Job:
    """Run ``execute(run_id=job.pk, echo=…)`` here with a progress line on stderr and return
    the job as it ended. A job that failed or was cancelled raises CommandError (exit code 1)
    with its reason; one that finished with failures prints them and returns."""
    execute(run_id=job.pk, echo=ProgressLine(command.stderr))
    job.refresh_from_db()
    noun = f"{job._meta.verbose_name} #{job.pk}"
    if job.status == JobStatus.PARTIAL_FAILURE:
        command.stderr.write(command.style.WARNING(f"{noun} finished with failures: {job.error}"))
    elif job.status != JobStatus.SUCCEEDED:
        raise CommandError(f"{noun} {job.status}: {job.error}")
    return job
