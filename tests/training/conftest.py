"""Fixtures of the service and page tests: snapshot and model folders in tmp, tasks captured
instead of sent, a small real SciFact-train snapshot."""

import pytest

from tests.support.sends import capture_sends
from training import tasks

from . import scifact_snapshots


@pytest.fixture
def folders(settings, tmp_path):
    settings.SIEVE_SNAPSHOT_DIR = tmp_path / "snapshots"
    settings.SIEVE_MODEL_DIR = tmp_path / "models"


@pytest.fixture
def sent(monkeypatch):
    """Tasks the code sends to Celery, captured instead of sent."""
    return capture_sends(monkeypatch, tasks.training_run)


@pytest.fixture
def snapshot(shared_data, tmp_path, folders):
    return scifact_snapshots(shared_data, tmp_path / "data", formats=("bge",), queries=8)["bge"]
