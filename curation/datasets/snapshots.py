"""Snapshots: a dataset frozen under a false-negative policy into a training file.

A snapshot is written once and never edited: the file lives under
``settings.SIEVE_SNAPSHOT_DIR`` and its row carries the sha256 of the bytes and a manifest
(counts, policy, k, format, the decision cut-off). The same dataset, labels, policy, k and
format always give the same bytes, so asking twice returns the first snapshot.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import transaction

from core.errors import ApplicationError
from core.jobs import JobOutcome, job_enqueue, job_run

from ..models import Dataset, ExportFormat, ExportJob, Query, Snapshot, SnapshotPolicy
from .export import EXPORT_VERSION, PolicyCounts, policy_apply, writer_for
from .held_out import HELD_OUT_VERSION, MAX_FRACTION, HeldOutWriter, held_out_pick
from .selectors import (
    approvals_in_force,
    dataset_candidates_stream,
    dataset_has_negatives,
    decision_cutoff,
    snapshot_find_identical,
)

logger = logging.getLogger(__name__)

# Queries per SQL round trip when streaming a dataset.
BATCH_QUERIES = 1000


def _validate(*, policy: str, format: str, max_false_negatives: int, held_out: float = 0.0,
              held_out_seed: int = 0) -> None:  # fmt: skip
    if policy not in SnapshotPolicy.values:
        raise ApplicationError(
            f"unknown policy {policy!r}; choose one of {', '.join(SnapshotPolicy.values)}",
            detail={"field": "policy"},
        )
    if format not in ExportFormat.values:
        raise ApplicationError(
            f"unknown export format {format!r}; choose one of {', '.join(ExportFormat.values)}",
            detail={"field": "format"},
        )
    if not isinstance(max_false_negatives, int) or max_false_negatives < 0:
        raise ApplicationError(
            f"k (max_false_negatives) must be a whole number >= 0, got {max_false_negatives!r}",
            detail={"field": "max_false_negatives"},
        )
    if not isinstance(held_out, (int, float)) or not 0 <= held_out <= MAX_FRACTION:
        raise ApplicationError(
            f"the share of queries held out must be between 0 and {MAX_FRACTION}, got {held_out!r}",
            detail={"field": "held_out"},
        )
    if not isinstance(held_out_seed, int) or held_out_seed < 0:
        raise ApplicationError(
            f"the held-out seed must be a whole number >= 0, got {held_out_seed!r}",
            detail={"field": "held_out_seed"},
        )


class _HashingFile:
    """Text sink that encodes to UTF-8, writes to a binary file and hashes the same bytes,
    so the digest never needs a second pass over a multi-GB file."""

    def __init__(self, raw):
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, text: str) -> None:
        data = text.encode("utf-8")
        self.digest.update(data)
        self.size += len(data)
        self.raw.write(data)


def _sieve_version() -> str:
    return getattr(settings, "SIEVE_VERSION", "") or settings.SPECTACULAR_SETTINGS.get(
        "VERSION", ""
    )


def snapshot_file_path(*, snapshot: Snapshot) -> Path:
    return Path(settings.SIEVE_SNAPSHOT_DIR) / snapshot.file_path


def snapshot_create(
    *,
    dataset: Dataset,
    policy: str,
    format: str,
    max_false_negatives: int = 7,
    user=None,
    progress: Callable[..., None] | None = None,
    held_out: float = 0.0,
    held_out_seed: int = 0,
) -> Snapshot:
    """Freeze ``dataset`` under ``policy`` into ``format``. Streams the dataset in batches of
    queries into a temporary file beside the final one, then moves it into place atomically:
    a crash leaves no half-written snapshot. ``progress(fraction, message)`` is called as
    queries are written (a ``ProgressReporter`` raises ``JobCancelled`` from it).

    ``held_out`` (0 to 0.5): that share of the queries, picked by ``held_out_seed`` and each
    query's id (``held_out.py``), is left out of the training file and written beside it as
    an evaluation task of in-domain queries the fine-tune never saw."""
    _validate(policy=policy, format=format, max_false_negatives=max_false_negatives,
              held_out=held_out, held_out_seed=held_out_seed)  # fmt: skip
    snapshot_dir = Path(settings.SIEVE_SNAPSHOT_DIR)
    snapshot_dir.mkdir(parents=True, exist_ok=True)

    cutoff = decision_cutoff()
    approvals = approvals_in_force(dataset=dataset)
    has_negatives = (
        dataset_has_negatives(dataset=dataset)
        if format == ExportFormat.SENTENCE_TRANSFORMERS
        else True
    )
    total = dataset.query_count or Query.objects.filter(dataset=dataset).count()
    counts = PolicyCounts()

    fd, partial_name = tempfile.mkstemp(dir=snapshot_dir, prefix=".partial-", suffix=".jsonl")
    partial: Path | None = Path(partial_name)
    held_partial: Path | None = None
    held = None
    if held_out:
        held_fd, held_name = tempfile.mkstemp(dir=snapshot_dir, prefix=".partial-held-")
        held_partial = Path(held_name)
        held = HeldOutWriter(open(held_fd, "wb"))  # noqa: SIM115 - closed below
    try:
        with open(fd, "wb") as raw:
            sink = _HashingFile(raw)
            writer = writer_for(format, sink, dataset_has_negatives=has_negatives)
            for done, query in enumerate(
                dataset_candidates_stream(
                    dataset=dataset,
                    decision_cutoff=cutoff,
                    batch_size=BATCH_QUERIES,
                    approval_ids=[a.pk for a in approvals],
                ),
                start=1,
            ):
                if held is not None and held_out_pick(
                    query.query_id, fraction=held_out, seed=held_out_seed
                ):
                    held.write(query)
                    continue
                result = policy_apply(query, policy=policy, max_false_negatives=max_false_negatives)
                rows = writer.write(result.query) if result.query is not None else 0
                counts.add(result, rows_written=rows)
                if progress is not None:
                    progress(done / max(total, done), f"{done:,} of {total:,} queries")
            raw.flush()
            os.fsync(raw.fileno())
        if held is not None:
            held.raw.flush()
            os.fsync(held.raw.fileno())
            held.raw.close()
        sha256 = sink.digest.hexdigest()
        relative = (
            Path(str(dataset.pk)) / f"{policy}-k{max_false_negatives}-{format}-{sha256[:16]}.jsonl"
        )
        final = snapshot_dir / relative

        with transaction.atomic():
            # Serialises two identical exports of one dataset, so the second finds the first.
            Dataset.objects.select_for_update().filter(pk=dataset.pk).exists()
            existing = snapshot_find_identical(
                dataset=dataset,
                policy=policy,
                max_false_negatives=max_false_negatives,
                format=format,
                sha256=sha256,
            )
            if existing is not None:
                existing_path = snapshot_file_path(snapshot=existing)
                if not existing_path.exists():
                    # Same sha256, same bytes: restore a file someone deleted from disk.
                    existing_path.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(partial, existing_path)
                    partial = None
                return existing
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, final)
            partial = None
            held_manifest = None
            if held is not None:
                held_sha = held.digest.hexdigest()
                held_relative = Path(str(dataset.pk)) / f"heldout-{held_sha[:16]}.jsonl"
                os.replace(held_partial, snapshot_dir / held_relative)
                held_partial = None
                held_manifest = {
                    "fraction": held_out,
                    "seed": held_out_seed,
                    "rule": "blake2b(f'{seed}\\0{query_id}', 8 bytes) / 2**64 < fraction",
                    "queries": held.queries,
                    "relevant": held.relevant,
                    "queries_without_relevant": held.without_relevant,
                    "file_path": held_relative.as_posix(),
                    "sha256": held_sha,
                    "version": HELD_OUT_VERSION,
                }
            manifest = {
                "dataset": {"id": dataset.pk, "name": dataset.name},
                "policy": policy,
                "max_false_negatives": max_false_negatives,
                "format": format,
                "layout": _layout(format, has_negatives),
                "decision_cutoff": cutoff,
                "approvals": [_approval_manifest(a) for a in approvals],
                "counts": counts.as_dict(),
                "counts_by_source": dict(sorted(counts.by_source.items())),
                "sha256": sha256,
                "size_bytes": sink.size,
                "file_name": final.name,
                "sieve_version": _sieve_version(),
                "export_version": EXPORT_VERSION,
            }
            if held_manifest is not None:
                manifest["held_out"] = held_manifest
            snapshot = Snapshot.objects.create(
                dataset=dataset,
                policy=policy,
                max_false_negatives=max_false_negatives,
                format=format,
                sha256=sha256,
                manifest=manifest,
                file_path=relative.as_posix(),
                size_bytes=sink.size,
                created_by=user if getattr(user, "is_authenticated", False) else None,
            )
            # created_at is set by the database insert; record the same instant in the
            # manifest, inside the creating transaction (nothing edits a snapshot later).
            manifest["created_at"] = snapshot.created_at.isoformat()
            Snapshot.objects.filter(pk=snapshot.pk).update(manifest=manifest)
        logger.info(
            "snapshot #%s of %s: %s queries written, sha256 %s",
            snapshot.pk,
            dataset.name,
            counts.queries_out,
            sha256,
        )
        return snapshot
    finally:
        if partial is not None:
            partial.unlink(missing_ok=True)
        if held is not None and not held.raw.closed:
            held.raw.close()
        if held_partial is not None:
            held_partial.unlink(missing_ok=True)


def _approval_manifest(approval) -> dict:
    """What a snapshot records of an approval it used: enough to know whose verdicts went in
    and on what evidence, even after the approval is revoked."""
    return {
        "id": approval.pk,
        "cascade_run": approval.cascade_run_id,
        "stage": approval.stage,
        "agreement_report": approval.agreement_report_id,
        "gate_passed": approval.gate_passed,
        "reason": approval.reason,
        "decisions": approval.decision_count,
        "false_negatives": approval.false_negative_count,
        "approved_at": approval.created_at.isoformat(),
    }


def _layout(format: str, has_negatives: bool) -> str:
    if format == ExportFormat.SENTENCE_TRANSFORMERS:
        return "triplets" if has_negatives else "pairs"
    return "one query per line"


def export_job_create(
    *,
    dataset: Dataset,
    policy: str,
    format: str,
    max_false_negatives: int = 7,
    user=None,
    held_out: float = 0.0,
    held_out_seed: int = 0,
) -> ExportJob:
    """Record an export request and run it on a worker once this transaction commits."""
    _validate(policy=policy, format=format, max_false_negatives=max_false_negatives,
              held_out=held_out, held_out_seed=held_out_seed)  # fmt: skip
    with transaction.atomic():
        job = ExportJob.objects.create(
            dataset=dataset,
            policy=policy,
            format=format,
            max_false_negatives=max_false_negatives,
            held_out=held_out,
            held_out_seed=held_out_seed,
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        job_enqueue(job=job)
    return job


def export_job_run(*, job_id: int) -> None:
    """Worker side of an export job. Failures and cancellation are recorded on the row; a
    redelivered task for a finished job does nothing, and one for a job whose worker died
    simply runs again (the export is deterministic and deduplicated)."""
    job = ExportJob.objects.select_related("dataset", "created_by").get(pk=job_id)

    def work(progress) -> JobOutcome:
        snapshot = snapshot_create(
            dataset=job.dataset,
            policy=job.policy,
            format=job.format,
            max_false_negatives=job.max_false_negatives,
            user=job.created_by,
            progress=progress,
            held_out=job.held_out,
            held_out_seed=job.held_out_seed,
        )
        ExportJob.objects.filter(pk=job.pk).update(snapshot=snapshot)
        job.snapshot = snapshot
        counts = snapshot.manifest["counts"]
        return JobOutcome(
            stats={**counts, "snapshot_id": snapshot.pk, "sha256": snapshot.sha256},
            message=f"{counts['queries_out']:,} queries written",
        )

    job_run(job=job, work=work)
