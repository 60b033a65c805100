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


def copy_text(table: str, columns: list[str], lines) -> None:
    """``COPY table (columns) FROM STDIN`` of ``lines`` (a StringIO of COPY text lines)."""
    from django.db import connection

    lines.seek(0)
    with connection.cursor() as cursor:
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            while block := lines.read(1 << 20):
                copy.write(block)


def copy_lines(*columns):
    """Columns (numpy arrays or scalars) as COPY text lines, built by numpy, not per row."""
    import io

    import numpy as np

    n = max(len(c) for c in columns if isinstance(c, np.ndarray))
    parts = [c.astype(str) if isinstance(c, np.ndarray) else np.full(n, str(c)) for c in columns]
    rows = parts[0]
    for part in parts[1:]:
        rows = np.char.add(np.char.add(rows, "\t"), part)
    return io.StringIO("\n".join(rows.tolist()) + "\n")
