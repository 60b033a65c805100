"""The published RLHN recipe, end to end, on its own outputs: the MS MARCO sample's recorded
GPT-4o-mini and GPT-4o answers are replayed through the cascade (the real ``openai`` client
against the local OpenAI-compatible server), the final verdicts are approved with a written
reason (no humans took part), and the ``relabel`` and ``remove_hn`` snapshots move or remove
exactly the passages the published stage-2 outputs tag as false negatives ("better").

The expectation is read from the files here, with a parser of its own, never from Sieve's
tables or Sieve's verdict parser."""

import json
import re

import pytest

from core.models import JobStatus
from curation.cascade.approvals import approval_execute
from curation.cascade.create import cascade_run_create
from curation.cascade.execute import cascade_run_execute
from curation.datasets.imports import dataset_import
from curation.datasets.snapshots import snapshot_create, snapshot_file_path
from review.approvals.services import approval_submit
from tests.curation.cascade.cascade_support import query_of, stage
from tests.support.openai_server import FakeOpenAIServer, Reply

pytestmark = pytest.mark.django_db

STAGE1 = "msmarco_passage.stage_1.gpt-4o-mini.jsonl"
STAGE2 = "msmarco_passage.stage_2.gpt-4o.jsonl"
# k above any query's count of false negatives: every tagged passage is moved or removed.
K = 25


def _records(folder, name) -> list[dict]:
    with open(folder / name, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _published_false_negatives(stage2: list[dict]) -> dict[str, set[str]]:
    """query_id → doc ids in the ``<better>`` list of the verdict of each stage-2 answer."""
    expected: dict[str, set[str]] = {}
    for record in stage2:
        verdict = record["response"].split("<verdict>")[-1]
        better = verdict.split("<better>")[-1].split("</better>")[0]
        numbers = {int(n) for n in re.findall(r"Doc\s*\((\d+)\)", better)}
        doc_ids = {record["negative_passage_ids"][n - 1] for n in numbers}
        if doc_ids:
            expected[record["query_id"]] = doc_ids
    return expected


def _lines(snapshot) -> dict[str, dict]:
    text = snapshot_file_path(snapshot=snapshot).read_text(encoding="utf-8")
    return {row["query_id"]: row for row in map(json.loads, text.splitlines())}


def test_approved_rlhn_verdicts_move_exactly_the_published_false_negatives(shared_data):
    folder = shared_data / "rlhn"
    stage1 = _records(folder, STAGE1)
    stage2 = _records(folder, STAGE2)
    expected = _published_false_negatives(stage2)
    assert expected, "the published stage 2 tags some passages as false negatives"
    by_text = {
        model: {r["query"]: r for r in records}
        for model, records in (("gpt-4o-mini", stage1), ("gpt-4o", stage2))
    }

    def replay(body):
        record = by_text[body["model"]][query_of(body).replace("‹", "<").replace("›", ">")]
        return Reply(content=record["response"], finish_reason=record["finish_reason"])

    dataset = dataset_import(
        source=folder / STAGE1, dataset_name="rlhn-approved", format="tevatron"
    ).dataset
    with FakeOpenAIServer(replay) as server:
        run = cascade_run_create(
            dataset=dataset,
            stages=[stage(1, server, json_mode=False), stage(2, server, json_mode=False)],
            forward_tags=["better", "worse"],
            false_negative_tags=["better"],
            enqueue=False,
        )
        cascade_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, run.error

    approval = approval_submit(
        cascade_run=run,
        reason="replay of the published RLHN outputs; no human study",
        enqueue=False,
    )
    approval_execute(run_id=approval.pk)
    approval.refresh_from_db()
    assert approval.status == JobStatus.SUCCEEDED, approval.error
    assert approval.false_negative_count == sum(map(len, expected.values()))

    original = {r["query_id"]: r for r in stage1}
    relabel = _lines(
        snapshot_create(dataset=dataset, policy="relabel", format="tevatron", max_false_negatives=K)
    )
    remove_hn = _lines(
        snapshot_create(
            dataset=dataset, policy="remove_hn", format="tevatron", max_false_negatives=K
        )
    )
    assert set(relabel) == set(remove_hn) == set(original)
    for query_id, record in original.items():
        moved = expected.get(query_id, set())
        positives = [p["docid"] for p in relabel[query_id]["positive_passages"]]
        assert set(positives) == set(record["positive_passage_ids"]) | moved, query_id
        kept = {p["docid"] for p in relabel[query_id]["negative_passages"]}
        assert kept == set(record["negative_passage_ids"]) - moved, query_id
        removed = set(record["negative_passage_ids"]) - {
            p["docid"] for p in remove_hn[query_id]["negative_passages"]
        }
        assert removed == moved, query_id
        assert [p["docid"] for p in remove_hn[query_id]["positive_passages"]] == record[
            "positive_passage_ids"
        ]
