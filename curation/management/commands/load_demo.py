from django.core.management.base import BaseCommand

from curation.demo import DEMO_DATASET_NAME, DEMO_FALSE_NEGATIVES, demo_dataset_load


class Command(BaseCommand):
    help = (
        f"Load the built-in demo dataset as '{DEMO_DATASET_NAME}' (36 queries with hard negatives, "
        "some of them deliberate false negatives). Does nothing when it is already loaded."
    )

    def handle(self, *args, **options):
        result = demo_dataset_load()
        dataset = result.dataset
        if not result.created:
            self.stdout.write(f"Demo dataset '{dataset.name}' is already loaded.")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo dataset '{dataset.name}' loaded: {dataset.query_count} queries, "
                f"{dataset.positive_count} positives, {dataset.negative_count} hard negatives "
                f"({len(DEMO_FALSE_NEGATIVES)} of them are deliberate false negatives)."
            )
        )
