"""Bulk SQL writers shared by the curation sub-domains: the importer, mining, the cascade
and synthesis write many rows per statement through these, never row by row through the
ORM. PostgreSQL gets its fast paths (COPY, ``INSERT … ON CONFLICT … RETURNING`` in large
batches, asynchronous commit); SQLite (the embedded default) the portable equivalents."""

from __future__ import annotations

from django.db import connection


def rows_copy(*, table: str, columns: tuple[str, ...], rows, types: list[str] | None = None):
    """PostgreSQL ``COPY table (columns) FROM STDIN``: the fastest way in for many rows.
    With ``types`` (PostgreSQL type names, one per column) the COPY is binary: no text
    escaping on either side, about twice the speed of text; without, text COPY with the
    values adapted by psycopg. The caller quotes ``table`` and ``columns`` as needed."""
    binary = " (FORMAT BINARY)" if types else ""
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN{binary}"
    with connection.cursor() as cursor, cursor.copy(sql) as copy:
        if types:
            copy.set_types(types)
        for row in rows:
            copy.write_row(row)


def commit_without_waiting_for_disk() -> None:
    """PostgreSQL: this transaction's COMMIT returns before its WAL reaches the disk. A
    cascade commits several times a second; waiting for each flush made the database the
    bottleneck. What it risks is narrow: a crash of the database SERVER (not of a worker) may
    lose the last fraction of a second of commits, i.e. some answers are asked (and paid) once
    more. The database stays consistent."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def rows_insert_ignoring_conflicts(
    *, table: str, columns: list[str], rows: list[tuple], conflict: list[str], returning: list[str]
) -> list[tuple]:
    """Multi-row ``INSERT … ON CONFLICT (conflict) DO NOTHING RETURNING …`` (PostgreSQL and
    SQLite >= 3.35): the ``returning`` columns of the rows actually inserted, so callers
    keep exact counts without a second query. Batches stay under both databases' limits on
    parameters per statement."""
    if not rows:
        return []
    quote = connection.ops.quote_name
    limit = 30_000 if connection.vendor == "postgresql" else 900
    batch = max(1, limit // len(columns))
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    sql = (
        f"INSERT INTO {quote(table)} ({', '.join(quote(c) for c in columns)}) VALUES {{values}} "
        f"ON CONFLICT ({', '.join(quote(c) for c in conflict)}) DO NOTHING "
        f"RETURNING {', '.join(quote(c) for c in returning)}"
    )
    inserted: list[tuple] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), batch):
            part = rows[start : start + batch]
            cursor.execute(
                sql.format(values=", ".join([placeholders] * len(part))),
                [value for row in part for value in row],
            )
            inserted += [tuple(r) for r in cursor.fetchall()]
    return inserted
