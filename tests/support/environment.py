"""What a test needs from the machine (the shared data, chromium, a real broker or database)
and what happens when it is missing: locally a skip that says what is missing; in CI
(``CI=true``) a failure, because CI must have everything and a silent skip would let a
broken feature pass."""

import os

import pytest


def missing(reason: str) -> None:
    """Skip (locally) or fail (CI) the current test because ``reason``: something it needs is
    not on this machine. Skips for a design reason (a PostgreSQL-only test on the SQLite lane)
    are plain ``pytest.skip`` calls instead."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must provide what this test needs: {reason}", pytrace=False)
    pytest.skip(reason)
