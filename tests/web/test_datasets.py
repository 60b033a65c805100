"""Dataset list, dataset detail, query detail: counts, paging, escaping."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from curation.models import CandidateRole, DecisionLabel
from tests.factories import (
    CandidateFactory,
    DatasetFactory,
    DecisionFactory,
    PassageFactory,
    QueryFactory,
)

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"


def test_dataset_list_shows_denormalized_counts(viewer_client, tiny_dataset):
    page = viewer_client.get(reverse("curation:dataset_list"))
    assert page.status_code == 200
    text = page.content.decode()
    assert reverse("curation:dataset_detail", args=[tiny_dataset.pk]) in text
    assert tiny_dataset.corpus.name in text
    row = re.search(r"<tr>.*?tiny</a>.*?</tr>", text, re.S).group(0)
    assert re.findall(r'class="num">(\d+)<', row) == ["2", "2", "4"]


def test_dataset_detail_lists_queries_with_counts_and_freeze_form(curator_client, tiny_dataset):
    page = curator_client.get(reverse("curation:dataset_detail", args=[tiny_dataset.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "what is thing 0?" in text and "what is thing 1?" in text
    query_rows = re.findall(r'<tr>\s*<td><a href="/queries/\d+/">.*?</tr>', text, re.S)
    assert len(query_rows) == 2
    for row in query_rows:
        assert re.findall(r'class="num">(\d+)<', row) == ["1", "2"]
    assert "Freeze snapshot" in text
    assert 'name="max_false_negatives"' in text and 'value="7"' in text


def test_query_page_shows_candidates_rank_score_origin_and_latest_decision(
    viewer_client, tiny_dataset
):
    query = tiny_dataset.queries.get(query_id="q0")
    negative = query.candidates.get(rank=1)
    DecisionFactory(candidate=negative, label=DecisionLabel.NOT_RELEVANT)
    DecisionFactory(candidate=negative, label=DecisionLabel.RELEVANT)  # the latest wins
    page = viewer_client.get(reverse("curation:query_detail", args=[query.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "what is thing 0?" in text
    assert "thing 0 is a thing" in text
    row = re.search(rf'<tr id="candidate-{negative.pk}"[^>]*>.*?</tr>', text, re.S).group(0)
    assert 'class="false-negative"' in row
    assert ">relevant</span>" in row
    assert "0.4000" in row  # teacher score
    assert "original" in row
    assert re.search(r'<td class="num">1</td>', row)
    other = query.candidates.get(rank=2)
    other_row = re.search(rf'<tr id="candidate-{other.pk}"[^>]*>.*?</tr>', text, re.S).group(0)
    assert "false-negative" not in other_row


def test_the_query_page_names_judges_and_verdicts_in_words(viewer_client, tiny_dataset):
    """The tour of every page found ``llm:gpt-4o-mini:stage1 not_relevant``: the judge's and
    the verdict's stored names. The page says who and what in words; the stored name stays
    on hover."""
    from curation.models import Judgment

    query = tiny_dataset.queries.get(query_id="q0")
    negative = query.candidates.get(rank=1)
    for rater in ("llm:gpt-4o-mini:stage1", "teacher:all-minilm-l6-v2:margin"):
        Judgment.objects.create(
            candidate=negative, rater=rater, rater_kind="machine", verdict="not_relevant"
        )
    DecisionFactory(candidate=negative, label=DecisionLabel.NOT_RELEVANT)
    html = viewer_client.get(reverse("curation:query_detail", args=[query.pk])).content.decode()
    start = html.index(f'id="candidate-{negative.pk}"')
    row = html[start : html.index("</tr>", start)]
    shown = re.sub(r"<[^>]+>", " ", row)  # the text, without attributes such as title
    assert "gpt-4o-mini · stage 1" in shown and "teacher margin · all-minilm-l6-v2" in shown
    assert shown.count("not relevant") == 3  # two machine verdicts and the decision
    assert "llm:" not in shown and "teacher:" not in shown and "not_relevant" not in shown
    assert 'title="llm:gpt-4o-mini:stage1"' in row


def test_passage_and_query_html_is_shown_escaped(viewer_client):
    dataset = DatasetFactory(name=f"d{SCRIPT}")
    query = QueryFactory(dataset=dataset, query_id=f"q{IMG}", text=f"why {SCRIPT}")
    CandidateFactory(
        query=query,
        role=CandidateRole.NEGATIVE,
        rank=1,
        passage=PassageFactory(corpus=dataset.corpus, title=IMG, text=f"body {SCRIPT} {IMG}"),
    )
    for url in (
        reverse("curation:query_detail", args=[query.pk]),
        reverse("curation:dataset_detail", args=[dataset.pk]),
        reverse("curation:dataset_list"),
    ):
        text = viewer_client.get(url).content.decode()
        assert SCRIPT not in text, url
        assert IMG not in text, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text, url
    query_page = viewer_client.get(reverse("curation:query_detail", args=[query.pk])).content
    assert b"&lt;img src=x onerror=alert(1)&gt;" in query_page


def test_query_paging_returns_every_query_exactly_once(viewer_client):
    dataset = DatasetFactory(query_count=123)
    expected = {QueryFactory(dataset=dataset, query_id=f"q{i:04d}").query_id for i in range(123)}
    url = reverse("curation:dataset_detail", args=[dataset.pk])
    seen: list[str] = []
    pages = 0
    next_link = url
    while next_link:
        response = viewer_client.get(next_link, headers={"HX-Request": "true"})
        assert response.status_code == 200
        text = response.content.decode()
        assert "<html" not in text  # htmx paging swaps only the table
        seen += re.findall(r'<td class="mono muted" title="(q\d{4})">', text)
        pages += 1
        match = re.search(r'rel="next" href="([^"]+)"', text)
        next_link = url + match.group(1).replace("&amp;", "&") if match else None
    assert pages == 3
    assert len(seen) == len(expected) == 123
    assert set(seen) == expected

    # And back again from the last page.
    back: list[str] = []
    prev_link = next_link = url + f"?after={sorted(expected)[99]}"
    while prev_link:
        text = viewer_client.get(prev_link).content.decode()
        back = re.findall(r'<td class="mono muted" title="(q\d{4})">', text) + back
        match = re.search(r'rel="prev" href="([^"]+)"', text)
        prev_link = url + match.group(1).replace("&amp;", "&") if match else None
    assert back == sorted(expected)


def test_dataset_list_paging_visits_every_dataset_once(viewer_client):
    names = {DatasetFactory(name=f"set-{i:03d}").name for i in range(57)}
    url = reverse("curation:dataset_list")
    seen: list[str] = []
    link = url
    while link:
        text = viewer_client.get(link).content.decode()
        seen += re.findall(r">(set-\d{3})</a>", text)
        match = re.search(r'rel="next" href="([^"]+)"', text)
        link = url + match.group(1).replace("&amp;", "&") if match else None
    assert sorted(seen) == sorted(names)


def test_dataset_page_cost_does_not_grow_with_its_queries(viewer_client, tiny_dataset):
    """Counts come from one grouped query over the page, never one query per row."""
    url = reverse("curation:dataset_detail", args=[tiny_dataset.pk])
    with CaptureQueriesContext(connection) as small:
        viewer_client.get(url)
    for i in range(60):
        query = QueryFactory(dataset=tiny_dataset, query_id=f"z{i:03d}")
        CandidateFactory(query=query, role=CandidateRole.POSITIVE)
    with CaptureQueriesContext(connection) as large:
        page = viewer_client.get(url)
    assert page.content.count(b'<td class="mono muted"') == 50
    assert len(large.captured_queries) == len(small.captured_queries)


@pytest.mark.django_db
def test_the_query_page_ranks_imported_and_mined_negatives_apart_with_their_verdicts(
    viewer_client,
):
    """Issue 10: imported and mined negatives each start at rank 1 and were shown as one list
    with duplicated ranks and no machine verdicts; the decision shown must be the one in
    force (a person's over an approval's; a revoked approval's not at all)."""
    from curation.models import Approval, CandidateOrigin, CascadeRun, Judgment

    query = QueryFactory(text="what do bees make")
    dataset = query.dataset
    CandidateFactory(query=query, role=CandidateRole.POSITIVE, passage__text="Bees make honey.")
    imported = [CandidateFactory(query=query, rank=r, passage__text=f"imp {r}") for r in (1, 2)]
    mined = [
        CandidateFactory(query=query, rank=r, origin=CandidateOrigin.MINED,
                         passage__text=f"mined {r}")
        for r in (1, 2)
    ]  # fmt: skip
    Judgment.objects.create(
        candidate=mined[0], rater="llm:gpt-4o:stage2", rater_kind="machine",
        verdict="relevant", tag="better",
    )  # fmt: skip
    run = CascadeRun.objects.create(dataset=dataset, stages=[], status="succeeded")
    in_force = Approval.objects.create(dataset=dataset, cascade_run=run, status="succeeded",
                                       reason="r")  # fmt: skip
    revoked = Approval.objects.create(dataset=dataset, cascade_run=run, status="succeeded",
                                      reason="r", revoked_at="2026-12-01T00:00:00Z")  # fmt: skip
    DecisionFactory(candidate=mined[0], label=DecisionLabel.RELEVANT, source="approval",
                    approval=in_force)  # fmt: skip
    DecisionFactory(candidate=imported[0], label=DecisionLabel.NOT_RELEVANT)  # a person
    DecisionFactory(candidate=imported[0], label=DecisionLabel.RELEVANT, source="approval",
                    approval=in_force)  # fmt: skip
    DecisionFactory(candidate=imported[1], label=DecisionLabel.RELEVANT, source="approval",
                    approval=revoked)  # fmt: skip

    html = viewer_client.get(reverse("curation:query_detail", args=[query.pk])).content.decode()
    assert "Imported negatives" in html and "Mined negatives" in html
    assert html.index("imp 2") < html.index("Mined negatives") < html.index("mined 1")

    def row(candidate) -> str:
        start = html.index(f'id="candidate-{candidate.pk}"')
        return html[start : html.index("</tr>", start)]

    assert "llm:gpt-4o:stage2" in row(mined[0]) and "(better)" in row(mined[0])
    assert f"approval #{in_force.pk}" in row(mined[0])
    assert "not_relevant" in row(imported[0]) and "approval #" not in row(imported[0])
    assert "decision-relevant" not in row(imported[1])  # the revoked approval is not in force


def test_a_benchmark_split_is_not_offered_mining_and_the_page_says_why(curator_client):
    """The tour found "Mine negatives" on a BEIR test split imported for evaluation. Mining
    would add negatives that its evaluation task never reads and that a snapshot would train
    on (the benchmark's own queries): the button is disabled with the reason. A dataset that
    also took in training data, or one imported from a format without splits, keeps it."""
    from core.models import JobStatus
    from curation.models import ImportJob

    def dataset_imported_from(*splits):
        dataset = DatasetFactory()
        for split in splits:
            stats = {"format": "beir", "split": split} if split else {"format": "bge"}
            ImportJob.objects.create(
                dataset=dataset, dataset_name=dataset.name, source_path="/x",
                status=JobStatus.SUCCEEDED, stats=stats,
            )  # fmt: skip
        return dataset

    for splits, offered in ((["test"], False), (["dev"], False), ([None], True),
                            (["train"], True), (["test", "train"], True)):  # fmt: skip
        dataset = dataset_imported_from(*splits)
        html = curator_client.get(reverse("curation:dataset_detail", args=[dataset.pk]))
        html = html.content.decode()
        mine = reverse("curation:mining_new", args=[dataset.pk])
        assert (mine in html) == offered, splits
        assert ('id="no-mining"' in html) == (not offered), splits
        # A benchmark split is offered its evaluation instead, and a snapshot of it is
        # said to train on the benchmark's queries.
        evaluate = f"{reverse('evaluation:new')}?tasks=dataset:{dataset.pk}"
        assert (evaluate in html) == (not offered), splits
        assert ('id="benchmark-snapshot"' in html) == (not offered), splits
        if not offered:
            assert f"only the {splits[0]} split of a benchmark" in html
