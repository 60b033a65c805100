"""What the database benches share to start: a fresh database and Django set up on it.
A bench run as ``python bench/<name>.py`` finds this module beside it."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def django_setup(url: str) -> None:
    """Django on the database at ``url``, with local settings (variables already set win)."""
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    os.environ.setdefault("SIEVE_VAR_DIR", str(Path(tempfile.gettempdir()) / "sieve-bench"))
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def database_recreate(url: str) -> None:
    """Drop the database ``url`` names, if it is there, and create it empty."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
