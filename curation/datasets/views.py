"""HTML pages: parse the request, call a selector or a service, render.

Job pages follow the one pattern of ``core/job_pages.py``.
"""

import json

from django.contrib import messages
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from core.errors import ApplicationError
from core.http import form_error_add, query_int
from core.job_pages import job_cancel, job_page
from core.roles import CAN_CURATE, CAN_READ_DATA, has_role, role_required

from ..models import (
    CandidateOrigin,
    CandidateRole,
    Dataset,
    DatasetFormat,
    ExportJob,
    ImportJob,
    Query,
    Snapshot,
)
from . import selectors as reads
from .forms import ImportUploadForm, SnapshotFreezeForm
from .job_stats import EXPORT_STATS, IMPORT_STATS, SNAPSHOT_COUNTS
from .snapshots import export_job_create, snapshot_file_path
from .upload_retention import import_job_retry, import_job_retry_state
from .uploads import import_upload_start


def _str_param(request, name: str) -> str | None:
    value = request.GET.get(name)
    return value if value else None


# --- datasets and queries --------------------------------------------------------------------


def dataset_or_404(pk: int) -> Dataset:
    """The dataset of a page's URL (the mining, cascade and synthesis pages use it too)."""
    try:
        return reads.dataset_get(dataset_id=pk)
    except Dataset.DoesNotExist:
        raise Http404("no such dataset") from None


@require_GET
@role_required(*CAN_READ_DATA)
def dataset_list(request):
    page = reads.dataset_list_page(
        after=_str_param(request, "after"), before=_str_param(request, "before")
    )
    return render(request, "curation/dataset_list.html", {"page": page, "section": "datasets"})


def _query_page(request, dataset: Dataset):
    return reads.query_list_page(
        dataset=dataset, after=_str_param(request, "after"), before=_str_param(request, "before")
    )


def _dataset_detail_context(request, dataset: Dataset, freeze_form=None) -> dict:
    return {
        "section": "datasets",
        "dataset": dataset,
        "page": _query_page(request, dataset),
        "import_jobs": reads.dataset_import_jobs(dataset=dataset),
        "export_jobs": reads.dataset_export_jobs(dataset=dataset),
        "snapshots": reads.dataset_snapshots(dataset=dataset),
        "freeze_form": freeze_form or SnapshotFreezeForm(),
        "evaluation_split": reads.dataset_evaluation_split(dataset=dataset),
    }


@require_GET
@role_required(*CAN_READ_DATA)
def dataset_detail(request, pk: int):
    dataset = dataset_or_404(pk)
    if request.htmx and not request.htmx.history_restore_request:
        # Paging through queries swaps only the table (a history restore wants the page).
        return render(
            request,
            "curation/_query_table.html",
            {"dataset": dataset, "page": _query_page(request, dataset)},
        )
    context = _dataset_detail_context(request, dataset)
    return render(request, "curation/dataset_detail.html", context)


@require_POST
@role_required(*CAN_CURATE)
def snapshot_freeze(request, pk: int):
    dataset = get_object_or_404(Dataset, pk=pk)
    form = SnapshotFreezeForm(request.POST)
    if not form.is_valid():
        context = _dataset_detail_context(request, dataset, freeze_form=form)
        return render(request, "curation/dataset_detail.html", context, status=400)
    try:
        job = export_job_create(
            dataset=dataset,
            policy=form.cleaned_data["policy"],
            format=form.cleaned_data["format"],
            max_false_negatives=form.cleaned_data["max_false_negatives"],
            user=request.user,
            **form.held_out(),
        )
    except ApplicationError as exc:
        form.add_error(None, exc.message)
        context = _dataset_detail_context(request, dataset, freeze_form=form)
        return render(request, "curation/dataset_detail.html", context, status=400)
    messages.success(request, f"Freezing {dataset.name} under policy {job.policy}.")
    return redirect("curation:export_job_detail", pk=job.pk)


@require_GET
@role_required(*CAN_READ_DATA)
def query_detail(request, pk: int):
    try:
        query = reads.query_get(query_id=pk)
    except Query.DoesNotExist:
        raise Http404("no such query") from None
    candidates = reads.query_candidates(query=query)
    return render(
        request,
        "curation/query_detail.html",
        {
            "section": "datasets",
            "query": query,
            "dataset": query.dataset,
            "positives": [c for c in candidates if c.role == CandidateRole.POSITIVE],
            "negatives": [c for c in candidates if c.role == CandidateRole.NEGATIVE],
            # Imported and mined negatives are ranked apart (each list starts at rank 1).
            "negative_groups": [
                (
                    label,
                    [
                        c
                        for c in candidates
                        if c.role == CandidateRole.NEGATIVE and c.origin == origin
                    ],
                )
                for origin, label in (
                    (CandidateOrigin.ORIGINAL, "Imported negatives"),
                    (CandidateOrigin.MINED, "Mined negatives"),
                    (CandidateOrigin.GENERATED, "Generated negatives"),
                )
            ],
        },
    )


# --- imports ---------------------------------------------------------------------------------


def _import_page(request, form, *, status: int = 200):
    page = reads.import_job_list_page(
        after=query_int(request, "after"), before=query_int(request, "before")
    )
    return render(
        request,
        "curation/import.html",
        {"section": "import", "form": form, "page": page},
        status=status,
    )


@require_GET
@role_required(*CAN_READ_DATA)
def import_page(request):
    form = ImportUploadForm() if has_role(request.user, *CAN_CURATE) else None
    return _import_page(request, form)


@require_POST
@role_required(*CAN_CURATE)
def import_upload(request):
    form = ImportUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _import_page(request, form, status=400)
    try:
        job = import_upload_start(
            uploaded_file=form.cleaned_data["file"],
            dataset_name=form.cleaned_data["dataset_name"],
            format=form.cleaned_data["format"],
            corpus_name=form.cleaned_data["corpus_name"],
            options=form.options(),
            user=request.user,
        )
    except ApplicationError as exc:
        form_error_add(form, exc)
        return _import_page(request, form, status=400)
    messages.success(request, f"Importing {job.source_name} into {job.dataset_name}.")
    return redirect("curation:import_job_detail", pk=job.pk)


def _import_job_context(job: ImportJob) -> dict:
    found = str((job.stats or {}).get("format") or "")
    return {
        "section": "import",
        # What auto-detection found, by its name.
        "detected_format": dict(DatasetFormat.choices).get(found, found),
        "status_url": reverse("curation:import_job_detail", args=[job.pk]),
        "cancel_url": reverse("curation:import_job_cancel", args=[job.pk]),
        "result_url": reverse("curation:dataset_detail", args=[job.dataset_id])
        if job.dataset_id
        else None,
        "result_label": "Open the dataset",
        "retry": import_job_retry_state(job=job),
        "stats_layout": IMPORT_STATS,
    }


@require_GET
@role_required(*CAN_READ_DATA)
def import_job_detail(request, pk: int):
    job = get_object_or_404(ImportJob.objects.select_related("dataset", "created_by"), pk=pk)
    return job_page(
        request, job, template="curation/import_job.html", context=_import_job_context(job)
    )


@require_POST
@role_required(*CAN_CURATE)
def import_job_cancel(request, pk: int):
    return job_cancel(request, get_object_or_404(ImportJob, pk=pk), context=_import_job_context)


@require_POST
@role_required(*CAN_CURATE)
def import_job_retry_view(request, pk: int):
    """Run a failed or cancelled import again from its kept file (the same job)."""
    job = get_object_or_404(ImportJob, pk=pk)
    try:
        import_job_retry(job=job)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Import #{job.pk} is queued again.")
    return redirect("curation:import_job_detail", pk=job.pk)


# --- exports and snapshots ---------------------------------------------------------------


def _export_job_context(job: ExportJob) -> dict:
    return {
        "section": "snapshots",
        "status_url": reverse("curation:export_job_detail", args=[job.pk]),
        "cancel_url": reverse("curation:export_job_cancel", args=[job.pk]),
        "result_url": reverse("curation:snapshot_detail", args=[job.snapshot_id])
        if job.snapshot_id
        else None,
        "result_label": "Open the snapshot",
        "stats_layout": EXPORT_STATS,
    }


@require_GET
@role_required(*CAN_READ_DATA)
def export_job_detail(request, pk: int):
    job = get_object_or_404(ExportJob.objects.select_related("dataset", "created_by"), pk=pk)
    return job_page(
        request, job, template="curation/export_job.html", context=_export_job_context(job)
    )


@require_POST
@role_required(*CAN_CURATE)
def export_job_cancel(request, pk: int):
    return job_cancel(request, get_object_or_404(ExportJob, pk=pk), context=_export_job_context)


@require_GET
@role_required(*CAN_READ_DATA)
def snapshot_list(request):
    page = reads.snapshot_list_page(
        dataset_id=query_int(request, "dataset"),
        after=query_int(request, "after"),
        before=query_int(request, "before"),
    )
    return render(
        request,
        "curation/snapshot_list.html",
        {"section": "snapshots", "page": page, "running": reads.export_jobs_unfinished()},
    )


@require_GET
@role_required(*CAN_READ_DATA)
def snapshot_detail(request, pk: int):
    try:
        snapshot = reads.snapshot_get(snapshot_id=pk)
    except Snapshot.DoesNotExist:
        raise Http404("no such snapshot") from None
    return render(
        request,
        "curation/snapshot_detail.html",
        {
            "section": "snapshots",
            "snapshot": snapshot,
            "by_source": _effects_by_source(snapshot.manifest),
            "counts_layout": SNAPSHOT_COUNTS,
            # Rendered as escaped text; the manifest may carry user-given names.
            "manifest_json": json.dumps(snapshot.manifest, indent=2, sort_keys=True),
        },
    )


SOURCE_EFFECTS = (
    ("false_negatives_confirmed", "false negatives confirmed"),
    ("false_negatives_removed", "removed"),
    ("false_negatives_relabelled", "relabelled"),
    ("positives_removed", "positives removed"),
    ("queries_dropped_remove", "queries dropped (remove)"),
    ("queries_dropped_ambiguous", "queries dropped (ambiguous)"),
)


def _effects_by_source(manifest: dict) -> dict | None:
    """The manifest's per-source effects as table rows: people first, then each approval."""
    by_source = manifest.get("counts_by_source")
    if not by_source:
        return None
    approvals = {f"approval:{a['id']}": a for a in manifest.get("approvals", [])}
    rows = [
        {
            "source": source,
            "approval": approvals.get(source),
            "values": [counts.get(key, 0) for key, _ in SOURCE_EFFECTS],
        }
        for source, counts in sorted(by_source.items(), key=lambda kv: kv[0] != "human")
    ]
    return {"columns": [label for _, label in SOURCE_EFFECTS], "rows": rows}


def snapshot_download_name(snapshot: Snapshot) -> str:
    return f"{snapshot.dataset.name}-{snapshot.policy}-{snapshot.sha256[:12]}.jsonl"


def snapshot_file_response(snapshot: Snapshot) -> FileResponse:
    """Stream a snapshot file as an attachment (shared by the page and the API)."""
    path = snapshot_file_path(snapshot=snapshot)
    if not path.is_file():
        raise Http404("the snapshot file is missing on the server")
    return FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=snapshot_download_name(snapshot),
        content_type="application/jsonl",
    )


@require_GET
@role_required(*CAN_READ_DATA)
def snapshot_download(request, pk: int):
    snapshot = get_object_or_404(Snapshot.objects.select_related("dataset"), pk=pk)
    return snapshot_file_response(snapshot)
