import os
from pathlib import Path

import pytest

from tests.support.environment import missing
from tests.support.users import user_with_role

SHARED_DATA = Path(
    os.environ.get("SIEVE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


@pytest.fixture(autouse=True, scope="session")
def _record_requested_routes(django_db_setup):
    from tests.support import routes

    routes.start_recording()


def _whole_suite(config) -> bool:
    """A run of every test (what `make test` and CI run), not a file, -k or -m selection."""
    args = [a for a in config.args if a.rstrip("/") not in ("tests", str(Path(__file__).parent))]
    return not args and not config.option.keyword and not config.option.markexpr


def pytest_sessionfinish(session, exitstatus):
    """Every URL route the project serves must be requested by some test (a regression in a
    page or endpoint no test opens would pass CI)."""
    forced = os.environ.get("SIEVE_CHECK_ROUTES") == "1"  # for a partial run, on purpose
    if exitstatus != 0 or not (forced or _whole_suite(session.config)):
        return
    from tests.support import routes

    unrequested = routes.unrequested()
    if unrequested:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        reporter.write_line(
            f"FAILED: {len(unrequested)} URL routes were requested by no test:", red=True
        )
        for name, path in sorted(unrequested.items()):
            reporter.write_line(f"  {name}  /{path}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_report_header(config) -> str:
    """Which database and broker this run tests (CI runs the suite on two)."""
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    broker = settings.CELERY_BROKER_URL.split("://", 1)[0]
    lane = " (SIEVE_TEST_EMBEDDED)" if getattr(settings, "EMBEDDED", False) else ""
    return f"sieve: database {engine}, broker {broker}{lane}"


@pytest.fixture
def shared_data() -> Path:
    """The real data in ../shared/data; tests that need it skip with a reason without it."""
    if not SHARED_DATA.is_dir():
        missing(f"real data folder {SHARED_DATA} is not present")
    return SHARED_DATA


@pytest.fixture
def curator(db, django_user_model):
    return user_with_role(django_user_model, "cora", "curator")


@pytest.fixture
def annotator(db, django_user_model):
    return user_with_role(django_user_model, "ann", "annotator")


@pytest.fixture
def viewer(db, django_user_model):
    return user_with_role(django_user_model, "vic", "viewer")


@pytest.fixture
def admin_user(db, django_user_model):
    return django_user_model.objects.create_superuser(username="root", password="pw-root")


@pytest.fixture
def curator_client(client, curator):
    client.force_login(curator)
    return client


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client


@pytest.fixture
def annotator_client(client, annotator):
    client.force_login(annotator)
    return client


# --- A real Celery worker ---------------------------------------------------------------

WORKER_QUEUES = ("default", "llm", "gpu")


def _database_url_for_subprocess() -> str:
    """The URL of the database this test uses (pytest-django's test_<name>), for a worker
    process. An in-memory SQLite test database cannot be shared with another process."""
    from urllib.parse import quote

    from django.conf import settings
    from django.db import connection

    db = settings.DATABASES["default"]
    if connection.vendor == "postgresql":
        auth = quote(db.get("USER") or "", safe="")
        if db.get("PASSWORD"):
            auth += ":" + quote(db["PASSWORD"], safe="")
        host = db.get("HOST") or "127.0.0.1"
        port = db.get("PORT") or 5432
        return f"postgres://{auth}@{host}:{port}/{db['NAME']}"
    if connection.vendor == "sqlite" and not connection.is_in_memory_db():
        return f"sqlite:///{db['NAME']}"
    missing("a worker process needs a test database it can open: run with PostgreSQL")


class CeleryWorkerProcess:
    """``celery -A config worker`` as a subprocess on the test database and the test broker.

    ``stop()`` is the cold shutdown runall uses (SIGQUIT), ``kill()`` a crash (SIGKILL to the
    whole process group), ``start()`` starts it again under the same node name, which is how
    a restarted worker finds the jobs its previous life was running."""

    def __init__(self, *, env: dict, log_path: Path, nodename: str):
        self.env = env
        self.log_path = log_path
        self.nodename = nodename
        self.process = None
        # Worker processes of the next start() (2: two messages may run at once).
        self.concurrency = 1

    def start(self, *, timeout: float = 120.0) -> "CeleryWorkerProcess":
        import subprocess
        import sys
        import time

        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        command = [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            "-Q", ",".join(WORKER_QUEUES), "-n", self.nodename,
            "--pool", "prefork", "--concurrency", str(self.concurrency), "--loglevel", "INFO",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            cwd=Path(__file__).resolve().parents[1],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.log_path.open("rb") as f:
                f.seek(offset)
                if b" ready." in f.read():
                    return self
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        self.kill()
        pytest.fail(f"celery worker did not start:\n{self.log_text()}")

    def stop(self, *, timeout: float = 60.0) -> None:
        import signal
        import subprocess

        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGQUIT)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"celery worker did not stop on SIGQUIT:\n{self.log_text()}")
        self._kill_group()

    def kill(self) -> None:
        if self.process is None:
            return
        self._kill_group()
        self.process.wait()

    def _kill_group(self) -> None:
        import signal

        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _broker_purge(app) -> None:
    """Start from an empty broker: messages left by an earlier run would otherwise be consumed
    against this test's database."""
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in WORKER_QUEUES:
            try:
                channel.queue_purge(queue)
            except Exception:  # a queue that was never declared
                pass
        if connection.transport_cls in ("redis", "rediss"):
            channel.client.delete(channel.unacked_key, channel.unacked_index_key)


@pytest.fixture
def celery_worker_process(transactional_db, tmp_path):
    """A started worker for ``default``, ``llm`` and ``gpu`` on the test database (use with
    ``@pytest.mark.django_db(transaction=True)``: the worker sees only committed rows)."""
    import uuid

    from django.conf import settings

    from config.celery import app

    if settings.CELERY_BROKER_URL.startswith("memory"):
        missing("a worker process needs a real broker (Redis or the filesystem transport)")
    env = dict(os.environ)
    env.update(
        DATABASE_URL=_database_url_for_subprocess(),
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        SIEVE_VAR_DIR=str(settings.VAR_DIR),
        DJANGO_SETTINGS_MODULE="tests.core.worker_settings",
        PYTHONUNBUFFERED="1",
    )
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    _broker_purge(app)
    worker = CeleryWorkerProcess(
        env=env, log_path=tmp_path / "worker.log", nodename=f"pytest-{uuid.uuid4().hex[:8]}@%h"
    )
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def api_as():
    """``api_as(user)``: a DRF APIClient authenticated as ``user`` (one per person)."""
    from rest_framework.test import APIClient

    def make(user) -> APIClient:
        client = APIClient()
        client.force_authenticate(user)
        return client

    return make
