"""Who reaches which page: logged out → login, annotators → 403, viewers read, curators write."""

import pytest
from django.urls import reverse

from core.models import JobStatus
from curation.models import ExportJob, ImportJob, Snapshot


@pytest.fixture
def objects(tiny_dataset, curator):
    query = tiny_dataset.queries.order_by("query_id").first()
    import_job = ImportJob.objects.create(
        dataset_name="tiny", source_path="/nowhere.jsonl", source_name="tiny.jsonl"
    )
    export_job = ExportJob.objects.create(dataset=tiny_dataset, policy="default", format="bge")
    snapshot = Snapshot.objects.create(
        dataset=tiny_dataset, policy="default", format="bge", sha256="0" * 64, file_path="x.jsonl"
    )
    return {
        "dataset": tiny_dataset,
        "query": query,
        "import_job": import_job,
        "export_job": export_job,
        "snapshot": snapshot,
    }


def read_urls(o) -> list[str]:
    return [
        reverse("curation:dataset_list"),
        reverse("curation:dataset_detail", args=[o["dataset"].pk]),
        reverse("curation:query_detail", args=[o["query"].pk]),
        reverse("curation:import_page"),
        reverse("curation:import_job_detail", args=[o["import_job"].pk]),
        reverse("curation:export_job_detail", args=[o["export_job"].pk]),
        reverse("curation:snapshot_list"),
        reverse("curation:snapshot_detail", args=[o["snapshot"].pk]),
        reverse("api_token"),
    ]


def write_urls(o) -> list[str]:
    return [
        reverse("curation:import_upload"),
        reverse("curation:snapshot_freeze", args=[o["dataset"].pk]),
        reverse("curation:import_job_cancel", args=[o["import_job"].pk]),
        reverse("curation:export_job_cancel", args=[o["export_job"].pk]),
    ]


def test_logged_out_visitor_is_sent_to_login_everywhere(client, objects):
    login = reverse("login")
    for url in [reverse("home"), *read_urls(objects)]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(f"{login}?next="), url
    # The API docs are a DRF view (exempt from the login middleware) wrapped in
    # login_required, so a person is sent to the login page rather than shown a 401.
    for name in ("api-docs", "api-redoc"):
        response = client.get(reverse(name))
        assert response.status_code == 302
        assert response["Location"].startswith(f"{login}?next=")
    for url in write_urls(objects):
        response = client.post(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(login), url


def test_login_page_renders_and_logs_in(client, curator):
    page = client.get(reverse("login"))
    assert page.status_code == 200
    assert b'name="password"' in page.content
    response = client.post(reverse("login"), {"username": "cora", "password": "pw-cora"})
    assert response.status_code == 302
    assert client.get(reverse("curation:dataset_list")).status_code == 200


def test_annotator_gets_403_on_curation_pages_and_no_admin(annotator_client, objects):
    for url in read_urls(objects):
        assert annotator_client.get(url).status_code == 403, url
    for url in write_urls(objects):
        assert annotator_client.post(url).status_code == 403, url
    # Not staff: Django's admin sends them to its own login instead of showing anything.
    response = annotator_client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    assert annotator_client.get("/admin/curation/dataset/").status_code == 302


def test_annotator_home_shows_review_work_and_no_dataset_links(annotator_client):
    response = annotator_client.get(reverse("home"), follow=True)
    assert response.status_code == 200
    assert b"Your review work appears here" in response.content
    assert reverse("curation:dataset_list").encode() not in response.content
    assert reverse("curation:import_page").encode() not in response.content


def test_user_without_role_sees_no_role_page(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("nobody", password="x"))
    response = client.get(reverse("home"))
    assert response.status_code == 403
    assert b"No role yet" in response.content


def test_viewer_reads_every_page_but_cannot_write(viewer_client, objects):
    assert viewer_client.get(reverse("home")).status_code == 302
    for url in read_urls(objects):
        assert viewer_client.get(url).status_code == 200, url
    for url in write_urls(objects):
        assert viewer_client.post(url).status_code == 403, url
    # The viewer is not offered forms that would be refused.
    import_page = viewer_client.get(reverse("curation:import_page"))
    assert b'name="file"' not in import_page.content
    detail = viewer_client.get(reverse("curation:dataset_detail", args=[objects["dataset"].pk]))
    assert b"Freeze snapshot" not in detail.content
    assert ImportJob.objects.count() == 1
    assert ImportJob.objects.get().status == JobStatus.QUEUED


def test_members_of_the_admin_group_get_into_the_django_admin(client, django_user_model):
    """README: the ``admin`` group can do everything, the Django admin included, although
    nothing sets ``is_staff`` when a user joins the group."""
    from django.contrib.auth.models import Group

    boss = django_user_model.objects.create_user(username="boss", password="pw-boss")
    boss.groups.add(Group.objects.get_or_create(name="admin")[0])
    assert not boss.is_staff and not boss.is_superuser
    client.force_login(boss)
    index = client.get("/admin/")
    assert index.status_code == 200 and b"Datasets" in index.content
    assert client.get("/admin/curation/dataset/").status_code == 200
    assert b'href="/admin/"' in client.get(reverse("curation:dataset_list")).content
    # A staff flag alone (a curator someone marked staff) is not a way in.
    curator = django_user_model.objects.create_user(
        username="staffcurator", password="pw", is_staff=True
    )
    curator.groups.add(Group.objects.get_or_create(name="curator")[0])
    client.force_login(curator)
    assert client.get("/admin/").status_code == 302


def test_nav_shows_admin_only_to_admins(client, admin_user, curator):
    client.force_login(curator)
    page = client.get(reverse("curation:dataset_list"))
    assert b'href="/admin/"' not in page.content
    assert b"API docs" in page.content
    # htmx requests carry the CSRF token from the body's hx-headers.
    assert b'hx-headers=\'{"X-CSRFToken": "' in page.content
    client.force_login(admin_user)
    page = client.get(reverse("curation:dataset_list"))
    assert b'href="/admin/"' in page.content


def test_logout_is_a_post_form(curator_client):
    page = curator_client.get(reverse("curation:dataset_list"))
    assert f'method="post" action="{reverse("logout")}"'.encode() in page.content
    response = curator_client.post(reverse("logout"))
    assert response.status_code == 302
    assert curator_client.get(reverse("curation:dataset_list")).status_code == 302


def test_a_403_is_logged_as_one_line_without_a_traceback(annotator_client, caplog):
    import logging

    from core.logging import ForbiddenWithoutTraceback

    logger = logging.getLogger("django.request")
    assert any(isinstance(f, ForbiddenWithoutTraceback) for f in logger.filters)
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert annotator_client.get(reverse("curation:dataset_list")).status_code == 403
    records = [r for r in caplog.records if r.name == "django.request"]
    assert records and "Forbidden" in records[0].getMessage()
    assert all(r.exc_info is None for r in records)
    assert "Traceback" not in caplog.text
