"""Settings for worker processes started by tests: those of ``make run`` (local, which creates
its folders and reads the key file test settings share), plus the slow test task."""

from config.settings.local import *  # noqa: F401,F403

CELERY_IMPORTS = ["tests.core.worker_tasks"]
