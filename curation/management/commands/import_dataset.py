"""manage.py import_dataset PATH --name NAME [--format F] [--corpus C] [--split S]
[--min-relevance N] [--async]

Imports a BGE / Tevatron / sentence-transformers file, or a BEIR folder (or .zip), with a
progress line; prints the counts, or the problem (file, line, field) and exits non-zero.
``--async`` records an import job for the Celery workers instead.
"""

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.commands import ProgressLine
from core.errors import ApplicationError
from curation.datasets.imports import dataset_import, import_job_create, import_summary
from curation.models import DatasetFormat


class Command(BaseCommand):
    help = "Import a training-data file or BEIR folder into a dataset (all or nothing)."

    def add_arguments(self, parser):
        parser.add_argument(
            "path",
            help="a .jsonl / .csv / .tsv file (each also .gz), a .parquet file, or a BEIR folder "
            "or .zip",
        )
        parser.add_argument("--name", required=True, help="dataset name (created when missing)")
        parser.add_argument(
            "--format",
            choices=DatasetFormat.values,
            help="default: detected from the path and the first record",
        )
        parser.add_argument("--corpus", help="corpus name (default: the dataset name)")
        parser.add_argument("--split", help="BEIR qrels split (default: the only one, or train)")
        parser.add_argument(
            "--min-relevance",
            type=float,
            help="BEIR: lowest qrels score that counts as positive (default 1)",
        )
        parser.add_argument(
            "--async",
            dest="run_async",
            action="store_true",
            help="queue an import job for the workers instead of importing now",
        )

    def handle(self, *args, **options):
        path = Path(options["path"]).expanduser().resolve()
        import_options = {}
        if options["split"]:
            import_options["split"] = options["split"]
        if options["min_relevance"] is not None:
            value = options["min_relevance"]
            import_options["min_relevance"] = int(value) if value.is_integer() else value
        try:
            if options["run_async"]:
                job = import_job_create(
                    source_path=str(path),
                    source_name=path.name,
                    dataset_name=options["name"],
                    format=options["format"] or "",
                    corpus_name=options["corpus"] or "",
                    options=import_options,
                )
                self.stdout.write(f"queued import job #{job.pk} for dataset {options['name']}")
                return
            started = time.monotonic()
            result = dataset_import(
                source=path,
                dataset_name=options["name"],
                format=options["format"],
                corpus_name=options["corpus"],
                options=import_options,
                progress=ProgressLine(self.stderr),
            )
        except ApplicationError as error:
            raise CommandError(error.message) from None
        stats = result.stats
        self.stdout.write(
            self.style.SUCCESS(
                f"dataset {result.dataset.name} ({stats['format']}, corpus "
                f"{result.dataset.corpus.name}): {import_summary(stats)} "
                f"in {time.monotonic() - started:.1f} s"
            )
        )
        existing = stats["queries_existing"] + stats["passages_existing"]
        if existing:
            self.stdout.write(
                f"already present: {stats['queries_existing']:,} queries, "
                f"{stats['passages_existing']:,} passages"
            )
        if stats.get("positive_and_negative"):
            self.stdout.write(
                f"{stats['positive_and_negative']:,} pairs listed both as positive and negative "
                f"were kept as positives"
            )
        if stats.get("empty_documents"):
            self.stdout.write(
                f"{stats['empty_documents']:,} corpus documents have no title and no text "
                f"(the first at {stats['first_empty_document']}); they were kept"
            )
        self.stdout.write(
            f"dataset totals: {result.dataset.query_count:,} queries, "
            f"{result.dataset.positive_count:,} positives, "
            f"{result.dataset.negative_count:,} negatives"
        )
