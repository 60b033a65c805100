"""What one verdict costs the database through the review page: a bound on the statements of
the htmx submit (issue 11: ~20 before, goal ≤ 8 for the verdict's own work; 5 since issue 13),
and the counters the leaner pane shows still right. Timings live in bench/review_http_bench.py,
not here."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from review.models import ReviewCampaign, ReviewItem

from .test_review_page import HX, current_item, form_token, page_url

CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")


def statements(captured) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if not q["sql"].startswith(CONTROL)]


@pytest.fixture
def ann(make_annotator):
    return make_annotator("ann1")


def post_verdict(client, campaign, html, verdict):
    data = {"item": current_item(html), "token": form_token(html), "verdict": verdict}
    return client.post(reverse("review:review_submit", args=[campaign.pk]), data, **HX)


@pytest.mark.parametrize("blind", [True, False])
@pytest.mark.parametrize("overlap", [1, 2])
def test_a_verdict_request_runs_a_bounded_number_of_statements(
    client, ann, make_annotator, make_campaign, blind, overlap
):
    if connection.vendor != "postgresql":
        pytest.skip("the verdict is one statement on PostgreSQL; SQLite writes it with the ORM")
    campaign = make_campaign([ann, make_annotator("ann2")], overlap=overlap, blind=blind)
    client.force_login(ann)
    html = client.get(page_url(campaign)).content.decode()
    html = post_verdict(client, campaign, html, "relevant").content.decode()  # a last answer
    with CaptureQueriesContext(connection) as captured:
        response = post_verdict(client, campaign, html, "not_relevant")
    assert response.status_code == 200 and "message-error" not in response.content.decode()
    sql = statements(captured)
    # session + user (2), the campaign with membership and roles (1), the verdict (5): row
    # lock; state with the agreement tallies a k-th answer needs; the write; the next pick;
    # its state with its hold; the pane (3): passages, the revealed verdicts, the counters.
    assert len(sql) <= 11, "\n".join(sql)
    verdict = sql[3 : len(sql) - 3]
    assert len(verdict) <= 5, "\n".join(verdict)
    writes = [s for s in sql if s.lstrip().startswith(("INSERT", "UPDATE", "DELETE", "WITH"))]
    assert len(writes) <= 2, writes  # the verdict in one statement, the next hold in another


def test_finishing_an_item_moves_the_campaign_counter_on_the_page(
    client, ann, make_annotator, make_campaign
):
    other = make_annotator("ann2")
    campaign = make_campaign([ann, other], overlap=2, strata={"unflagged": 1})
    client.force_login(ann)
    html = client.get(page_url(campaign)).content.decode()
    first_item = current_item(html)
    post_verdict(client, campaign, html, "relevant")
    client.force_login(other)
    html = client.get(page_url(campaign)).content.decode()
    assert current_item(html) == first_item
    after = post_verdict(client, campaign, html, "relevant").content.decode()
    assert re.search(r'data-counter="campaign">1 / 1<', after)
    assert re.search(r'data-counter="mine">1<', after)
    assert re.search(r'data-counter="remaining">0<', after)
    item = ReviewItem.objects.get(pk=first_item)
    assert item.done and item.agreed is True and item.judgment_count == 2
    assert ReviewCampaign.objects.get(pk=campaign.pk).done_count == 1


def test_the_pane_needs_the_right_role_as_well_as_membership(client, make_annotator, make_campaign):
    viewer_member = make_annotator("vic", role="viewer")
    campaign = make_campaign([viewer_member])
    client.force_login(viewer_member)
    assert client.get(page_url(campaign)).status_code == 403
    assert client.get(reverse("review:review_page", args=[campaign.pk + 999])).status_code == 404


def test_with_a_shared_cache_the_session_costs_no_statement_and_still_revokes(
    client, ann, make_annotator, make_campaign, settings
):
    """CACHE_URL=redis://… makes sessions cached_db (config/settings/base.py): the submit reads
    no session row, and a logout ends the session for every process sharing the cache."""
    import socket
    import uuid

    from django.test import Client

    from tests.support.environment import missing

    if connection.vendor != "postgresql":
        pytest.skip("the verdict is one statement on PostgreSQL; SQLite writes it with the ORM")
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.3).close()
    except OSError:
        missing("Redis is not listening on 127.0.0.1:6379")
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/12",
            "KEY_PREFIX": f"test-{uuid.uuid4().hex}",
        }
    }
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
    campaign = make_campaign([ann, make_annotator("ann2")], overlap=2, blind=True)
    client.force_login(ann)
    html = client.get(page_url(campaign)).content.decode()
    html = post_verdict(client, campaign, html, "relevant").content.decode()
    with CaptureQueriesContext(connection) as captured:
        response = post_verdict(client, campaign, html, "not_relevant")
    assert response.status_code == 200 and "message-error" not in response.content.decode()
    sql = statements(captured)
    assert not [s for s in sql if "django_session" in s], sql
    assert len(sql) <= 10, "\n".join(sql)

    other_process = Client()
    other_process.cookies = client.cookies
    assert other_process.get(page_url(campaign)).status_code == 200
    client.post(reverse("logout"))
    assert other_process.get(page_url(campaign)).status_code == 302  # to the login page


def test_sessions_are_read_from_the_cache_only_when_every_process_shares_it():
    import os
    import subprocess
    import sys

    def engine(cache_url: str) -> str:
        code = "import config.settings.base as b; print(getattr(b, 'SESSION_ENGINE', 'db'))"
        env = {**os.environ, "CACHE_URL": cache_url}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True)
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout.decode().strip()

    assert engine("redis://127.0.0.1:6379/1") == "django.contrib.sessions.backends.cached_db"
    assert engine("pymemcache://127.0.0.1:11211") == "django.contrib.sessions.backends.cached_db"
    assert engine("locmemcache://") == "db"
    assert engine("filecache:///tmp/sieve-cache") == "db"
