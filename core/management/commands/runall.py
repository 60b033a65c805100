"""``manage.py runall``: the web server and one Celery worker per queue, in one process tree.

Why not honcho or ``worker & runserver``: honcho SIGKILLs its children 5 s after Ctrl-C, before
Celery has handed its unfinished task back to the broker, so the task is lost; a backgrounded
worker in a Makefile outlives Ctrl-C. Here:

* every worker runs in its own session (``start_new_session``), so the terminal's Ctrl-C does
  not reach it directly: a worker that gets SIGINT starts a *warm* shutdown and waits for its
  running task to finish, which for a training run means hours;
* on Ctrl-C or SIGTERM this command stops the web server and sends each worker SIGQUIT, a
  *cold* shutdown: the running task is terminated and, being ``acks_late``, its message goes
  back to the queue (the filesystem and Redis transports restore unacked messages when the
  worker closes its channel), so it runs again on the next start; see core/jobs.md;
* whatever has not exited after ``--stop-timeout`` seconds is SIGKILLed, process group and all;
* workers get SIGQUIT from the kernel if this process dies without cleaning up (PDEATHSIG).
"""

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

PR_SET_PDEATHSIG = 1


@dataclass
class WorkerSpec:
    queue: str
    concurrency: int
    extra: list[str] = field(default_factory=list)


def worker_specs(*, cpu_count: int) -> list[WorkerSpec]:
    """One worker per queue, sized for a small machine.

    ``default`` (imports, exports, mining on CPU) is CPU-bound: one process on a 2-core machine
    leaves a core for the web server and the database. ``llm`` waits on HTTP most of the time,
    so it gets more processes than cores. ``gpu`` runs one job at a time in a fresh process
    (``--max-tasks-per-child 1`` returns the GPU memory) and never prefetches a second job.
    """
    return [
        WorkerSpec("default", max(1, min(2, cpu_count - 1))),
        WorkerSpec("llm", 4),
        WorkerSpec("gpu", 1, ["--max-tasks-per-child", "1", "--prefetch-multiplier", "1"]),
    ]


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: if runall is killed outright, the kernel
    sends this worker SIGQUIT, so it still hands its task back instead of running orphaned."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGQUIT)
    except (OSError, AttributeError):
        pass  # not Linux: the signal handlers below still stop the workers


class Command(BaseCommand):
    help = (
        "Run the web server and Celery workers for the default, llm and gpu queues together. "
        "Ctrl-C stops everything; a task that was running is handed back and runs again on "
        "the next start."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--addr", default="127.0.0.1:8000", help="web server address (default 127.0.0.1:8000)"
        )
        parser.add_argument(
            "--stop-timeout",
            type=float,
            default=20.0,
            help="seconds to wait for a clean stop before killing (default 20)",
        )
        parser.add_argument(
            "--loglevel", default="INFO", help="Celery worker log level (default INFO)"
        )

    def handle(self, *args, addr: str, stop_timeout: float, loglevel: str, **options):
        self._stop_requested = False
        previous = {
            sig: signal.signal(sig, self._request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        # Static files for the web server (whitenoise serves STATIC_ROOT when DEBUG is off).
        call_command("collectstatic", interactive=False, verbosity=0)

        children: list[tuple[str, subprocess.Popen]] = []
        try:
            specs = worker_specs(cpu_count=os.cpu_count() or 1)
            for spec in specs:
                children.append((f"worker {spec.queue}", self._start_worker(spec, loglevel)))
            children.append(("web", self._start_web(addr)))
            queues = ", ".join(f"{s.queue} ×{s.concurrency}" for s in specs)
            self.stdout.write(
                self.style.SUCCESS(
                    f"Sieve is starting at http://{addr}/  (workers: {queues}). "
                    "Press Ctrl-C to stop everything."
                )
            )
            exit_code = self._wait(children)
        finally:
            self._stop(children, timeout=stop_timeout)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if exit_code:
            raise CommandError(f"a process exited unexpectedly with code {exit_code}; stopped all")

    def _request_stop(self, signum, frame) -> None:
        self._stop_requested = True

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _start_worker(self, spec: WorkerSpec, loglevel: str) -> subprocess.Popen:
        command = [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            "-Q", spec.queue,
            "-n", f"{spec.queue}@%h",
            "--pool", "prefork",
            "--concurrency", str(spec.concurrency),
            "--loglevel", loglevel,
            # One machine, one worker per queue: no need to sync with or watch other workers,
            # and on the filesystem broker each of these costs polling.
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            *spec.extra,
        ]  # fmt: skip
        return subprocess.Popen(
            command,
            cwd=settings.BASE_DIR,
            env=self._child_env(),
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def _start_web(self, addr: str) -> subprocess.Popen:
        # No autoreloader: it forks a second server process that would outlive a stop.
        command = [
            sys.executable,
            str(Path(settings.BASE_DIR) / "manage.py"),
            "runserver",
            "--noreload",
            addr,
        ]
        return subprocess.Popen(command, cwd=settings.BASE_DIR, env=self._child_env())

    def _wait(self, children) -> int:
        """Block until a stop is requested or a child exits on its own (e.g. the port is taken):
        then everything stops, since half a Sieve is no use."""
        while not self._stop_requested:
            for name, process in children:
                code = process.poll()
                if code is not None:
                    self.stderr.write(f"{name} exited with code {code}; stopping everything.")
                    return code or 1
            time.sleep(0.3)
        return 0

    def _stop(self, children, *, timeout: float) -> None:
        if not children:
            return
        self.stdout.write("Stopping: the web server, then a cold shutdown of the workers…")
        for name, process in children:
            if process.poll() is not None:
                continue
            if name == "web":
                process.send_signal(signal.SIGINT)
            else:
                # Cold shutdown: terminate the running task, give its message back.
                process.send_signal(signal.SIGQUIT)
        deadline = time.monotonic() + timeout
        for name, process in children:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} did not stop within {timeout:.0f} s; killing it.")
                process.kill()
                process.wait()
        # A worker's pool processes live in its process group; none may outlive it.
        for name, process in children:
            if name != "web":
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.stdout.write("Stopped.")
