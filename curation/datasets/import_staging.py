"""The SQL half of the importer: session-scoped TEMP staging tables, filled by streaming
COPY (PostgreSQL) or batched executemany (SQLite), then checked and merged into the real
tables set-based. See imports.md for the flow; ``imports.py`` drives it.

Staged rows carry ``file_no`` (index into the reader's file list) and ``line`` so a problem
found here, with the whole data in view, is still reported where the user can fix it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connection, transaction

from curation.datasets.formats import NEGATIVE, POSITIVE
from curation.models import Candidate, CandidateOrigin, Passage, Query

from ..bulk import rows_copy

PASSAGES = "sieve_stage_passage"
QUERIES = "sieve_stage_query"
CANDIDATES = "sieve_stage_candidate"
PASSAGE_IDS = "sieve_stage_passage_id"
QUERY_IDS = "sieve_stage_query_id"

PASSAGE_COLUMNS = ("doc_id", "title", "text", "text_hash", "file_no", "line", "field")
QUERY_COLUMNS = ("query_id", "text", "file_no", "line", "field")
CANDIDATE_COLUMNS = (
    "query_id",
    "doc_id",
    "role",
    "rank",
    "teacher_score",
    "file_no",
    "line",
)

_TABLES = {
    PASSAGES: "doc_id text NOT NULL, title text NOT NULL, text text NOT NULL, "
    "text_hash text NOT NULL, file_no integer NOT NULL, line bigint NOT NULL, "
    "field text NOT NULL",
    QUERIES: "query_id text NOT NULL, text text NOT NULL, file_no integer NOT NULL, "
    "line bigint NOT NULL, field text NOT NULL",
    CANDIDATES: "query_id text NOT NULL, doc_id text NOT NULL, role text NOT NULL, "
    "rank integer, teacher_score double precision, file_no integer NOT NULL, "
    "line bigint NOT NULL",
}
_ID_TABLES = {
    PASSAGE_IDS: "doc_id text NOT NULL, id bigint NOT NULL",
    QUERY_IDS: "query_id text NOT NULL, id bigint NOT NULL",
}

_COPY_TYPES = {
    "doc_id": "text",
    "title": "text",
    "text": "text",
    "text_hash": "text",
    "file_no": "int4",
    "line": "int8",
    "field": "text",
    "query_id": "text",
    "role": "text",
    "rank": "int4",
    "teacher_score": "float8",
}

_PASSAGE = Passage._meta.db_table
_QUERY = Query._meta.db_table
_CANDIDATE = Candidate._meta.db_table


@dataclass(frozen=True)
class Conflict:
    """A staged row that contradicts another staged row or a stored one."""

    key: str
    file_no: int
    line: int
    field: str
    # The other side: a staged row (file_no, line) or a stored row's primary key.
    other_file_no: int | None = None
    other_line: int | None = None
    stored_pk: int | None = None


@dataclass
class Inserted:
    passages: int
    queries: int
    positives: int
    negatives: int
    # How the new rows' foreign keys were checked: "per-row" (the database's triggers) or
    # "set-based" (PostgreSQL, see PostgresStaging.insert).
    foreign_keys: str = "per-row"


def staging_for_connection() -> Staging:
    if connection.vendor == "postgresql":
        return PostgresStaging()
    return Staging()


class Staging:
    """Portable staging (SQLite): executemany into TEMP tables, joins on the real tables'
    unique indexes. PostgreSQL overrides the parts where it has a faster way."""

    def create(self) -> None:
        with connection.cursor() as cursor:
            for table, columns in {**_TABLES, **self._extra_tables()}.items():
                cursor.execute(f"DROP TABLE IF EXISTS {table}")
                cursor.execute(f"CREATE TEMP TABLE {table} ({columns})")

    def _extra_tables(self) -> dict:
        return {}

    def drop(self) -> None:
        with connection.cursor() as cursor:
            for table in [*_TABLES, *self._extra_tables()]:
                cursor.execute(f"DROP TABLE IF EXISTS {table}")

    def write(self, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
        marks = ", ".join(["%s"] * len(columns))
        with connection.cursor() as cursor:
            cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def prepare(self) -> None:
        """Called once staging is complete, inside the import's transaction."""
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE INDEX {CANDIDATES}_query ON {CANDIDATES} (query_id)")
            cursor.execute(f"CREATE INDEX {QUERIES}_query ON {QUERIES} (query_id)")
            cursor.execute(f"CREATE INDEX {PASSAGES}_doc ON {PASSAGES} (doc_id)")
            cursor.execute("ANALYZE temp")

    # --- checks: each returns the first problem in file order, or None -------------------

    def passage_conflict_in_file(self) -> Conflict | None:
        return self._conflict_in_file(PASSAGES, "doc_id", "text_hash")

    def query_conflict_in_file(self) -> Conflict | None:
        return self._conflict_in_file(QUERIES, "query_id", "text")

    def _conflict_in_file(self, table: str, key: str, value: str) -> Conflict | None:
        with connection.cursor() as cursor:
            # min <> max finds ids with two values without sorting the whole table.
            cursor.execute(
                f"SELECT {key} FROM {table} GROUP BY {key} "
                f"HAVING min({value}) <> max({value}) ORDER BY min(file_no), min(line) LIMIT 1"
            )
            found = cursor.fetchone()
            if found is None:
                return None
            cursor.execute(
                f"SELECT {value}, file_no, line, field FROM {table} WHERE {key} = %s "
                f"ORDER BY file_no, line",
                [found[0]],
            )
            first_value, first_file, first_line, _ = cursor.fetchone()
            for other_value, file_no, line, field in cursor.fetchall():
                if other_value != first_value:
                    return Conflict(found[0], file_no, line, field, first_file, first_line)
        raise AssertionError("a conflicting id lost its conflict")  # pragma: no cover

    def passage_conflict_in_corpus(self, corpus_id: int) -> Conflict | None:
        return self._conflict_stored(
            f"SELECT s.doc_id, s.file_no, s.line, s.field, p.id FROM {PASSAGES} s "
            f"JOIN {_PASSAGE} p ON p.corpus_id = %s AND p.doc_id = s.doc_id "
            f"WHERE p.text_hash <> s.text_hash ORDER BY s.file_no, s.line LIMIT 1",
            [corpus_id],
        )

    def query_conflict_in_dataset(self, dataset_id: int) -> Conflict | None:
        return self._conflict_stored(
            f"SELECT s.query_id, s.file_no, s.line, s.field, q.id FROM {QUERIES} s "
            f"JOIN {_QUERY} q ON q.dataset_id = %s AND q.query_id = s.query_id "
            f"WHERE q.text <> s.text ORDER BY s.file_no, s.line LIMIT 1",
            [dataset_id],
        )

    def _conflict_stored(self, sql: str, params: list) -> Conflict | None:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            found = cursor.fetchone()
        if found is None:
            return None
        key, file_no, line, field, pk = found
        return Conflict(key, file_no, line, field, stored_pk=pk)

    def unknown_query(self) -> Conflict | None:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT c.query_id, c.file_no, c.line FROM {CANDIDATES} c "
                f"WHERE NOT EXISTS (SELECT 1 FROM {QUERIES} q WHERE q.query_id = c.query_id) "
                f"ORDER BY c.file_no, c.line LIMIT 1"
            )
            found = cursor.fetchone()
        return Conflict(found[0], found[1], found[2], "query-id") if found else None

    def unknown_document(self, corpus_id: int, corpus_is_new: bool) -> Conflict | None:
        stored = (
            ""
            if corpus_is_new
            else f"AND NOT EXISTS (SELECT 1 FROM {_PASSAGE} p "
            f"WHERE p.corpus_id = %s AND p.doc_id = c.doc_id) "
        )
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT c.doc_id, c.file_no, c.line FROM {CANDIDATES} c "
                f"WHERE NOT EXISTS (SELECT 1 FROM {PASSAGES} s WHERE s.doc_id = c.doc_id) "
                f"{stored}ORDER BY c.file_no, c.line LIMIT 1",
                [] if corpus_is_new else [corpus_id],
            )
            found = cursor.fetchone()
        return Conflict(found[0], found[1], found[2], "corpus-id") if found else None

    # --- counts of the staged data ------------------------------------------------------

    def scalar(self, sql: str, params: list | None = None) -> int:
        with connection.cursor() as cursor:
            cursor.execute(sql, params or [])
            return cursor.fetchone()[0] or 0

    def distinct_passages(self) -> int:
        return self.scalar(f"SELECT count(DISTINCT doc_id) FROM {PASSAGES}")

    def distinct_queries(self, *, with_candidates: bool) -> int:
        return self.scalar(
            f"SELECT count(DISTINCT query_id) FROM {QUERIES} s {_has_candidate(with_candidates)}"
        )

    def positive_and_negative(self) -> int:
        """Pairs staged both as positive and as negative (the positive is kept)."""
        return self.scalar(
            f"SELECT count(*) FROM (SELECT DISTINCT n.query_id, n.doc_id FROM {CANDIDATES} n "
            f"WHERE n.role = %s AND EXISTS (SELECT 1 FROM {CANDIDATES} p WHERE p.role = %s "
            f"AND p.query_id = n.query_id AND p.doc_id = n.doc_id)) pairs",
            [NEGATIVE, POSITIVE],
        )

    # --- merge into the real tables -----------------------------------------------------

    def insert(
        self,
        *,
        corpus_id: int,
        dataset_id: int,
        corpus_is_new: bool,
        dataset_is_new: bool,
        queries_need_candidates: bool,
    ) -> Inserted:
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {_PASSAGE} (corpus_id, doc_id, title, text, text_hash) "
                f"SELECT %s, doc_id, title, text, text_hash FROM {PASSAGES} WHERE true "
                f"ON CONFLICT (corpus_id, doc_id) DO NOTHING",
                [corpus_id],
            )
            passages = cursor.rowcount
            cursor.execute(
                f"INSERT INTO {_QUERY} (dataset_id, query_id, text) "
                f"SELECT %s, query_id, text FROM {QUERIES} s "
                f"{_has_candidate(queries_need_candidates) or 'WHERE true'} "
                f"ON CONFLICT (dataset_id, query_id) DO NOTHING",
                [dataset_id],
            )
            queries = cursor.rowcount
            added = {}
            # Positives first: a pair that is also listed as a negative stays positive;
            # among repeats the first line (and rank) wins.
            for role in (POSITIVE, NEGATIVE):
                cursor.execute(
                    f"INSERT INTO {_CANDIDATE} "
                    f"(query_id, passage_id, role, origin, rank, teacher_score) "
                    f"SELECT q.id, p.id, c.role, %s, c.rank, c.teacher_score "
                    f"FROM {CANDIDATES} c "
                    f"JOIN {_QUERY} q ON q.dataset_id = %s AND q.query_id = c.query_id "
                    f"JOIN {_PASSAGE} p ON p.corpus_id = %s AND p.doc_id = c.doc_id "
                    f"WHERE c.role = %s ORDER BY c.file_no, c.line, c.rank "
                    f"ON CONFLICT (query_id, passage_id) DO NOTHING",
                    [CandidateOrigin.ORIGINAL, dataset_id, corpus_id, role],
                )
                added[role] = cursor.rowcount
        return Inserted(passages, queries, added[POSITIVE], added[NEGATIVE])


def _has_candidate(required: bool) -> str:
    if not required:
        return ""
    return f"WHERE EXISTS (SELECT 1 FROM {CANDIDATES} c WHERE c.query_id = s.query_id)"


class PostgresStaging(Staging):
    """COPY into the staging tables; the merge resolves ids through small id tables filled
    from ``INSERT ... RETURNING``, so its plans do not depend on the size (or the stale
    statistics) of the real tables."""

    def _extra_tables(self) -> dict:
        return _ID_TABLES

    def write(self, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
        # Binary COPY: no text escaping on either side; about twice the speed of text.
        rows_copy(table=table, columns=columns, rows=rows, types=[_COPY_TYPES[c] for c in columns])

    def prepare(self) -> None:
        with connection.cursor() as cursor:
            # Hash joins and aggregates over millions of staged rows stay in memory.
            cursor.execute("SET LOCAL work_mem = '256MB'")
            # Autovacuum never analyzes temp tables; without statistics the planner
            # guesses their size and may pick nested loops over millions of rows.
            # Only the join and grouping keys: statistics on passage text cost time
            # and guide nothing.
            cursor.execute(f"ANALYZE {PASSAGES} (doc_id)")
            cursor.execute(f"ANALYZE {QUERIES} (query_id)")
            cursor.execute(f"ANALYZE {CANDIDATES} (query_id, doc_id, role)")

    def insert(
        self,
        *,
        corpus_id: int,
        dataset_id: int,
        corpus_is_new: bool,
        dataset_is_new: bool,
        queries_need_candidates: bool,
    ) -> Inserted:
        with connection.cursor() as cursor:
            set_based = settings.SIEVE_IMPORT_SET_BASED_FK and row_triggers_off(cursor)
            # With the row triggers off, what they would have done for existing rows is done
            # here, once per statement: lock the referenced rows FOR KEY SHARE so no one can
            # delete them before we commit (the corpus and dataset rows are already locked
            # FOR UPDATE by the importer; rows inserted here are invisible to everyone else).
            key_share = "FOR KEY SHARE OF p" if set_based else ""
            # Deduplicated and sorted by doc_id: the unique index is filled in order,
            # which measured a third faster than ON CONFLICT on unsorted rows. Into a new
            # corpus (invisible to other transactions) nothing can conflict.
            conflict = "" if corpus_is_new else "ON CONFLICT (corpus_id, doc_id) DO NOTHING "
            cursor.execute(
                f"WITH added AS ("
                f"INSERT INTO {_PASSAGE} (corpus_id, doc_id, title, text, text_hash) "
                f"SELECT DISTINCT ON (doc_id) %s, doc_id, title, text, text_hash "
                f"FROM {PASSAGES} ORDER BY doc_id, file_no, line "
                f"{conflict}RETURNING doc_id, id) "
                f"INSERT INTO {PASSAGE_IDS} (doc_id, id) SELECT doc_id, id FROM added",
                [corpus_id],
            )
            passages = cursor.rowcount
            if not corpus_is_new:
                # Passages this file names that the corpus already held.
                cursor.execute(
                    f"INSERT INTO {PASSAGE_IDS} (doc_id, id) "
                    f"SELECT p.doc_id, p.id FROM (SELECT DISTINCT doc_id FROM {CANDIDATES}) c "
                    f"JOIN {_PASSAGE} p ON p.corpus_id = %s AND p.doc_id = c.doc_id "
                    f"WHERE NOT EXISTS (SELECT 1 FROM {PASSAGE_IDS} i WHERE i.doc_id = c.doc_id) "
                    f"{key_share}",
                    [corpus_id],
                )
            cursor.execute(
                f"WITH added AS ("
                f"INSERT INTO {_QUERY} (dataset_id, query_id, text) "
                f"SELECT %s, query_id, text FROM {QUERIES} s "
                f"{_has_candidate(queries_need_candidates)} "
                f"ON CONFLICT (dataset_id, query_id) DO NOTHING RETURNING query_id, id) "
                f"INSERT INTO {QUERY_IDS} (query_id, id) SELECT query_id, id FROM added",
                [dataset_id],
            )
            queries = cursor.rowcount
            if not dataset_is_new:
                cursor.execute(
                    f"INSERT INTO {QUERY_IDS} (query_id, id) "
                    f"SELECT p.query_id, p.id FROM (SELECT DISTINCT query_id FROM {QUERIES}) s "
                    f"JOIN {_QUERY} p ON p.dataset_id = %s AND p.query_id = s.query_id "
                    f"WHERE NOT EXISTS (SELECT 1 FROM {QUERY_IDS} i "
                    f"WHERE i.query_id = s.query_id) {key_share}",
                    [dataset_id],
                )
            cursor.execute(f"ANALYZE {PASSAGE_IDS}")
            cursor.execute(f"ANALYZE {QUERY_IDS}")
            # One pass, deduplicated by DISTINCT ON: the positive wins over a negative of the
            # same pair ('positive' > 'negative'), then the first line and rank. Into a new dataset
            # (invisible to every other transaction) nothing can conflict, so the plain
            # INSERT skips ON CONFLICT's speculative insertion.
            conflict = "" if dataset_is_new else "ON CONFLICT (query_id, passage_id) DO NOTHING "
            cursor.execute(
                f"WITH added AS ("
                f"INSERT INTO {_CANDIDATE} "
                f"(query_id, passage_id, role, origin, rank, teacher_score) "
                f"SELECT DISTINCT ON (q.id, p.id) q.id, p.id, c.role, %s, c.rank, "
                f"c.teacher_score FROM {CANDIDATES} c "
                f"JOIN {QUERY_IDS} q ON q.query_id = c.query_id "
                f"JOIN {PASSAGE_IDS} p ON p.doc_id = c.doc_id "
                f"ORDER BY q.id, p.id, c.role DESC, c.file_no, c.line, c.rank "
                f"{conflict}RETURNING role) "
                f"SELECT count(*) FILTER (WHERE role = %s), count(*) FILTER (WHERE role = %s) "
                f"FROM added",
                [CandidateOrigin.ORIGINAL, POSITIVE, NEGATIVE],
            )
            added = dict(zip((POSITIVE, NEGATIVE), cursor.fetchone(), strict=True))
            if set_based:
                cursor.execute("SET LOCAL session_replication_role = origin")
        return Inserted(
            passages,
            queries,
            added[POSITIVE],
            added[NEGATIVE],
            foreign_keys="set-based" if set_based else "per-row",
        )


def row_triggers_off(cursor) -> bool:
    """Turn this transaction's row triggers off (``session_replication_role = replica``, as
    ``pg_restore --disable-triggers`` does) if the database role may; False when it may not
    (PostgreSQL allows it to superusers and to roles granted ``SET`` on the parameter).

    Why: Django's foreign keys are DEFERRABLE INITIALLY DEFERRED, so every inserted row
    queues one check that runs at commit as its own query plus a row lock — per million
    candidates about 20 s, a third of the import. The merge above cannot produce a dangling
    key: every id it writes comes from a join with rows inserted in this transaction or read
    (and locked FOR KEY SHARE) from the table in it. Unique and NOT NULL constraints are not
    triggers and stay on. It also switches off any trigger a deployment added to these
    tables (except ENABLE ALWAYS ones): set SIEVE_IMPORT_SET_BASED_FK=false if you rely on
    one."""
    try:
        with transaction.atomic():  # a savepoint: a refused SET leaves the transaction usable
            cursor.execute("SET LOCAL session_replication_role = replica")
    except DatabaseError:
        return False
    return True
