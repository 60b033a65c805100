"""Campaign creation: strata computed from the judgments, seeded samples, shuffled order."""

import json

import pytest

from core.errors import ApplicationError
from curation.cascade.verdict import verdict_parse
from curation.datasets.imports import dataset_import
from curation.models import CandidateOrigin, CandidateRole, CascadeRun, Verdict
from review.models import ReviewItem, Stratum
from review.services.campaigns import review_campaign_create
from tests.review.conftest import judge

ALL = {"stage2_flagged": 100, "stage1_only": 100, "unflagged": 100, "synthetic": 100}


def _items(campaign):
    return list(
        ReviewItem.objects.filter(campaign=campaign)
        .select_related("candidate")
        .order_by("position")
    )


def test_strata_hold_what_the_judges_said(make_campaign, make_annotator):
    campaign = make_campaign([make_annotator("a1")], strata=ALL)
    items = _items(campaign)
    by_stratum = {s: [i.candidate for i in items if i.stratum == s] for s in Stratum.values}
    # Each query's negative 1 was flagged by both stages, negative 2 by stage 1 only.
    assert sorted(c.rank for c in by_stratum["stage2_flagged"]) == [1] * 6
    assert sorted(c.rank for c in by_stratum["stage1_only"]) == [2] * 6
    assert sorted(c.rank for c in by_stratum["unflagged"]) == [3] * 6 + [4] * 6
    # One item per synthetic triplet: its positive.
    assert [(c.role, c.origin) for c in by_stratum["synthetic"]] == [
        (CandidateRole.POSITIVE, CandidateOrigin.GENERATED)
    ] * 2
    assert campaign.item_count == len(items) == 26
    assert sorted(i.position for i in items) == list(range(26))
    assert len({i.candidate_id for i in items}) == 26  # strata are disjoint


def test_same_seed_same_sample_other_seed_other_sample(make_campaign, make_annotator):
    a = make_annotator("a1")
    strata = {"unflagged": 5, "stage2_flagged": 3}
    first = make_campaign([a], strata=strata, seed=11, name="one")
    again = make_campaign([a], strata=strata, seed=11, name="two")
    other = make_campaign([a], strata=strata, seed=12, name="three")
    key = lambda c: [(i.candidate_id, i.stratum) for i in _items(c)]  # noqa: E731
    assert key(first) == key(again)
    assert len(key(first)) == 8
    assert sorted(key(first)) != sorted(key(other))  # 5 of 12 and 3 of 6: another draw


def test_cascade_run_limits_the_stage_strata_to_its_judgments(
    review_dataset, make_annotator, curator
):
    run = CascadeRun.objects.create(dataset=review_dataset)
    # Only this run's judgments count: one negative of q0 flagged by its stage 2.
    negative = review_dataset.queries.get(query_id="q0").candidates.get(rank=4)
    judge(negative, "llm:gpt-4o:stage2", Verdict.RELEVANT, source_run=f"cascade:{run.pk}")
    judge(negative, "llm:gpt-4o-mini:stage1", Verdict.RELEVANT, source_run=f"cascade:{run.pk}")
    other = review_dataset.queries.get(query_id="q1").candidates.get(rank=3)
    judge(other, "llm:gpt-4o-mini:stage1", Verdict.NOT_RELEVANT, source_run=f"cascade:{run.pk}")
    campaign = review_campaign_create(
        name="run",
        dataset=review_dataset,
        strata=ALL,
        annotators=[make_annotator("a1")],
        created_by=curator,
    )
    assert campaign.cascade_run == run  # the latest run of the dataset by default
    items = {i.stratum: i.candidate_id for i in _items(campaign)}
    assert items["stage2_flagged"] == negative.pk
    # Unflagged under a run: only negatives that run judged.
    assert items["unflagged"] == other.pk
    assert "stage1_only" not in items
    assert ReviewItem.objects.filter(campaign=campaign, stratum="synthetic").count() == 2


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"strata": {"nonsense": 3}}, "strata"),
        ({"strata": {"unflagged": -1}}, "strata"),
        ({"overlap": 3}, "overlap"),  # two annotators cannot give three answers
        ({"annotators": []}, "annotators"),
        ({"strata": {"stage2_flagged": 0}}, "strata"),
    ],
)
def test_campaigns_that_could_never_finish_are_refused(
    review_dataset, make_annotator, kwargs, field
):
    args = {
        "name": "bad",
        "dataset": review_dataset,
        "strata": {"unflagged": 3},
        "annotators": [make_annotator("a1"), make_annotator("a2")],
        **kwargs,
    }
    with pytest.raises(ApplicationError) as error:
        review_campaign_create(**args)
    assert error.value.detail["field"] == field


def test_rlhn_stage2_stratum_is_what_gpt4o_confirmed(shared_data, db, make_annotator):
    """On RLHN's published run: import stage 1's data, record both stages' real verdicts as
    judgments, and the stage-2 stratum is exactly the negatives GPT-4o put in <better>."""
    rlhn = shared_data / "rlhn"
    dataset = dataset_import(
        source=rlhn / "msmarco_passage.stage_1.gpt-4o-mini.jsonl", dataset_name="rlhn"
    ).dataset
    expected = {"stage2_flagged": set(), "stage1_only": set()}
    stage1_flagged = set()
    for stage, name, model in (
        (1, "msmarco_passage.stage_1.gpt-4o-mini.jsonl", "gpt-4o-mini"),
        (2, "msmarco_passage.stage_2.gpt-4o.jsonl", "gpt-4o"),
    ):
        for line in (rlhn / name).read_text().splitlines():
            record = json.loads(line)
            verdict = verdict_parse(
                record["response"], n_negatives=len(record["negative_passages"])
            )
            query = dataset.queries.get(query_id=record["query_id"])
            flagged = set(verdict.better) if stage == 2 else set(verdict.flagged())
            for index, doc_id in enumerate(record["negative_passage_ids"], start=1):
                candidate = query.candidates.get(passage__doc_id=doc_id)
                relevant = index in flagged
                judge(
                    candidate,
                    f"llm:{model}:stage{stage}",
                    Verdict.RELEVANT if relevant else Verdict.NOT_RELEVANT,
                )
                if relevant and stage == 2:
                    expected["stage2_flagged"].add(candidate.pk)
                if relevant and stage == 1:
                    stage1_flagged.add(candidate.pk)
    expected["stage1_only"] = stage1_flagged - expected["stage2_flagged"]
    assert expected["stage2_flagged"] and expected["stage1_only"]
    campaign = review_campaign_create(
        name="rlhn",
        dataset=dataset,
        strata={"stage2_flagged": 10_000, "stage1_only": 10_000, "unflagged": 20},
        annotators=[make_annotator("a1")],
    )
    got = {s: set() for s in Stratum.values}
    for item in ReviewItem.objects.filter(campaign=campaign):
        got[item.stratum].add(item.candidate_id)
    assert got["stage2_flagged"] == expected["stage2_flagged"]
    assert got["stage1_only"] == expected["stage1_only"]
    assert len(got["unflagged"]) == 20
    assert not got["unflagged"] & stage1_flagged


@pytest.mark.django_db(transaction=True)
def test_a_new_campaign_is_analysed_once_committed_so_the_planner_knows_its_items(
    review_dataset, make_annotator
):
    """Autovacuum would wait for 10 % of the table to change; until then PostgreSQL plans the
    next-item pick as if the campaign had one item (issue 13)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("planner statistics are PostgreSQL's")  # by design, on the SQLite lane

    def last_analyze():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'review_reviewitem'"
            )
            return cursor.fetchone()[0]

    before = last_analyze()
    review_campaign_create(
        name="analysed",
        dataset=review_dataset,
        strata={"unflagged": 5},
        annotators=[make_annotator("ann")],
    )
    after = last_analyze()
    assert after is not None and (before is None or after > before)
