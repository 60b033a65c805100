"""manage.py run_cascade DATASET [--estimate-only] [--budget USD] [--mode online|batch]
[--stages N] [--base-url URL] [--concurrency N] [--forward-tags better,worse]
[--fn-tags better] [--max-negatives 25] [--max-positives N] [--output-tokens 2048]
[--flag-rate 0.8] [--async]

Prints the dry-run estimate (tokens counted on every query's prompt), then runs the cascade
here with a progress line, or with ``--async`` queues it for the ``llm`` workers. Stage
settings come from the environment (``SIEVE_LLM_STAGE<n>_*``, see curation/llm/stages.py);
``--base-url`` and ``--concurrency`` override them for every stage. Prompts show all of a
query's positives unless ``--max-positives`` caps them.
"""

from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError

from core.commands import command_job_run
from core.errors import ApplicationError
from curation.cascade.create import (
    DEFAULT_FALSE_NEGATIVE_TAGS,
    DEFAULT_FLAG_RATE,
    DEFAULT_FORWARD_TAGS,
    DEFAULT_OUTPUT_TOKENS_PER_CALL,
    cascade_estimate,
    cascade_run_create,
    max_positives_parse,
)
from curation.cascade.execute import cascade_run_execute
from curation.llm.stages import stages_from_env
from curation.models import CascadeMode, Dataset


def _tags(value: str) -> list[str]:
    return [tag.strip() for tag in value.split(",") if tag.strip()]


class Command(BaseCommand):
    help = "Estimate and run the cascade of LLM judges over a dataset's hard negatives."

    def add_arguments(self, parser):
        parser.add_argument("dataset", help="dataset name")
        parser.add_argument(
            "--estimate-only", action="store_true", help="print the estimate, run nothing"
        )
        parser.add_argument("--budget", help="USD cap: the run stops before a call would pass it")
        parser.add_argument("--mode", choices=CascadeMode.values, default=CascadeMode.ONLINE)
        parser.add_argument("--stages", type=int, help="use only the first N stages")
        parser.add_argument("--base-url", help="one OpenAI-compatible endpoint for every stage")
        parser.add_argument("--concurrency", type=int, help="calls in flight per stage")
        parser.add_argument("--forward-tags", type=_tags, default=DEFAULT_FORWARD_TAGS)
        parser.add_argument("--fn-tags", type=_tags, default=DEFAULT_FALSE_NEGATIVE_TAGS)
        parser.add_argument("--max-negatives", type=int, default=25)
        parser.add_argument(
            "--max-positives",
            help="show at most N of a query's positives per prompt (default: all of them)",
        )
        parser.add_argument(
            "--output-tokens",
            type=int,
            default=DEFAULT_OUTPUT_TOKENS_PER_CALL,
            help="estimate: output tokens assumed per call",
        )
        parser.add_argument(
            "--flag-rate",
            type=float,
            default=DEFAULT_FLAG_RATE,
            help="estimate: share of queries each stage forwards",
        )
        parser.add_argument(
            "--async",
            dest="run_async",
            action="store_true",
            help="queue the run for the llm workers instead of running it here",
        )

    def handle(self, *args, **options):
        try:
            dataset = Dataset.objects.get(name=options["dataset"])
        except Dataset.DoesNotExist:
            raise CommandError(f"no dataset named {options['dataset']!r}") from None
        try:
            stages = stages_from_env()
        except ValueError as error:
            raise CommandError(str(error)) from None
        if options["stages"]:
            stages = stages[: options["stages"]]
        changes = {}
        if options["base_url"]:
            changes["base_url"] = options["base_url"]
        if options["concurrency"]:
            changes["concurrency"] = options["concurrency"]
        stages = [stage.with_changes(**changes) for stage in stages]
        budget = None
        if options["budget"]:
            try:
                budget = Decimal(options["budget"])
            except InvalidOperation:
                raise CommandError(f"--budget {options['budget']!r} is not an amount") from None
        try:
            max_positives = max_positives_parse(options["max_positives"])
        except ApplicationError as error:
            raise CommandError(f"--max-positives: {error.message}") from None

        estimate = cascade_estimate(
            dataset=dataset, stages=stages, max_negatives=options["max_negatives"],
            max_positives=max_positives, mode=options["mode"],
            output_tokens_per_call=options["output_tokens"],
            flag_rate=options["flag_rate"],
        )  # fmt: skip
        self._print_estimate(estimate)
        if options["estimate_only"]:
            return
        try:
            run = cascade_run_create(
                dataset=dataset, stages=stages, mode=options["mode"],
                forward_tags=options["forward_tags"], false_negative_tags=options["fn_tags"],
                max_negatives=options["max_negatives"], max_positives=max_positives,
                budget_usd=budget, estimate=estimate,
                enqueue=options["run_async"],
            )  # fmt: skip
        except ApplicationError as error:
            raise CommandError(error.message) from None
        if options["run_async"]:
            self.stdout.write(f"queued cascade #{run.pk} on {dataset.name}")
            return
        self.stderr.write(
            f"cascade #{run.pk} running here (Ctrl-C stops it; it resumes when run again)"
        )
        run = command_job_run(self, job=run, execute=cascade_run_execute)
        self.stdout.write(
            self.style.SUCCESS(f"cascade #{run.pk} {run.status}: {run.progress_message}")
        )

    def _print_estimate(self, estimate: dict) -> None:
        how = (
            ""
            if estimate["exact_tokens"]
            else " (approximate: characters / 4, no vocabulary loaded)"
        )
        self.stdout.write(
            f"{estimate['queries']:,} queries with negatives · mode {estimate['mode']} · "
            f"positives per prompt: {estimate['max_positives'] or 'all'} · "
            f"{estimate['output_tokens_per_call']:,} output tokens assumed per call · "
            f"flag rate {estimate['flag_rate']}{how}"
        )
        for row in estimate["stages"]:
            self.stdout.write(
                f"  stage {row['stage']} {row['model']}: {row['calls']:,} calls, "
                f"{row['input_tokens']:,} in / {row['output_tokens']:,} out tokens, "
                f"${row['cost_usd']}"
            )
        self.stdout.write(
            f"estimated cost: ${estimate['cost_usd']} "
            f"(last stage alone on every query: ${estimate['strong_judge_only_cost_usd']})"
        )
