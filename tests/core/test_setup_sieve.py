"""`manage.py setup_sieve`, what `make run` calls after `migrate`: an admin account whose
password is printed once (and works), then the demo dataset, both only once."""

import io
import re

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

from curation.models import Dataset

pytestmark = pytest.mark.django_db


def _setup(*args) -> str:
    out = io.StringIO()
    call_command("setup_sieve", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_the_admin_is_created_once_with_a_password_printed_once():
    first = _setup("--no-demo")
    password = re.search(r"password: (\S+)", first).group(1)
    assert authenticate(username="admin", password=password) is not None
    assert get_user_model().objects.get(username="admin").is_superuser
    again = _setup("--no-demo")
    assert "already exists" in again and password not in again
    assert "manage.py changepassword admin" in again
    assert get_user_model().objects.filter(username="admin").count() == 1


def test_the_demo_dataset_is_loaded_once(settings, tmp_path):
    settings.SIEVE_MEDIA_ROOT = tmp_path
    _setup("--username", "boss")
    demo = Dataset.objects.get(name="demo")
    counts = (demo.query_count, demo.positive_count, demo.negative_count)
    assert counts[0] == 36 and counts[1] == 36 and counts[2] > 0
    _setup("--username", "boss")
    demo.refresh_from_db()
    assert (demo.query_count, demo.positive_count, demo.negative_count) == counts
    assert Dataset.objects.count() == 1
