"""Two imports racing to create the same new dataset (a double click, two curators), with
real concurrency on PostgreSQL: two threads, two connections, two transactions."""

import json
import threading
import time

import pytest
from django.db import connection, connections, transaction

from curation.datasets.imports import dataset_import
from curation.models import Candidate, Corpus, Dataset, Passage, Query

RECORDS = [
    {"query": "q1", "pos": ["p1"], "neg": ["n1", "n2"]},
    {"query": "q2", "pos": ["p2"], "neg": ["n1"]},
]


def waiting_on_locks() -> int:
    """How many other sessions of this database wait for a lock."""
    with connection.cursor() as cursor:
        # Inside a transaction the statistics views are a snapshot taken once: retake it.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_two_imports_creating_one_new_dataset_both_succeed(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the race needs two concurrent writers (PostgreSQL)")
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in RECORDS))
    outcomes: dict[str, object] = {}

    def run(name: str) -> None:
        try:
            outcomes[name] = dataset_import(source=path, dataset_name="racing")
        except Exception as error:  # the outcome the test looks at
            outcomes[name] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(name,)) for name in ("first", "second")]
    # The test's own transaction holds the passage table, so each import stops inside its
    # transaction once it has looked for the dataset: the first at the passage table (its
    # new dataset not yet committed), the second at the first's uncommitted corpus row.
    # Released together, they race exactly as two uploads do.
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("LOCK TABLE curation_passage IN ACCESS EXCLUSIVE MODE")
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120  # a bound on waiting, not a measurement
        while waiting_on_locks() < 2:
            assert all(thread.is_alive() for thread in threads), outcomes
            assert time.monotonic() < deadline, "the imports never reached the dataset"
            time.sleep(0.05)
    for thread in threads:
        thread.join()

    errors = {name: repr(value) for name, value in outcomes.items() if isinstance(value, Exception)}
    assert errors == {}
    dataset = Dataset.objects.get(name="racing")
    assert {outcome.dataset.pk for outcome in outcomes.values()} == {dataset.pk}
    added = sorted(outcome.stats["queries_added"] for outcome in outcomes.values())
    assert added == [0, 2]  # the second adds nothing
    assert sorted(o.stats["passages_added"] for o in outcomes.values()) == [0, 4]
    assert (dataset.query_count, dataset.positive_count, dataset.negative_count) == (2, 2, 3)
    assert Corpus.objects.count() == 1 and Passage.objects.count() == 4
    assert Query.objects.count() == 2 and Candidate.objects.count() == 5
