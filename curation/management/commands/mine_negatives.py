"""manage.py mine_negatives DATASET [--model M] [--query-prefix Q] [--passage-prefix P]
[--no-prefixes] [--batch-size B] [--max-seq-length L] [--approximate] [--range-min A]
[--range-max Z] [-n N] [--absolute-margin X] [--relative-margin R] [--max-score S]
[--min-score S] [--sampling top|random] [--seed S] [--teacher-flag-ratio F | --no-teacher]
[--async]

Mines hard negatives for a dataset's queries from its corpus, with a progress line, and prints
what it added; ``--async`` records a mining run for the workers instead.
"""

import time

from django.core.management.base import BaseCommand, CommandError

from core.commands import command_job_run
from core.errors import ApplicationError
from curation.datasets.selectors import dataset_get_by_name
from curation.mining.services import mining_run_create, mining_run_execute
from curation.models import Dataset, MiningRun, MiningSampling


class Command(BaseCommand):
    help = "Mine hard negatives for a dataset with an embedding model."

    def add_arguments(self, parser):
        parser.add_argument("dataset", help="dataset name")
        parser.add_argument(
            "--model",
            default="",
            help="Hugging Face id or local folder (default: the configured model, "
            "all-MiniLM-L6-v2 offline)",
        )
        parser.add_argument("--query-prefix", help="default: the model family's (E5: 'query: ')")
        parser.add_argument("--passage-prefix", help="default: the model family's")
        parser.add_argument("--no-prefixes", action="store_true", help="encode without prefixes")
        parser.add_argument("--batch-size", type=int, default=64)
        parser.add_argument("--max-seq-length", type=int, help="default: the model's own")
        parser.add_argument("--approximate", action="store_true", help="IVF index, not exact")
        parser.add_argument("--range-min", type=int, default=0)
        parser.add_argument("--range-max", type=int, default=100)
        parser.add_argument("-n", "--num-negatives", type=int, default=15)
        parser.add_argument("--absolute-margin", type=float)
        parser.add_argument("--relative-margin", type=float, help="0.05 = the 95%% rule")
        parser.add_argument("--max-score", type=float)
        parser.add_argument("--min-score", type=float)
        parser.add_argument("--sampling", choices=MiningSampling.values, default="top")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--teacher-flag-ratio", type=float, default=0.95)
        parser.add_argument("--no-teacher", action="store_true", help="write no teacher judgments")
        parser.add_argument(
            "--async",
            dest="run_async",
            action="store_true",
            help="queue a mining run for the workers instead of mining now",
        )

    def handle(self, *args, **options):
        try:
            dataset = dataset_get_by_name(name=options["dataset"])
        except Dataset.DoesNotExist:
            raise CommandError(f'no dataset named "{options["dataset"]}"') from None
        query_prefix, passage_prefix = options["query_prefix"], options["passage_prefix"]
        if options["no_prefixes"]:
            query_prefix = passage_prefix = ""
        try:
            run = mining_run_create(
                dataset=dataset,
                model_name=options["model"],
                query_prefix=query_prefix,
                passage_prefix=passage_prefix,
                batch_size=options["batch_size"],
                max_seq_length=options["max_seq_length"],
                approximate=options["approximate"],
                range_min=options["range_min"],
                range_max=options["range_max"],
                num_negatives=options["num_negatives"],
                absolute_margin=options["absolute_margin"],
                relative_margin=options["relative_margin"],
                max_score=options["max_score"],
                min_score=options["min_score"],
                sampling=options["sampling"],
                seed=options["seed"],
                teacher_flag_ratio=None if options["no_teacher"] else options["teacher_flag_ratio"],
                enqueue=options["run_async"],
            )
        except ApplicationError as error:
            raise CommandError(error.message) from None
        if options["run_async"]:
            self.stdout.write(f"queued mining run #{run.pk} for dataset {dataset.name}")
            return
        started = time.monotonic()
        run = command_job_run(self, job=run, execute=mining_run_execute)
        run = MiningRun.objects.select_related("dataset").get(pk=run.pk)
        stats = run.stats
        self.stdout.write(
            self.style.SUCCESS(
                f"mining run #{run.pk} on {dataset.name}: {stats['negatives_added']:,} negatives "
                f"added to {stats['queries_with_new_negatives']:,} of {stats['queries']:,} "
                f"queries ({stats['negatives_already_present']:,} already present) in "
                f"{time.monotonic() - started:.1f} s"
            )
        )
        encoded = stats["passages_encoded"]
        self.stdout.write(
            f"corpus: {stats['corpus_passages']:,} passages, "
            + (f"{encoded:,} encoded now" if encoded else "all from the embedding cache")
            + f" ({stats['model']}, {stats['precision']})"
        )
        if stats["teacher_rater"]:
            self.stdout.write(
                f"teacher {stats['teacher_rater']}: {stats['teacher_judgments']:,} judgments, "
                f"{stats['teacher_flagged_relevant']:,} flagged relevant"
            )
        self.stdout.write(f"dataset totals: {run.dataset.negative_count:,} negatives")
