import pytest
from rest_framework.test import APIClient

# The same small dataset as the web tests: both sides read the same rows.
from tests.web.conftest import tiny_dataset  # noqa: F401


@pytest.fixture
def api_client():
    return APIClient()
