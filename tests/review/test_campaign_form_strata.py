"""The campaign form says how many candidates each stratum holds (issue 10, item 10): for
the chosen dataset and the cascade run a new campaign would use, counted in SQL with the
sampling's own querysets, capped ("10,000+")."""

import re

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from curation.models import CascadeRun, Verdict
from review.selectors import strata_available

from .conftest import judge

URL = reverse("review:campaign_create")
HX = {"HTTP_HX_REQUEST": "true"}


def shown(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-available="(\w+)">([^<]*)<', html))


def test_choosing_a_dataset_shows_the_candidates_per_stratum(curator_client, review_dataset):
    html = curator_client.get(URL).content.decode()
    assert "Choose a dataset to see" in html and not shown(html)
    # The dataset select asks the same page for its counts box with htmx.
    assert f'hx-get="{URL}"' in html and 'hx-select="#strata-available"' in html
    response = curator_client.get(URL, {"dataset": review_dataset.pk}, **HX)
    html = response.content.decode()
    assert response.status_code == 200
    # Six queries: negative 1 flagged by stage 2, negative 2 by stage 1 only, 3 and 4 by
    # none; two synthetic triplets.
    assert shown(html) == {
        "stage2_flagged": "6", "stage1_only": "6", "unflagged": "12", "synthetic": "2",
    }  # fmt: skip
    assert "No cascade run on this dataset" in html
    assert f'<option value="{review_dataset.pk}" selected>' in html


def test_the_counts_follow_the_datasets_latest_cascade_run(curator_client, review_dataset):
    run = CascadeRun.objects.create(dataset=review_dataset)
    negative = review_dataset.queries.get(query_id="q0").candidates.get(rank=4)
    judge(negative, "llm:gpt-4o:stage2", Verdict.RELEVANT, source_run=f"cascade:{run.pk}")
    html = curator_client.get(URL, {"dataset": review_dataset.pk}).content.decode()
    assert shown(html) == {
        "stage2_flagged": "1", "stage1_only": "0", "unflagged": "0", "synthetic": "2",
    }  # fmt: skip
    assert f"cascade run #{run.pk}, the dataset's latest" in html


def test_a_form_sent_back_with_an_error_still_shows_the_counts(curator_client, review_dataset):
    response = curator_client.post(URL, {"name": "x", "dataset": review_dataset.pk})
    assert response.status_code == 400
    assert shown(response.content.decode())["unflagged"] == "12"


def test_counting_stops_at_the_cap_one_statement_per_stratum(review_dataset):
    with CaptureQueriesContext(connection) as captured:
        available = strata_available(dataset=review_dataset, cap=5)
    rows = {row.stratum: row.shown for row in available.strata}
    assert rows == {
        "stage2_flagged": "5+",
        "stage1_only": "5+",
        "unflagged": "5+",
        "synthetic": "2",
    }
    assert len(captured.captured_queries) == 1 + 4  # the latest run, then one per stratum
    assert all("LIMIT 6" in q["sql"] for q in captured.captured_queries[1:])


def test_an_unknown_dataset_shows_no_counts(curator_client, review_dataset):
    html = curator_client.get(URL, {"dataset": review_dataset.pk + 999}).content.decode()
    assert "Choose a dataset to see" in html
    assert curator_client.get(URL, {"dataset": "x"}).status_code == 400


def test_the_unflagged_stratum_is_named_for_imported_and_mined_negatives(
    curator_client, review_dataset
):
    """It samples imported hard negatives as well as mined ones: "unflagged mined negatives"
    was not true of a dataset that was never mined."""
    html = curator_client.get(URL, {"dataset": review_dataset.pk}, **HX).content.decode()
    row = re.search(r'<tr data-stratum="unflagged">(.*?)</tr>', html, re.S)[1]
    assert "Unflagged hard negatives" in row and "mined" not in row
