"""Settings for worker processes started by tests: the project's own, plus the slow test task."""

from config.settings.base import *  # noqa: F401,F403

CELERY_IMPORTS = ["tests.core.worker_tasks"]
