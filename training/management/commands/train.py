"""manage.py train --snapshot ID [--name N] [--config JSON] [--base-model M]
[--method lora|full] [--max-steps N] [--epochs E] [--batch-size B] [--learning-rate LR]
[--num-negatives K] [--temperature T] [--lora-r R] … [--enqueue]

Fine-tunes a model on a snapshot: every ``TrainConfig`` field is an option (``--lora-r``,
``--query-max-length``, ``--gradient-cache`` / ``--no-gradient-cache``, …); ``--config`` gives
several at once as JSON and the options override it. Runs here with a progress line, or with
``--enqueue`` records the run for a ``gpu`` worker.
"""

import argparse
import dataclasses
import json

from django.core.management.base import BaseCommand, CommandError

from core.commands import command_job_run
from core.errors import ApplicationError
from curation.models import Snapshot
from training.core import TrainConfig
from training.services import training_run_create, training_run_execute

_TYPES = {"int": int, "float": float, "str": str, "optional_str": str, "list": str}


class Command(BaseCommand):
    help = "Fine-tune an embedding model on a snapshot (LoRA or full)."

    def add_arguments(self, parser):
        parser.add_argument("--snapshot", type=int, required=True, help="snapshot id")
        parser.add_argument("--name", default="", help="a name for the run")
        parser.add_argument(
            "--config", help="training settings as a JSON object; the options below override it"
        )
        parser.add_argument(
            "--enqueue",
            action="store_true",
            help="queue the run for a gpu worker instead of training now",
        )
        for name, info in TrainConfig.field_help().items():
            option = "--" + name.replace("_", "-")
            text = info["label"] + (f": {info['help']}" if info.get("help") else "")
            text = text.replace("%", "%%") + f" (default: {info['default']!r})"
            if info["type"] == "bool":
                parser.add_argument(
                    option, dest=name, action=argparse.BooleanOptionalAction, help=text
                )
                continue
            parser.add_argument(
                option,
                dest=name,
                type=_TYPES[info["type"]],
                choices=info.get("choices"),
                help=text + (" (comma-separated)" if info["type"] == "list" else ""),
            )

    def handle(self, *args, **options):
        try:
            snapshot = Snapshot.objects.get(pk=options["snapshot"])
        except Snapshot.DoesNotExist:
            raise CommandError(f"no snapshot #{options['snapshot']}") from None
        config = {}
        if options["config"]:
            try:
                config = json.loads(options["config"])
            except ValueError as error:
                raise CommandError(f"--config is not valid JSON: {error}") from None
            if not isinstance(config, dict):
                raise CommandError("--config must be a JSON object")
        for field in dataclasses.fields(TrainConfig):
            if options.get(field.name) is not None:
                config[field.name] = options[field.name]
        try:
            run = training_run_create(
                snapshot=snapshot, config=config, name=options["name"], enqueue=options["enqueue"]
            )
        except ApplicationError as error:
            field = error.detail.get("field")
            raise CommandError(f"{field}: {error.message}" if field else error.message) from None
        if options["enqueue"]:
            self.stdout.write(f"queued training run #{run.pk} on snapshot #{snapshot.pk}")
            return
        run = command_job_run(self, job=run, execute=training_run_execute)
        metrics = run.metrics
        self.stdout.write(
            self.style.SUCCESS(
                f"training run #{run.pk}: {run.step:,} steps, loss {metrics['train_loss']:.4f}, "
                f"{metrics['samples_per_s']:.2f} samples/s on {metrics['device']}"
            )
        )
        self.stdout.write(f"{run.artifact_kind}: {run.artifact_path} (base {run.base_model})")
