"""Approval pages: the list, the "approve" form with the gate measured live, an approval's
page (the job that applies it, its gate, revoke), cancel and revoke."""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from core.errors import ApplicationError
from core.http import form_error_add, query_int
from core.job_pages import job_cancel, job_page
from core.roles import CAN_CURATE, CAN_READ_DATA, has_role, role_required
from curation.cascade.approvals import approval_revoke
from curation.models import Approval

from .forms import ApprovalForm, ApprovalRevokeForm
from .gate import GateSettings
from .selectors import approval_get, approval_list_page
from .services import approval_gate, approval_submit


@require_GET
@role_required(*CAN_READ_DATA)
def approval_index(request):
    dataset_id = query_int(request, "dataset")
    page = approval_list_page(
        dataset_id=dataset_id,
        after=query_int(request, "after"),
        before=query_int(request, "before"),
    )
    return render(
        request,
        "review/approval_list.html",
        {"section": "approvals", "page": page, "filtered": dataset_id},
    )


def _gate_preview(form: ApprovalForm) -> dict | None:
    """The gate for what the form names so far, or None while it names no cascade run."""
    data = form.cleaned_data
    if not data.get("cascade_run"):
        return None
    try:
        gate = approval_gate(
            cascade_run=data["cascade_run"],
            stage=data.get("stage"),
            report=data.get("report"),
            settings=GateSettings(
                kappa_min=data.get("kappa_min") or 0.0,
                precision_low_min=data.get("precision_low_min") or 0.0,
            ),
        )
    except ApplicationError as error:
        form_error_add(form, error)
        return None
    return gate.to_json()


def _new_page(request, form: ApprovalForm, *, status: int = 200):
    gate = None
    if form.is_bound and (form.is_valid() or form.cleaned_data.get("cascade_run")):
        gate = _gate_preview(form)
    return render(
        request,
        "review/approval_form.html",
        {"section": "approvals", "form": form, "gate": gate},
        status=status,
    )


@require_GET
@role_required(*CAN_CURATE)
def approval_new(request):
    """The form; with a cascade run chosen (``?cascade_run=…&report=…``, also what htmx
    sends on every change), the gate measured for it."""
    if "cascade_run" in request.GET:
        return _new_page(request, ApprovalForm(request.GET))
    return _new_page(request, ApprovalForm(initial={"cascade_run": query_int(request, "run")}))


@require_POST
@role_required(*CAN_CURATE)
def approval_create(request):
    form = ApprovalForm(request.POST)
    if not form.is_valid():
        return _new_page(request, form, status=400)
    data = form.cleaned_data
    try:
        approval = approval_submit(
            cascade_run=data["cascade_run"],
            stage=data["stage"],
            report=data["report"],
            settings=GateSettings(
                kappa_min=data["kappa_min"], precision_low_min=data["precision_low_min"]
            ),
            reason=data["reason"],
            user=request.user,
        )
    except ApplicationError as error:
        form_error_add(form, error)
        return _new_page(request, form, status=400)
    messages.success(request, f"Applying the verdicts of cascade #{approval.cascade_run_id}.")
    return redirect("review:approval_detail", pk=approval.pk)


def _context(approval: Approval) -> dict:
    return {
        "status_url": reverse("review:approval_detail", args=[approval.pk]),
        "cancel_url": reverse("review:approval_cancel", args=[approval.pk]),
    }


@require_GET
@role_required(*CAN_READ_DATA)
def approval_detail(request, pk: int):
    try:
        approval = approval_get(approval_id=pk)
    except Approval.DoesNotExist:
        raise Http404("no such approval") from None
    can_revoke = approval.revoked_at is None and has_role(request.user, *CAN_CURATE)
    return job_page(
        request,
        approval,
        template="review/approval_detail.html",
        context={
            "section": "approvals",
            "approval": approval,
            "gate": approval.gate,
            "revoke_form": ApprovalRevokeForm() if can_revoke else None,
            "hide_stats": True,
            **_context(approval),
        },
    )


@require_POST
@role_required(*CAN_CURATE)
def approval_cancel(request, pk: int):
    return job_cancel(request, get_object_or_404(Approval, pk=pk), context=_context)


@require_POST
@role_required(*CAN_CURATE)
def approval_revoke_view(request, pk: int):
    approval = get_object_or_404(Approval, pk=pk)
    form = ApprovalRevokeForm(request.POST)
    form.is_valid()
    try:
        approval_revoke(
            approval=approval, user=request.user, reason=form.cleaned_data.get("reason", "")
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            f"Approval #{approval.pk} revoked: later snapshots leave its verdicts out; "
            "earlier snapshots do not change.",
        )
    return redirect("review:approval_detail", pk=approval.pk)
