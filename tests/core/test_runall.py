"""``manage.py runall`` for real: the embedded runtime (SQLite + the filesystem broker in a temp
folder), started as a user starts it and stopped as Ctrl-C stops it (SIGINT to its process
group). Only generous safety timeouts: nothing here asserts how fast it is."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SAFETY_TIMEOUT = 180


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _embedded_env(var_dir: Path) -> dict:
    env = dict(os.environ)
    for name in (
        "DATABASE_URL",
        "CELERY_BROKER_URL",
        "CELERY_RESULT_BACKEND",
        "CELERY_TASK_ALWAYS_EAGER",
    ):
        env.pop(name, None)
    env.update(
        SIEVE_VAR_DIR=str(var_dir),
        # The project's settings plus the slow test task (tests/core/worker_tasks.py).
        DJANGO_SETTINGS_MODULE="tests.core.worker_settings",
        PYTHONUNBUFFERED="1",
    )
    return env


def _manage(env, *args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=SAFETY_TIMEOUT, **kwargs,
    )  # fmt: skip


def _process_table() -> dict[int, tuple[int, str]]:
    """pid → (parent pid, state) for every process, from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: split after its closing one.
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), fields[0])
    return table


def _descendants(pid: int) -> set[int]:
    table = _process_table()
    found, frontier = set(), {pid}
    while frontier:
        children = {p for p, (ppid, _) in table.items() if ppid in frontier} - found
        found |= children
        frontier = children
    return found


def _alive(pids: set[int]) -> set[int]:
    table = _process_table()
    return {p for p in pids if p in table and table[p][1] != "Z"}


class Runall:
    def __init__(self, env: dict, log_path: Path):
        self.env = env
        self.log_path = log_path
        self.port = _free_port()
        self.process = None

    def start(self) -> "Runall":
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "runall", "--addr", f"127.0.0.1:{self.port}"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group, so the test can "press Ctrl-C"
            )  # fmt: skip
        deadline = time.monotonic() + SAFETY_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"runall exited early:\n{self.log()}"
            with self.log_path.open("rb") as f:
                f.seek(offset)
                workers_ready = f.read().count(b" ready.")
            if workers_ready >= 3 and self._healthy():
                return self
            time.sleep(0.3)
        self.kill()
        pytest.fail(f"runall did not come up:\n{self.log()}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def ctrl_c(self) -> int:
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout=SAFETY_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"runall did not stop on Ctrl-C:\n{self.log()}")

    def kill(self) -> None:
        for pid in _descendants(self.process.pid) | {self.process.pid}:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def embedded(tmp_path):
    env = _embedded_env(tmp_path / "var")
    migrated = _manage(env, "migrate", "--noinput", "-v0")
    assert migrated.returncode == 0, migrated.stderr
    return env


def test_ctrl_c_stops_the_web_server_and_every_worker(embedded, tmp_path):
    runall = Runall(embedded, tmp_path / "runall.log").start()
    tree = _descendants(runall.process.pid)
    # The web server, three worker main processes and their pool processes.
    assert len(tree) >= 7, runall.log()

    exit_code = runall.ctrl_c()

    assert exit_code == 0, runall.log()
    assert _alive(tree) == set(), runall.log()


def _job_row(db_path: Path, job_id: int) -> tuple[str, float]:
    with sqlite3.connect(db_path, timeout=30) as db:
        return db.execute(
            "SELECT status, progress FROM curation_importjob WHERE id = ?", (job_id,)
        ).fetchone()


def _wait_for_row(db_path, job_id, predicate, runall) -> tuple[str, float]:
    deadline = time.monotonic() + SAFETY_TIMEOUT
    while time.monotonic() < deadline:
        row = _job_row(db_path, job_id)
        if predicate(*row):
            return row
        time.sleep(0.3)
    pytest.fail(f"job #{job_id} stuck at {row}:\n{runall.log()}")


def test_a_task_interrupted_by_ctrl_c_runs_again_on_the_next_start(embedded, tmp_path):
    db_path = tmp_path / "var" / "sieve.sqlite3"
    attempts = tmp_path / "attempts.log"
    runall = Runall(embedded, tmp_path / "runall.log").start()
    enqueue = _manage(
        embedded,
        "shell",
        "-c",
        "from core.jobs import job_enqueue; from curation.models import ImportJob; "
        "from tests.core.worker_tasks import slow_job_run; "
        "job = ImportJob.objects.create(dataset_name='slow', source_path='-', options="
        f"{{'attempt_log': {str(attempts)!r}, 'steps': 40, 'step_seconds': 0.25}}); "
        "job_enqueue(job=job, task=slow_job_run); print(job.pk)",
    )
    assert enqueue.returncode == 0, enqueue.stderr
    job_id = int(enqueue.stdout.split()[-1])
    _wait_for_row(db_path, job_id, lambda s, p: s == "running" and p >= 0.1, runall)

    assert runall.ctrl_c() == 0, runall.log()
    assert _job_row(db_path, job_id)[0] != "succeeded"

    runall.start()
    status, progress = _wait_for_row(db_path, job_id, lambda s, p: s == "succeeded", runall)
    runall.ctrl_c()

    assert progress == 1.0
    assert attempts.read_text().splitlines() == ["started", "started"]
