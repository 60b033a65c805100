"""manage.py train --snapshot ID [--also ID …] [--name N] [--config JSON] [--base-model M]
[--method lora|full] [--max-steps N] [--epochs E] [--batch-size B] [--learning-rate LR]
[--num-negatives K] [--temperature T] [--lora-r R] … [--enqueue]

Fine-tunes a model on a snapshot: every ``TrainConfig`` field is an option (``--lora-r``,
``--query-max-length``, ``--gradient-cache`` / ``--no-gradient-cache``, …); ``--config`` gives
several at once as JSON and the options override it. Runs here with a progress line, or with
``--enqueue`` records the run for a ``gpu`` worker. ``--also`` adds snapshots trained on in
the same run (each batch from one of them; ``training/core/mixing.py``).
"""

import argparse
import json

from django.core.management.base import BaseCommand, CommandError

from core.commands import command_job_run
from core.errors import ApplicationError
from curation.models import Snapshot
from training.core.config import ConfigError, ConfigField, config_fields
from training.services import training_more_snapshots, training_run_create, training_run_execute


def _option_type(config_field: ConfigField):
    """argparse's ``type`` for an option: the schema's own conversion and check, so the
    command line refuses exactly what the form and the API refuse."""

    def parse(text: str):
        try:
            return config_field.parse(text)
        except ConfigError as error:
            raise argparse.ArgumentTypeError(error.message) from None

    parse.__name__ = config_field.kind
    return parse


def _option_help(config_field: ConfigField) -> str:
    text = config_field.label + (f": {config_field.help}" if config_field.help else "")
    if config_field.limits_text():
        text += f" ({config_field.limits_text()})"
    return text.replace("%", "%%") + f" (default: {config_field.default!r})"


class Command(BaseCommand):
    help = "Fine-tune an embedding model on a snapshot (LoRA or full)."

    def add_arguments(self, parser):
        parser.add_argument("--snapshot", type=int, required=True, help="snapshot id")
        parser.add_argument(
            "--also",
            type=int,
            action="append",
            default=[],
            metavar="SNAPSHOT",
            help="another snapshot to train on in the same run (repeat, in order; see "
            "--task-order and --mixed-steps)",
        )
        parser.add_argument("--name", default="", help="a name for the run")
        parser.add_argument(
            "--config", help="training settings as a JSON object; the options below override it"
        )
        parser.add_argument(
            "--enqueue",
            action="store_true",
            help="queue the run for a gpu worker instead of training now",
        )
        for config_field in config_fields():
            option = "--" + config_field.name.replace("_", "-")
            if config_field.kind == "bool":
                parser.add_argument(
                    option,
                    dest=config_field.name,
                    action=argparse.BooleanOptionalAction,
                    help=_option_help(config_field),
                )
                continue
            parser.add_argument(
                option,
                dest=config_field.name,
                type=_option_type(config_field),
                choices=config_field.values or None,
                help=_option_help(config_field),
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
        for config_field in config_fields():
            if options.get(config_field.name) is not None:
                config[config_field.name] = options[config_field.name]
        try:
            run = training_run_create(
                snapshot=snapshot,
                config=config,
                name=options["name"],
                enqueue=options["enqueue"],
                more_snapshots=training_more_snapshots(options["also"]),
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
