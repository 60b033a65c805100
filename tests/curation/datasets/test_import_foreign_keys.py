"""The PostgreSQL import checks foreign keys set-based (row triggers off for the merge,
referenced rows locked FOR KEY SHARE) when the database role may; imports.md explains why.
These tests hold it to what the per-row triggers guaranteed."""

import json
import threading

import pytest
from django.db import OperationalError, connection, connections, transaction

from curation.datasets import import_staging, imports
from curation.datasets.imports import dataset_import
from curation.models import Candidate, Passage

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _postgres_only(db):
    if connection.vendor != "postgresql":
        pytest.skip("session_replication_role and FOR KEY SHARE are PostgreSQL's")


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


RECORDS = [
    {
        "query": f"query {i}",
        "pos": [f"positive {i}"],
        "neg": [f"negative {j}" for j in range(i, i + 5)],
    }
    for i in range(20)
]


def _rows(dataset):
    return sorted(
        Candidate.objects.filter(query__dataset=dataset).values_list(
            "query__text", "passage__text", "role", "rank"
        )
    )


def test_set_based_and_per_row_checks_store_the_same_rows(tmp_path, settings):
    path = write_jsonl(tmp_path / "train.jsonl", RECORDS)
    fast = dataset_import(source=path, dataset_name="fast", corpus_name="c1")
    settings.SIEVE_IMPORT_SET_BASED_FK = False
    slow = dataset_import(source=path, dataset_name="slow", corpus_name="c2")
    assert fast.stats["foreign_key_checks"] == "set-based"
    assert slow.stats["foreign_key_checks"] == "per-row"
    assert _rows(fast.dataset) == _rows(slow.dataset) and len(_rows(fast.dataset)) == 120
    with connection.cursor() as cursor:
        cursor.execute("SHOW session_replication_role")
        assert cursor.fetchone()[0] == "origin"  # nothing leaks past the import


def test_a_role_without_the_privilege_gets_the_per_row_checks():
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("CREATE ROLE sieve_test_plain NOLOGIN")
        cursor.execute("SET LOCAL ROLE sieve_test_plain")
        assert import_staging.row_triggers_off(cursor) is False
        cursor.execute("SHOW session_replication_role")
        assert cursor.fetchone()[0] == "origin"
        cursor.execute("RESET ROLE")
        transaction.set_rollback(True)


@pytest.mark.django_db(transaction=True)
def test_a_stored_passage_the_import_references_cannot_be_deleted_before_it_commits(
    tmp_path, monkeypatch
):
    """What the skipped trigger would have done: the existing passage a new candidate points
    at is locked FOR KEY SHARE until the import commits, so a concurrent DELETE waits."""
    shared = "a passage already in the corpus"
    first = write_jsonl(tmp_path / "a.jsonl", [{"query": "q1", "pos": [shared], "neg": []}])
    dataset_import(source=first, dataset_name="a", corpus_name="web")
    passage = Passage.objects.get(text=shared)
    # A second corpus user with a raw delete (no Django PROTECT check in Python).
    Candidate.objects.filter(passage=passage).delete()

    merged, release, outcome = threading.Event(), threading.Event(), {}
    real_refresh = imports._counts_refresh

    def pause_after_merge(**kwargs):
        real_refresh(**kwargs)
        merged.set()
        release.wait(20)

    monkeypatch.setattr(imports, "_counts_refresh", pause_after_merge)
    second = write_jsonl(tmp_path / "b.jsonl", [{"query": "q2", "pos": ["new"], "neg": [shared]}])

    def importer():
        try:
            outcome["stats"] = dataset_import(
                source=second, dataset_name="b", corpus_name="web"
            ).stats
        finally:
            connections.close_all()

    thread = threading.Thread(target=importer)
    thread.start()
    assert merged.wait(60)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '500ms'")
            with pytest.raises(OperationalError, match="lock timeout"):
                cursor.execute("DELETE FROM curation_passage WHERE id = %s", [passage.pk])
    finally:
        release.set()
        thread.join(60)
    assert outcome["stats"]["foreign_key_checks"] == "set-based"
    assert Candidate.objects.filter(passage=passage, query__dataset__name="b").count() == 1
