"""manage.py synthesize DATASET [--sample-size N] [--seed S] [--negative-mode generate|mine]
[--teacher-model M] [--top-k K] [--negative-max-ratio R] [--model M] [--base-url U]
[--api-key-env NAME] [--price-in P] [--price-out P] [--concurrency C] [--temperature T]
[--max-tokens N] [--no-json-mode] [--async]

Writes synthetic triplets for sampled passages of a dataset's corpus with an LLM and a teacher
filter, with a progress line; ``--async`` records a synthesis run for the workers instead.
Generator settings default to the cascade's stage 1 (``SIEVE_LLM_STAGE1_*``); the API key is
read from the environment variable named by ``--api-key-env``, never from the command line.
"""

import time

from django.core.management.base import BaseCommand, CommandError

from core.commands import command_job_run
from core.errors import ApplicationError
from curation.datasets.selectors import dataset_get_by_name
from curation.models import Dataset, SynthesisNegativeMode, SynthesisRun
from curation.synthesis.services import synthesis_run_create, synthesis_run_execute

GENERATOR_OPTIONS = {
    "model": "model",
    "base_url": "base_url",
    "api_key_env": "api_key_env",
    "price_in": "price_in_per_m",
    "price_out": "price_out_per_m",
    "concurrency": "concurrency",
    "temperature": "temperature",
    "max_tokens": "max_tokens",
}


class Command(BaseCommand):
    help = "Write synthetic (query, positive, hard negative) triplets with an LLM and a teacher."

    def add_arguments(self, parser):
        parser.add_argument("dataset", help="dataset name")
        parser.add_argument("--sample-size", type=int, default=100)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--negative-mode", choices=SynthesisNegativeMode.values, default="generate"
        )
        parser.add_argument("--teacher-model", default="", help="default: the configured model")
        parser.add_argument("--top-k", type=int, default=3)
        parser.add_argument("--negative-max-ratio", type=float, default=0.95)
        parser.add_argument("--budget", help="USD: stop cleanly before spending more")
        parser.add_argument("--model", help="generator model (default: stage 1's)")
        parser.add_argument("--base-url", help="OpenAI-compatible endpoint")
        parser.add_argument("--api-key-env", help="NAME of the variable holding the key")
        parser.add_argument("--price-in", help="USD per 1M input tokens")
        parser.add_argument("--price-out", help="USD per 1M output tokens")
        parser.add_argument("--concurrency", type=int)
        parser.add_argument("--temperature", type=float)
        parser.add_argument("--max-tokens", type=int)
        parser.add_argument("--no-json-mode", action="store_true", help="ask for tagged answers")
        parser.add_argument(
            "--async",
            dest="run_async",
            action="store_true",
            help="queue a synthesis run for the workers instead of running now",
        )

    def handle(self, *args, **options):
        try:
            dataset = dataset_get_by_name(name=options["dataset"])
        except Dataset.DoesNotExist:
            raise CommandError(f'no dataset named "{options["dataset"]}"') from None
        generator = {
            field: options[option]
            for option, field in GENERATOR_OPTIONS.items()
            if options[option] is not None
        }
        if options["no_json_mode"]:
            generator["json_mode"] = False
        try:
            run = synthesis_run_create(
                dataset=dataset,
                sample_size=options["sample_size"],
                seed=options["seed"],
                generator=generator,
                negative_mode=options["negative_mode"],
                teacher_model=options["teacher_model"],
                top_k=options["top_k"],
                negative_max_ratio=options["negative_max_ratio"],
                budget_usd=options["budget"],
                enqueue=options["run_async"],
            )
        except ApplicationError as error:
            raise CommandError(error.message) from None
        if options["run_async"]:
            self.stdout.write(f"queued synthesis run #{run.pk} for dataset {dataset.name}")
            return
        started = time.monotonic()
        run = command_job_run(self, job=run, execute=synthesis_run_execute)
        run = SynthesisRun.objects.select_related("dataset").get(pk=run.pk)
        s = run.stats
        self.stdout.write(
            self.style.SUCCESS(
                f"synthesis run #{run.pk} on {dataset.name}: {s['triplets_kept']:,} triplets kept "
                f"of {s['passages_sampled']:,} sampled passages in "
                f"{time.monotonic() - started:.1f} s"
            )
        )
        self.stdout.write(
            f"dropped: {s['dropped_positive_not_in_top_k']:,} positive not in top "
            f"{run.top_k}, {s['dropped_negative_too_close']:,} negative too close, "
            f"{s['dropped_no_negative_found']:,} no negative found, "
            f"{s['unusable_answers']:,} unusable answers ({s['recovered_on_retry']:,} recovered "
            f"on retry), {s['failed_calls']:,} failed calls"
        )
        if s.get("budget_reached"):
            self.stdout.write(
                f"budget ${run.budget_usd} reached: {s['passages_not_reached']:,} passages "
                "not reached"
            )
        self.stdout.write(
            f"calls: {s['paid_calls']:,} paid, {s['cached_calls']:,} from the ledger; "
            f"{s['input_tokens']:,} in / {s['output_tokens']:,} out tokens, ${s['cost_usd']}"
        )
