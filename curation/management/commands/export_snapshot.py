"""manage.py export_snapshot DATASET --policy P --format F [-k 7] [--out FILE]

Freezes a dataset into an immutable snapshot (runs in this process, no worker needed) and
prints its id, sha256, where the file is, and the manifest counts.
"""

import shutil
import sys

from django.core.management.base import BaseCommand, CommandError

from core.errors import ApplicationError
from curation.datasets.selectors import dataset_get_by_name
from curation.datasets.snapshots import snapshot_create, snapshot_file_path
from curation.models import Dataset, ExportFormat, SnapshotPolicy


class Command(BaseCommand):
    help = "Freeze a dataset under a false-negative policy into a snapshot file."

    def add_arguments(self, parser):
        parser.add_argument("dataset", help="dataset name")
        parser.add_argument("--policy", required=True, choices=SnapshotPolicy.values)
        parser.add_argument("--format", required=True, choices=ExportFormat.values)
        parser.add_argument(
            "-k",
            "--max-false-negatives",
            type=int,
            default=7,
            help="drop a query with more false negatives than this as ambiguous (default 7)",
        )
        parser.add_argument(
            "--held-out",
            type=float,
            default=0.0,
            help="share of the queries (0 to 0.5) left out of the training file and offered "
            "as the evaluation task heldout:<snapshot id>",
        )
        parser.add_argument("--held-out-seed", type=int, default=0, help="which ones (default 0)")
        parser.add_argument("--out", help="also copy the snapshot file here")

    def handle(self, *args, **options):
        try:
            dataset = dataset_get_by_name(name=options["dataset"])
        except Dataset.DoesNotExist:
            raise CommandError(f"no dataset named {options['dataset']!r}") from None

        def progress(fraction: float, message: str = "", **_) -> None:
            if options["verbosity"] >= 2:
                self.stderr.write(f"\r{fraction:6.1%}  {message}", ending="")

        try:
            snapshot = snapshot_create(
                dataset=dataset,
                policy=options["policy"],
                format=options["format"],
                max_false_negatives=options["max_false_negatives"],
                progress=progress,
                held_out=options["held_out"],
                held_out_seed=options["held_out_seed"],
            )
        except ApplicationError as error:
            raise CommandError(error.message) from None
        if options["verbosity"] >= 2:
            self.stderr.write("")

        path = snapshot_file_path(snapshot=snapshot)
        if options["out"]:
            out = options["out"]
            if out == "-":
                with path.open("rb") as source:
                    shutil.copyfileobj(source, sys.stdout.buffer)
                return
            shutil.copyfile(path, out)
            path = out
        counts = snapshot.manifest.get("counts", {})
        self.stdout.write(f"snapshot #{snapshot.pk}  sha256 {snapshot.sha256}")
        self.stdout.write(f"file {path} ({snapshot.size_bytes:,} bytes)")
        self.stdout.write("  ".join(f"{key} {value:,}" for key, value in counts.items()))
        held = snapshot.manifest.get("held_out")
        if held:
            self.stdout.write(
                f"held out {held['queries']:,} queries: evaluation task heldout:{snapshot.pk}"
            )
