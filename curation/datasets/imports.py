"""Import a dataset file (BGE, Tevatron, BEIR, sentence-transformers) into a corpus and a
dataset, all or nothing. Flow and reasons: ``imports.md`` beside this file.

    stream the reader ─► TEMP staging tables (COPY; outside the transaction, so the job
    row shows live progress) ─► ONE transaction: checks in SQL, set-based INSERT … SELECT
    … ON CONFLICT DO NOTHING, counts ─► commit
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Count, Q

from core.errors import ApplicationError
from core.jobs import JobOutcome, job_enqueue, job_run
from curation.datasets.formats import (
    NEGATIVE,
    POSITIVE,
    CandidateRow,
    FormatError,
    OptionError,
    PassageRow,
    ReadLimits,
    open_dataset,
)
from curation.models import Candidate, Corpus, Dataset, DatasetFormat, ImportJob, Passage, Query

from .import_staging import (
    CANDIDATE_COLUMNS,
    CANDIDATES,
    PASSAGE_COLUMNS,
    PASSAGES,
    QUERIES,
    QUERY_COLUMNS,
    Conflict,
    Staging,
    staging_for_connection,
)
from .upload_retention import import_source_discard

logger = logging.getLogger(__name__)

# Reading and staging is most of the work; the transaction gets the last fifth of the bar.
STAGING_SHARE = 0.8
# Staging batches: big enough that a COPY's round trip is noise, small enough to bound
# memory (about 16 MB of passage text at a time).
PASSAGE_BATCH_CHARS = 16_000_000
CANDIDATE_BATCH = 50_000
QUERY_BATCH = 20_000
# Dataset.name and Corpus.name are varchar(200).
NAME_MAX_LENGTH = 200


@dataclass
class ImportResult:
    dataset: Dataset
    stats: dict


def dataset_import(
    *,
    source: Path,
    dataset_name: str,
    format: str | None = None,
    corpus_name: str | None = None,
    options: dict | None = None,
    user=None,
    progress: Callable | None = None,
    source_name: str | None = None,
) -> ImportResult:
    """Import ``source`` (a file, a BEIR folder or a .zip of one) into the dataset
    ``dataset_name`` (created when missing) over the corpus ``corpus_name`` (default: a
    corpus named like the dataset). Importing the same data again adds nothing.

    ``progress`` is a ``core.jobs.ProgressReporter`` or any ``(fraction, message, *,
    force=False)`` callable. ``source_name`` is how errors name the file (an upload's
    original name); default: the file's own name. Raises ``ApplicationError`` naming file,
    line and field on bad input and leaves the database exactly as it was.
    """
    dataset_name = _checked_name(dataset_name, field="dataset_name", required=True)
    corpus_name = _checked_name(corpus_name, field="corpus_name") or None
    _check_format(format)
    report = progress or _no_progress
    source = Path(source)
    label = source_name or source.name
    try:
        reader = open_dataset(
            source, format=format or None, options=options, name=label, limits=read_limits()
        )
        staging = staging_for_connection()
        try:
            staging.create()
            read = _stage(reader, staging, report)
            report(STAGING_SHARE, "writing to the database", force=True)
            with transaction.atomic():
                return _merge(
                    reader=reader,
                    staging=staging,
                    read=read,
                    dataset_name=dataset_name,
                    corpus_name=corpus_name,
                    source_label=label,
                    user=user,
                )
        finally:
            _drop_quietly(staging)
    except FormatError as error:
        raise ApplicationError(error.message, detail=error.detail) from None
    except OptionError as error:
        raise ApplicationError(error.message, detail={"field": error.field}) from None


def read_limits() -> ReadLimits:
    """What one import may read (settings ``SIEVE_IMPORT_MAX_*``): bounds on a line and on
    what a .zip or .gz may unpack to, so a hostile file cannot exhaust memory."""
    return ReadLimits(
        max_line_bytes=settings.SIEVE_IMPORT_MAX_LINE_BYTES,
        max_uncompressed_bytes=settings.SIEVE_IMPORT_MAX_UNCOMPRESSED_BYTES,
        max_compression_ratio=settings.SIEVE_IMPORT_MAX_COMPRESSION_RATIO,
        ratio_checked_above_bytes=settings.SIEVE_IMPORT_RATIO_CHECKED_ABOVE_BYTES,
    )


def _drop_quietly(staging: Staging) -> None:
    """Drop the staging tables without hiding the error that brought us here (in a broken
    transaction the DROP fails too; the session's end drops them anyway)."""
    try:
        staging.drop()
    except DatabaseError:
        logger.warning("could not drop the import staging tables", exc_info=True)


def _checked_name(name: str | None, *, field: str, required: bool = False) -> str:
    name = (name or "").strip()
    if required and not name:
        label = field.removesuffix("_name")
        raise ApplicationError(f"the {label} needs a name", detail={"field": field})
    if len(name) > NAME_MAX_LENGTH:
        raise ApplicationError(
            f"the name is {len(name)} characters long; at most {NAME_MAX_LENGTH} are allowed",
            detail={"field": field},
        )
    return name


def _check_format(format: str | None) -> None:
    if format and format not in DatasetFormat.values:
        raise ApplicationError(
            f'unknown format "{format}"; choose one of {", ".join(DatasetFormat.values)}',
            detail={"field": "format"},
        )


def _no_progress(fraction: float, message: str = "", *, force: bool = False) -> None:
    pass


def _stage(reader, staging: Staging, report: Callable) -> dict:
    """Stream the reader into the staging tables in bounded batches; returns what was read."""
    file_numbers = {name: number for number, name in enumerate(reader.files)}
    passages: list[tuple] = []
    queries: list[tuple] = []
    candidates: list[tuple] = []
    passage_chars = 0
    read = {"candidate_rows": 0, "passage_rows": 0, "query_rows": 0}

    def flush() -> None:
        nonlocal passages, queries, candidates, passage_chars
        if passages:
            staging.write(PASSAGES, PASSAGE_COLUMNS, passages)
            read["passage_rows"] += len(passages)
        if queries:
            staging.write(QUERIES, QUERY_COLUMNS, queries)
            read["query_rows"] += len(queries)
        if candidates:
            staging.write(CANDIDATES, CANDIDATE_COLUMNS, candidates)
            read["candidate_rows"] += len(candidates)
        passages, queries, candidates, passage_chars = [], [], [], 0
        report(
            reader.fraction() * STAGING_SHARE,
            f"read {read['query_rows']:,} queries, {read['candidate_rows']:,} candidates",
        )

    for row in reader.rows():
        kind = type(row)
        if kind is CandidateRow:
            query_id, doc_id, role, rank, score, where = row
            candidates.append(
                (query_id, doc_id, role, rank, score, file_numbers[where.file], where.line)
            )
            if len(candidates) >= CANDIDATE_BATCH:
                flush()
        elif kind is PassageRow:
            doc_id, title, text, digest, where, field = row
            passages.append(
                (doc_id, title, text, digest, file_numbers[where.file], where.line, field)
            )
            passage_chars += len(text)
            if passage_chars >= PASSAGE_BATCH_CHARS:
                flush()
        else:
            query_id, text, where, field = row
            queries.append((query_id, text, file_numbers[where.file], where.line, field))
            if len(queries) >= QUERY_BATCH:
                flush()
    flush()
    return read


def _merge(
    *,
    reader,
    staging: Staging,
    read: dict,
    dataset_name: str,
    corpus_name: str | None,
    source_label: str,
    user,
) -> ImportResult:
    """Inside the import's transaction: find or create the dataset and corpus, check the
    staged data in SQL, insert it set-based, keep the counts."""
    dataset, corpus, corpus_is_new, dataset_is_new = _dataset_found_or_created(
        dataset_name=dataset_name,
        corpus_name=corpus_name,
        source_label=source_label,
        format=reader.format,
        user=user,
    )
    # Imports into one corpus take turns from here to the commit, so each one's checks and
    # counts see the other's committed passages.
    Corpus.objects.select_for_update().filter(pk=corpus.pk).first()
    # Whether the corpus holds passages decides which checks and lookups are needed; ask
    # the table, not passage_count, so a count that drifted cannot skip a check.
    corpus_is_new = corpus_is_new or not Passage.objects.filter(corpus=corpus).exists()

    staging.prepare()
    _check(
        reader=reader,
        staging=staging,
        corpus=corpus,
        dataset=dataset,
        corpus_is_new=corpus_is_new,
        dataset_is_new=dataset_is_new,
    )
    inserted = staging.insert(
        corpus_id=corpus.pk,
        dataset_id=dataset.pk,
        corpus_is_new=corpus_is_new,
        dataset_is_new=dataset_is_new,
        queries_need_candidates=reader.queries_need_candidates,
    )
    _counts_refresh(corpus=corpus, dataset=dataset)
    dataset.refresh_from_db()

    queries_in_file = staging.distinct_queries(with_candidates=reader.queries_need_candidates)
    # Into an empty corpus every distinct staged passage was added.
    passages_in_file = inserted.passages if corpus_is_new else staging.distinct_passages()
    stats = {
        "format": reader.format,
        "files": list(reader.files),
        "queries_added": inserted.queries,
        "queries_existing": queries_in_file - inserted.queries,
        "passages_added": inserted.passages,
        "passages_existing": max(0, passages_in_file - inserted.passages),
        "positives_added": inserted.positives,
        "negatives_added": inserted.negatives,
        "candidate_rows": read["candidate_rows"],
        "candidates_not_added": read["candidate_rows"] - inserted.positives - inserted.negatives,
        "positive_and_negative": staging.positive_and_negative(),
        "foreign_key_checks": inserted.foreign_keys,
        **reader.notes,
    }
    if reader.queries_need_candidates:
        stats["queries_without_candidates"] = (
            staging.distinct_queries(with_candidates=False) - queries_in_file
        )
    return ImportResult(dataset=dataset, stats=stats)


def _dataset_found_or_created(
    *, dataset_name: str, corpus_name: str | None, source_label: str, format: str, user
) -> tuple[Dataset, Corpus, bool, bool]:
    """The dataset (locked) and its corpus, and whether each is new to this transaction.

    Two imports may race to create the same new name (a double click, two curators): the
    second one's INSERT waits for the first to commit and then hits the unique name. It
    then takes the committed dataset as an existing one, so both imports succeed and the
    second adds only what the first did not.
    """
    for _attempt in range(2):
        dataset = (
            Dataset.objects.select_for_update()
            .select_related("corpus")
            .filter(name=dataset_name)
            .first()
        )
        if dataset is not None:
            if corpus_name and dataset.corpus.name != corpus_name:
                raise ApplicationError(
                    f'dataset "{dataset_name}" already exists over corpus '
                    f'"{dataset.corpus.name}", not "{corpus_name}"',
                    detail={"field": "corpus_name"},
                )
            return dataset, dataset.corpus, False, False
        try:
            with transaction.atomic():  # a savepoint: losing the race keeps the transaction
                corpus, corpus_is_new = Corpus.objects.get_or_create(
                    name=corpus_name or dataset_name
                )
                dataset = Dataset.objects.create(
                    name=dataset_name,
                    corpus=corpus,
                    source=source_label[:500],
                    format=format,
                    created_by=user if getattr(user, "is_authenticated", False) else None,
                )
            return dataset, corpus, corpus_is_new, True
        except IntegrityError:
            if not Dataset.objects.filter(name=dataset_name).exists():
                raise
    raise AssertionError("a dataset that exists was not found twice")  # pragma: no cover


def _counts_refresh(*, corpus: Corpus, dataset: Dataset) -> None:
    """Recount the denormalized counts in SQL; list pages read them instead of COUNTing."""
    candidates = Candidate.objects.filter(query__dataset=dataset).aggregate(
        positives=Count("pk", filter=Q(role=POSITIVE)),
        negatives=Count("pk", filter=Q(role=NEGATIVE)),
    )
    Dataset.objects.filter(pk=dataset.pk).update(
        query_count=Query.objects.filter(dataset=dataset).count(),
        positive_count=candidates["positives"],
        negative_count=candidates["negatives"],
    )
    Corpus.objects.filter(pk=corpus.pk).update(
        passage_count=Passage.objects.filter(corpus=corpus).count()
    )


def _check(*, reader, staging: Staging, corpus, dataset, corpus_is_new, dataset_is_new) -> None:
    files = reader.files
    if not reader.ids_from_text:
        conflict = staging.passage_conflict_in_file()
        if conflict:
            raise _error(
                conflict,
                files,
                f'passage "{conflict.key}" has a different title or text than at '
                f"{_at(files, conflict.other_file_no, conflict.other_line)}",
            )
        if not corpus_is_new:
            conflict = staging.passage_conflict_in_corpus(corpus.pk)
            if conflict:
                raise _error(
                    conflict,
                    files,
                    f'passage "{conflict.key}" differs from the passage with this id already in '
                    f'corpus "{corpus.name}" (passage #{conflict.stored_pk}); a corpus keeps one '
                    f"text per id: import into another corpus or give the passage a new id",
                )
        conflict = staging.query_conflict_in_file()
        if conflict:
            raise _error(
                conflict,
                files,
                f'query "{conflict.key}" has a different text than at '
                f"{_at(files, conflict.other_file_no, conflict.other_line)}",
            )
        if not dataset_is_new:
            conflict = staging.query_conflict_in_dataset(dataset.pk)
            if conflict:
                raise _error(
                    conflict,
                    files,
                    f'query "{conflict.key}" differs from the query with this id already in '
                    f'dataset "{dataset.name}" (query #{conflict.stored_pk})',
                )
    if reader.candidates_need_lookup:
        conflict = staging.unknown_query()
        if conflict:
            queries_file = next((name for name in files if "queries" in name), "the queries")
            raise _error(conflict, files, f'query "{conflict.key}" is not in {queries_file}')
        conflict = staging.unknown_document(corpus.pk, corpus_is_new)
        if conflict:
            corpus_file = next((name for name in files if "corpus" in name), "the corpus file")
            also = "" if corpus_is_new else f' nor in corpus "{corpus.name}"'
            raise _error(
                conflict, files, f'document "{conflict.key}" is not in {corpus_file}{also}'
            )


def _at(files: list[str], file_no: int, line: int) -> str:
    return f"{files[file_no]} line {line}"


def _error(conflict: Conflict, files: list[str], problem: str) -> ApplicationError:
    error = FormatError(
        problem, file=files[conflict.file_no], line=conflict.line, field=conflict.field
    )
    return ApplicationError(error.message, detail=error.detail)


def source_sha256(path: Path) -> str:
    """sha256 of a file's bytes; for a folder, of its files' relative paths and bytes."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_file():
        _hash_file(digest, path)
        return digest.hexdigest()
    for member in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(member.relative_to(path)).encode() + b"\0")
        _hash_file(digest, member)
    return digest.hexdigest()


def _hash_file(digest, path: Path) -> None:
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)


# --- jobs ------------------------------------------------------------------------------


def import_job_create(
    *,
    source_path: str,
    source_name: str,
    dataset_name: str,
    format: str = "",
    corpus_name: str = "",
    options: dict | None = None,
    user=None,
) -> ImportJob:
    """Record an import and run it on a worker once this transaction commits."""
    dataset_name = _checked_name(dataset_name, field="dataset_name", required=True)
    corpus_name = _checked_name(corpus_name, field="corpus_name")
    _check_format(format)
    if not Path(source_path).exists():
        raise ApplicationError(
            f"{source_name or source_path}: the file does not exist",
            detail={"file": source_name or str(source_path)},
        )
    with transaction.atomic():
        job = ImportJob.objects.create(
            source_path=str(source_path),
            source_name=(source_name or Path(source_path).name)[:300],
            dataset_name=dataset_name,
            format=format or "",
            corpus_name=corpus_name,
            options=options or {},
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        job_enqueue(job=job)
    return job


def import_job_run(*, job_id: int) -> None:
    """Run an import job. Safe to run twice: a finished job is left alone, and a job whose
    worker died mid-way imports again (the import is all-or-nothing and idempotent).
    An uploaded file is deleted once its import succeeded; a failed or cancelled import's
    is kept for a retry (``upload_retention.py``). A command line's own file is never
    deleted."""
    job = ImportJob.objects.get(pk=job_id)

    def work(progress) -> JobOutcome:
        source = Path(job.source_path)
        if source.exists():
            job.source_sha256 = source_sha256(source)
            ImportJob.objects.filter(pk=job.pk).update(source_sha256=job.source_sha256)
        result = dataset_import(
            source=source,
            dataset_name=job.dataset_name,
            format=job.format or None,
            corpus_name=job.corpus_name or None,
            options=job.options,
            user=job.created_by,
            progress=progress,
            source_name=job.source_name or None,
        )
        ImportJob.objects.filter(pk=job.pk).update(dataset=result.dataset)
        job.dataset = result.dataset
        return JobOutcome(stats=result.stats, message=import_summary(result.stats))

    if job_run(job=job, work=work):
        import_source_discard(job=job)


def import_summary(stats: dict) -> str:
    """One line for a progress bar or a terminal."""
    return (
        f"{stats['queries_added']:,} queries, {stats['positives_added']:,} positives, "
        f"{stats['negatives_added']:,} negatives, {stats['passages_added']:,} new passages"
    )
