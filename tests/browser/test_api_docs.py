"""The API docs (drf-spectacular's Swagger UI and Redoc, templates/drf_spectacular/): they
ask no other host for anything, Redoc's logo from its CDN included, and lead back to the
app."""

import pytest
from django.contrib.auth.models import Group

from tests.browser.conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize(("path", "rendered"), [
    ("/api/redoc/", "text=API docs by Redocly"),  # the footer beside Redocly's logo
    ("/api/docs/", "text=/api/datasets/"),
])  # fmt: skip
def test_the_api_docs_stay_on_this_host_and_link_back(
    live_server, new_page, django_user_model, path, rendered
):
    user = django_user_model.objects.create_user(username="cora", password="pw-cora")
    user.groups.add(Group.objects.get_or_create(name="curator")[0])
    page, elsewhere, errors = new_page(), [], []
    page.route(
        lambda url: not url.startswith((live_server.url, "data:", "blob:")),
        lambda route: (elsewhere.append(route.request.url), route.abort()),
    )
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    log_in(page, live_server, "cora", "pw-cora")
    page.goto(live_server.url + path)
    page.wait_for_selector(rendered)
    page.wait_for_load_state("networkidle")
    assert elsewhere == [] and errors == []
    page.get_by_role("link", name="Back to the app").click()
    page.wait_for_load_state()
    assert page.url == live_server.url + "/overview/"
