from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"

    def ready(self):
        # Worker start reconciliation and start records (core/jobs.md); inert outside workers.
        from . import celery_signals  # noqa: F401
