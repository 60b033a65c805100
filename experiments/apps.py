from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "experiments"

    def ready(self):
        from core.jobs import job_finished

        from .services import training_run_finished

        # A training run that asked for an evaluation gets it when it succeeds.
        job_finished.connect(training_run_finished, dispatch_uid="experiments.evaluate_after")
