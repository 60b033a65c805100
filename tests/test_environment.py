"""tests/support/environment.py: a missing requirement skips locally and fails in CI."""

import pytest

from tests.support.environment import missing


def test_a_missing_requirement_is_a_skip_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no chromium here"):
        missing("no chromium here")


def test_a_missing_requirement_fails_in_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must provide .*: no shared data"):
        missing("no shared data")
