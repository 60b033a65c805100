"""The demo dataset that `make run` loads, through the real importer."""

import json
import os

import pytest
from django.core.management import call_command

from curation.demo import DEMO_FALSE_NEGATIVES, demo_file_write, demo_records
from curation.models import Candidate, CandidateRole, Dataset, Passage


def test_every_demo_query_has_one_positive_and_five_to_eight_on_topic_negatives():
    records = demo_records()
    assert len(records) >= 30
    assert len({r["query"] for r in records}) == len(records)
    for record in records:
        assert len(record["pos"]) == 1
        assert 5 <= len(record["neg"]) <= 8
        assert record["pos"][0] not in record["neg"]


def test_about_a_third_of_the_queries_hide_exactly_one_false_negative():
    records = {r["query"]: r for r in demo_records()}
    with_false_negative = [q for q in records if any(q == fq for fq, _ in DEMO_FALSE_NEGATIVES)]
    assert len(records) / 4 <= len(with_false_negative) <= len(records) / 2
    for query, passage in DEMO_FALSE_NEGATIVES:
        assert passage in records[query]["neg"]
        # A false negative belongs to its own query only: elsewhere it would not be false.
        assert all(passage not in r["neg"] for q, r in records.items() if q != query)
    assert sum(1 for q, _ in DEMO_FALSE_NEGATIVES) == len(with_false_negative)


def test_the_demo_file_is_bge_jsonl_and_is_only_rewritten_when_its_content_changes(tmp_path):
    path = demo_file_write(path=tmp_path / "demo" / "demo.bge.jsonl")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == demo_records()
    os.utime(path, (0, 0))

    demo_file_write(path=path)
    assert path.stat().st_mtime == 0

    path.write_text("stale\n")
    demo_file_write(path=path)
    assert path.read_text(encoding="utf-8").splitlines() == lines


@pytest.mark.django_db
def test_load_demo_imports_the_queries_once(capsys):
    call_command("load_demo")
    dataset = Dataset.objects.get(name="demo")
    records = demo_records()
    assert dataset.queries.count() == len(records) >= 30
    pairs = Candidate.objects.filter(query__dataset=dataset)
    assert pairs.filter(role=CandidateRole.POSITIVE).count() == len(records)
    assert pairs.filter(role=CandidateRole.NEGATIVE).count() == sum(len(r["neg"]) for r in records)
    # Negatives are shared within a topic: each passage text is stored once.
    distinct_texts = {t for r in records for t in r["pos"] + r["neg"]}
    assert Passage.objects.filter(corpus=dataset.corpus).count() == len(distinct_texts)
    for query, passage in DEMO_FALSE_NEGATIVES:
        assert pairs.get(query__text=query, passage__text=passage).role == CandidateRole.NEGATIVE
    first = capsys.readouterr().out
    assert "loaded" in first

    call_command("load_demo")

    assert "already loaded" in capsys.readouterr().out
    assert Dataset.objects.filter(name="demo").count() == 1
    assert Candidate.objects.filter(query__dataset__name="demo").count() == pairs.count()
