"""The overview in a real browser (issue 10): a curator signs in, lands on the loop, sees
each dataset's steps with the next one marked, and its button opens that step's form."""

import pytest
from django.contrib.auth.models import Group

from tests.browser.conftest import log_in, screenshot
from tests.experiments.test_overview import _whole_loop
from tests.factories import DatasetFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_curator_lands_on_the_loop_and_takes_the_next_step(
    live_server, new_page, django_user_model
):
    curator = django_user_model.objects.create_user(username="cora", password="pw-cora")
    curator.groups.add(Group.objects.get_or_create(name="curator")[0])
    _whole_loop("msmarco-relabelled")
    DatasetFactory(name="nq-fresh-import", query_count=1000, negative_count=25000)
    page = new_page()
    log_in(page, live_server, "cora", "pw-cora")
    page.goto(f"{live_server.url}/")
    assert page.url.endswith("/overview/")
    row = page.locator('tr[data-dataset="nq-fresh-import"]')
    assert row.locator("td.step-next").get_attribute("data-step") == "judged"
    done = page.locator('tr[data-dataset="msmarco-relabelled"] td[data-state="done"]')
    assert done.count() == 7
    assert (
        "scifact nDCG@10 70.00 (Δ +5.00 vs base)"
        in page.locator('tr[data-dataset="msmarco-relabelled"]').inner_text()
    )
    # Nothing on the page is wider than the window.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    screenshot(page, "overview")
    row.get_by_role("link", name="Run the cascade").click()
    page.wait_for_load_state()
    assert page.url.endswith(
        f"/datasets/{DatasetFactory._meta.model.objects.get(name='nq-fresh-import').pk}/cascade/"
    )
    assert not page.errors and not page.dialogs
