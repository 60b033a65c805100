"""The LLM reveal (issue 10, item 5): this candidate's verdict per stage of the campaign's
cascade run, its place in the judge's prompt and its own rationale line, the model; the
judge's whole paragraph and the verdicts of older runs folded."""

import re

from django.db import connection
from django.test.utils import CaptureQueriesContext

from curation.models import CascadeItem, CascadeRun, Verdict
from review.models import ReviewItem
from review.reveal import machine_reveals, rationale_split

from .conftest import judge
from .test_review_page import page_url, submit

PARAGRAPH = (
    "Doc (2) gives the dose in mg per kg, exactly what the query asks. "
    "Doc (3) is about adults only; it does not answer. "
    "Both Doc (2) and Doc (3) mention aspirin."
)
# What the paragraph says about Doc (3): the sentences that name it.
OWN_3 = (
    "Doc (3) is about adults only; it does not answer. Both Doc (2) and Doc (3) mention aspirin."
)


def test_the_own_line_is_the_sentences_naming_this_document():
    own, rest = rationale_split(PARAGRAPH, 3)
    assert own == OWN_3
    assert rest == PARAGRAPH
    assert rationale_split(PARAGRAPH, 7) == (PARAGRAPH, "")  # never named: the whole of it
    assert rationale_split(PARAGRAPH, None) == (PARAGRAPH, "")
    assert rationale_split("Doc 4: relevant.", 4) == ("Doc 4: relevant.", "")
    assert rationale_split("", 1) == ("", "")
    own, _ = rationale_split("Doc (1) " + "x" * 900, 1)
    assert len(own) == 600 and own.endswith("…")


def make_run(dataset, query, numbered, verdicts):
    """A cascade run that numbered ``numbered`` (candidates) Doc (1..n) at each stage, and
    judged them: ``verdicts`` = {(candidate, stage): (verdict, rationale)}."""
    run = CascadeRun.objects.create(dataset=dataset)
    for stage in (1, 2):
        CascadeItem.objects.create(
            run=run, stage=stage, query=query, candidate_ids=[c.pk for c in numbered]
        )
    for (candidate, stage), (verdict, rationale) in verdicts.items():
        model = "gpt-4o-mini" if stage == 1 else "gpt-4o"
        row = judge(
            candidate,
            f"llm:{model}:stage{stage}",
            verdict,
            rationale,
            source_run=f"cascade:{run.pk}",
        )
        row.model_name = model
        row.save(update_fields=["model_name"])
    return run


def test_the_reveal_shows_this_runs_stages_and_folds_the_rest(
    client, make_annotator, make_campaign, review_dataset
):
    query = review_dataset.queries.get(query_id="q0")
    negatives = list(query.candidates.filter(role="negative").order_by("rank"))
    target = negatives[2]  # Doc (3) of the call
    old = make_run(
        review_dataset, query, negatives,
        {(target, 1): (Verdict.NOT_RELEVANT, "an older run <b>said no</b>")},
    )  # fmt: skip
    run = make_run(
        review_dataset, query, negatives,
        {
            (target, 1): (Verdict.RELEVANT, PARAGRAPH + " <script>x</script>"),
            (target, 2): (Verdict.RELEVANT, "Doc (3) answers it as well as the positive."),
        },
    )  # fmt: skip
    ann = make_annotator("ann1")
    campaign = make_campaign([ann], strata={"stage2_flagged": 5}, blind=True)
    assert campaign.cascade_run_id == run.pk  # the dataset's latest run
    assert list(
        ReviewItem.objects.filter(campaign=campaign).values_list("candidate", flat=True)
    ) == [target.pk]
    client.force_login(ann)
    html = client.get(page_url(campaign)).content.decode()
    assert "Doc (3)" not in html  # blind until answered
    after = submit(client, campaign, html, "relevant").content.decode()
    reveal = after[after.index('class="last-answer"') :]
    assert f"Cascade run #{run.pk} (this campaign's)" in reveal
    stages = re.findall(r'data-stage="(\d)"', reveal)
    assert stages == ["1", "2"]
    assert reveal.count("this candidate was Doc (3) of 4 in the judge's prompt") == 2
    assert "data-model>gpt-4o-mini<" in reveal and "data-model>gpt-4o<" in reveal
    own = re.findall(r"data-own-rationale>([^<]*)<", reveal)
    assert own[0] == OWN_3
    assert own[1] == "Doc (3) answers it as well as the positive."
    # The whole paragraph (about Doc (2) too) and the older runs' verdicts: folded.
    folded = reveal[reveal.index('class="rationale-more"') :]
    assert "Doc (2) gives the dose" in folded
    assert "Doc (2) gives the dose" not in reveal[: reveal.index('class="rationale-more"')]
    others = reveal[reveal.index("data-other-verdicts") :]
    assert f"cascade run #{old.pk}" in others  # the run, in words
    assert "an older run &lt;b&gt;said no&lt;/b&gt;" in others
    assert "imported" in others  # the fixture's verdicts, written by no run
    assert "<script>x</script>" not in after and "<b>said no</b>" not in after


def test_without_a_run_the_latest_verdict_per_judge_is_shown(review_dataset):
    negative = review_dataset.queries.get(query_id="q0").candidates.get(rank=1)
    judge(negative, "llm:gpt-4o:stage2", Verdict.NOT_RELEVANT, "changed its mind")
    reveal = machine_reveals(candidate_ids=[negative.pk], cascade_run_id=None)[negative.pk]
    assert [(m.stage, m.verdict) for m in reveal.stages] == [(1, "relevant"), (2, "not_relevant")]
    assert reveal.stages[1].own == "changed its mind" and reveal.stages[1].doc_index is None
    assert reveal.others == []  # the same judge's earlier verdict (same run) is superseded


def test_reveals_of_many_candidates_are_one_statement(review_dataset):
    ids = list(review_dataset.queries.values_list("candidates__id", flat=True))
    with CaptureQueriesContext(connection) as captured:
        reveals = machine_reveals(candidate_ids=ids, cascade_run_id=None)
    assert len(captured.captured_queries) == 1
    assert len(reveals) == len(ids)
