"""Storing an uploaded import file (web form or API) where the import worker can read it.

The upload is written under ``settings.SIEVE_UPLOAD_DIR`` under a generated name that keeps only
the file's type suffix: the user's file name never becomes a path. A ``.zip`` of a BEIR folder
is stored as it is; the import job reads it on the worker (never unpacking it to disk).
What becomes of the file after its import (deleted, or kept for a retry): upload_retention.py.
"""

import logging
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files.move import file_move_safe
from django.core.files.uploadedfile import UploadedFile

from core.errors import ApplicationError
from curation.models import ImportJob

from .formats import FILE_SUFFIXES
from .imports import import_job_create
from .upload_retention import uploads_purge

logger = logging.getLogger(__name__)

# Whatever the importer reads (the command line accepts the same files), and a .zip of a
# BEIR folder. The longest suffix wins: "x.jsonl.gz" is ".jsonl.gz", not ".gz". The importer
# detects the format from it when the user leaves the format on auto.
ACCEPTED_SUFFIXES = tuple(sorted((*FILE_SUFFIXES, ".zip"), key=len, reverse=True))
ACCEPTED_HELP = "jsonl, csv or tsv (each also .gz), parquet, or a .zip of a BEIR folder"


@dataclass
class StoredUpload:
    path: Path
    original_name: str


def upload_suffix(name: str) -> str | None:
    lowered = name.lower()
    for suffix in ACCEPTED_SUFFIXES:
        if lowered.endswith(suffix):
            return suffix
    return None


def upload_store(*, uploaded_file: UploadedFile) -> StoredUpload:
    original_name = Path(uploaded_file.name or "upload").name
    suffix = upload_suffix(original_name)
    if suffix is None:
        raise ApplicationError(
            f"{original_name}: unsupported file type; expected one of "
            + ", ".join(ACCEPTED_SUFFIXES),
            detail={"file": original_name, "field": "file"},
        )
    upload_dir = Path(settings.SIEVE_UPLOAD_DIR)
    upload_dir.mkdir(parents=True, exist_ok=True)
    target = upload_dir / f"{uuid.uuid4().hex}{suffix}"
    if hasattr(uploaded_file, "temporary_file_path"):
        # A large upload already lies on disk: move it (a rename on the same filesystem)
        # rather than write its gigabytes a second time.
        file_move_safe(uploaded_file.temporary_file_path(), str(target))
    else:
        with target.open("wb") as out:
            for chunk in uploaded_file.chunks():
                out.write(chunk)
    if suffix == ".zip" and not zipfile.is_zipfile(target):
        # Said now rather than by a failed job a minute later.
        target.unlink()
        raise ApplicationError(
            f"{original_name}: not a valid .zip archive",
            detail={"file": original_name, "field": "file"},
        )
    return StoredUpload(path=target, original_name=original_name)


def import_upload_start(
    *,
    uploaded_file: UploadedFile,
    dataset_name: str,
    format: str = "",
    corpus_name: str = "",
    options: dict | None = None,
    user=None,
) -> ImportJob:
    """An upload from the web form or the API: stored, then its import job queued. When the
    job is refused (a bad dataset name, say) the stored file is deleted at once: no job will
    ever read it. ``ApplicationError`` names the field.

    Each upload first purges the files no import needs any more (upload_retention.py), so
    the folder holds only what is in use or kept for a retry."""
    try:
        uploads_purge()
    except OSError:
        logger.warning("could not purge the upload folder", exc_info=True)
    stored = upload_store(uploaded_file=uploaded_file)
    try:
        return import_job_create(
            source_path=str(stored.path),
            source_name=stored.original_name,
            dataset_name=dataset_name,
            format=format,
            corpus_name=corpus_name,
            options=options,
            user=user,
        )
    except ApplicationError:
        stored.path.unlink(missing_ok=True)
        raise
