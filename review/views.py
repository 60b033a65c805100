"""Review campaigns (curators), the review page (annotators), the adjudication queue.

The review page is one htmx pane (``templates/review/_pane.html``): every verdict, undo or
skip is a small POST whose answer is the next pane, swapped in place. Without JavaScript the
same forms post normally and are redirected back to the page.
"""

import uuid

from django.contrib import messages
from django.core.exceptions import BadRequest, PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.errors import ApplicationError
from core.http import form_error_add
from core.roles import CAN_CURATE, CAN_READ_DATA, Role, has_role, role_required
from curation.models import Dataset, Verdict
from review import selectors as reads
from review.counters import review_counters
from review.forms import AdjudicationForm, CampaignCreateForm, GuidelinesForm
from review.history import review_history
from review.models import ReviewCampaign, Stratum
from review.services.campaigns import (
    review_campaign_create,
    review_campaign_guidelines_set,
    review_campaign_status_set,
)
from review.services.decisions import adjudication_decide, campaign_consensus_decide
from review.services.listwise import review_list_next_for_user, review_list_submit
from review.services.queue import (
    judgment_submit,
    review_item_next_for_user,
    review_submission_undo,
)
from review.services.queue_rules import LOCK_SECONDS

# What the page's buttons send. Synthetic triplets are approved (kept, possibly with an
# edited query) or rejected; "unsure" is the skip key everywhere.
ACTIONS = {
    "relevant": Verdict.RELEVANT,
    "not_relevant": Verdict.NOT_RELEVANT,
    "partly_relevant": Verdict.PARTLY_RELEVANT,
    "unsure": Verdict.UNSURE,
    "approve": Verdict.RELEVANT,
    "reject": Verdict.NOT_RELEVANT,
}
REVIEWER_ROLES = (Role.ANNOTATOR, Role.CURATOR, Role.ADMIN)
# The session key of the list-wise mode (per user session, every campaign): the review page
# then shows all the items of one query at once (review/services/listwise.py).
LISTWISE_SESSION_KEY = "review_listwise"


def _int(value, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be a whole number") from None


def _campaign(pk: int) -> ReviewCampaign:
    try:
        return reads.campaign_get(campaign_id=pk)
    except ReviewCampaign.DoesNotExist:
        raise Http404("no such campaign") from None


# --- campaigns (curators) --------------------------------------------------------------------


@require_GET
@role_required(Role.ANNOTATOR)
def annotator_home(request):
    """Where an annotator lands (the home page sends them here): their campaigns."""
    campaigns = reads.campaigns_for_annotator(user=request.user)
    return render(request, "review/annotator_home.html", {"campaigns": campaigns})


@require_GET
@role_required(*CAN_READ_DATA)
def campaign_list(request):
    page = reads.campaign_list_page(
        after=_int(request.GET.get("after"), "after"),
        before=_int(request.GET.get("before"), "before"),
    )
    return render(request, "review/campaign_list.html", {"page": page, "section": "review"})


@require_http_methods(["GET", "POST"])
@role_required(*CAN_CURATE)
def campaign_create(request):
    form = CampaignCreateForm(request.POST or None, initial={"dataset": request.GET.get("dataset")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            campaign = review_campaign_create(
                name=data["name"],
                dataset=data["dataset"],
                strata=form.strata(),
                annotators=data["annotators"],
                overlap=data["overlap"],
                blind=data["blind"],
                seed=data["seed"],
                guidelines=data["guidelines"],
                created_by=request.user,
            )
        except ApplicationError as exc:
            form_error_add(form, exc)
        else:
            messages.success(
                request, f"Campaign {campaign.name} created with {campaign.item_count} items."
            )
            return redirect("review:campaign_detail", pk=campaign.pk)
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "section": "review", "available": _strata_available(request)}
    return render(request, "review/campaign_form.html", context, status=status)


def _strata_available(request):
    """The chosen dataset's candidates per stratum (the dataset select asks for them with
    htmx as it changes; a GET with ?dataset= or a form sent back shows them too)."""
    dataset_id = _int((request.POST or request.GET).get("dataset"), "dataset")
    dataset = Dataset.objects.filter(pk=dataset_id).first() if dataset_id else None
    return reads.strata_available(dataset=dataset) if dataset else None


@require_GET
@role_required(*CAN_READ_DATA)
def campaign_detail(request, pk: int):
    campaign = _campaign(pk)
    return render(
        request,
        "review/campaign_detail.html",
        {
            "section": "review",
            "campaign": campaign,
            "strata": reads.campaign_strata_counts(campaign=campaign),
            "annotators": reads.campaign_annotators(campaign=campaign),
            "is_campaign_annotator": reads.campaign_is_annotator(
                campaign=campaign, user=request.user
            ),
        },
    )


# --- the review page (annotators) ------------------------------------------------------------


def _reviewer_campaign(request, pk: int) -> ReviewCampaign:
    """The campaign, if the user is one of its annotators (and may review at all)."""
    # The row, the membership and the user's roles in one statement: a hot path.
    campaign = reads.reviewer_campaign_get(campaign_id=pk, user=request.user)
    if campaign is None:
        raise Http404("no such campaign")
    if not has_role(request.user, *REVIEWER_ROLES) or not campaign.is_annotator:
        raise PermissionDenied
    return campaign


def _pane(
    request, campaign: ReviewCampaign, *, item=..., last=None, notice: str = "", error: str = ""
):
    """Render the review pane: counters, the last answer (with the machine verdicts revealed)
    and the item to judge now. ``item`` is the next item and ``last`` the answer just saved,
    when the caller already has them."""
    if request.session.get(LISTWISE_SESSION_KEY):
        return _list_pane(request, campaign, notice=notice, error=error)
    if item is ...:
        item = review_item_next_for_user(campaign=campaign, user=request.user)
    # Blind campaigns never put a machine verdict about an unanswered item in the HTML.
    pane = reads.review_pane(campaign=campaign, user=request.user, item=item, last=last)
    context = {
        "campaign": campaign,
        "view": pane.view,
        "last": pane.last,
        "blind_answer": pane.blind_answer,
        "counters": review_counters(campaign=campaign, user=request.user),
        # A fresh token per rendered item: a double click sends the same one twice.
        "token": uuid.uuid4().hex,
        "notice": notice,
        "error": error,
        "Stratum": Stratum,
        "lock_minutes": max(1, round(LOCK_SECONDS / 60)),
    }
    return _render_pane(request, "review/_pane.html", context)


def _render_pane(request, pane_template: str, context: dict):
    context["pane_template"] = pane_template
    return render(request, pane_template if request.htmx else "review/review.html", context)


def _list_pane(request, campaign, *, items=..., last=None, notice: str = "", error: str = ""):
    """The list-wise pane: the query, its positives and every item of it the user can still
    answer (all held for them), and the answers just saved with the judges' verdicts."""
    if items is ...:
        items = review_list_next_for_user(campaign=campaign, user=request.user)
    pane = reads.review_list_pane(campaign=campaign, user=request.user, items=items, last=last)
    context = {
        "campaign": campaign,
        "pane": pane,
        "counters": review_counters(campaign=campaign, user=request.user),
        # One token per rendered list; each row's answer is sent as this token + its id.
        "token": uuid.uuid4().hex,
        "notice": notice,
        "error": error,
        "lock_minutes": max(1, round(LOCK_SECONDS / 60)),
        "listwise": True,
    }
    return _render_pane(request, "review/_list_pane.html", context)


@require_GET
def review_page(request, pk: int):
    campaign = _reviewer_campaign(request, pk)
    return _pane(request, campaign)


def _after_post(request, campaign, *, item=..., last=None, notice="", error=""):
    if request.htmx:
        return _pane(request, campaign, item=item, last=last, notice=notice, error=error)
    if error:
        messages.error(request, error)
    elif notice:
        messages.info(request, notice)
    return redirect("review:review_page", pk=campaign.pk)


@require_POST
def review_submit(request, pk: int):
    campaign = _reviewer_campaign(request, pk)
    action = request.POST.get("verdict", "")
    if action not in ACTIONS:
        raise BadRequest("unknown verdict")
    item_id = _int(request.POST.get("item"), "item")
    if item_id is None:
        raise BadRequest("item is required")
    try:
        result = judgment_submit(
            campaign=campaign,
            item_id=item_id,
            user=request.user,
            verdict=ACTIONS[action],
            client_token=request.POST.get("token", ""),
            note=request.POST.get("note", ""),
            # The edit box holds the query the annotator approves; unchanged means as is.
            edited_query=request.POST.get("edited_query", "") if action == "approve" else "",
        )
    except ApplicationError as exc:
        return _after_post(request, campaign, error=exc.message)
    # A new answer is the user's latest; a duplicate may not be (it could have been undone).
    last = None if result.duplicate else result.submission
    return _after_post(request, campaign, item=result.next_item, last=last)


@require_POST
def review_undo(request, pk: int):
    campaign = _reviewer_campaign(request, pk)
    try:
        review_submission_undo(
            campaign=campaign,
            user=request.user,
            submission_id=_int(request.POST.get("submission"), "submission"),
        )
    except ApplicationError as exc:
        return _after_post(request, campaign, error=exc.message)
    notice = "Your answer was taken back; judge it again."
    if campaign.blind:
        notice = (
            "Your answer was taken back from the queue; judge it again. Your blind answer "
            "stays on record for the agreement study."
        )
    return _after_post(request, campaign, notice=notice)


@require_POST
def review_mode(request, pk: int):
    """Switch between one item at a time and the list-wise mode (kept in the session). The
    holds follow: the list of the item on screen, or one item of the list."""
    campaign = _reviewer_campaign(request, pk)
    mode = request.POST.get("mode", "")
    if mode not in ("list", "single"):
        raise BadRequest("mode is list or single")
    request.session[LISTWISE_SESSION_KEY] = mode == "list"
    return _after_post(request, campaign)


@require_POST
def review_list_submit_view(request, pk: int):
    """The list-wise submit: one verdict per answered row (``verdict-<item>``), all saved by
    the one-item queue's rules; rows left unanswered come back in the next list."""
    campaign = _reviewer_campaign(request, pk)
    answers = []
    for value in request.POST.getlist("item"):
        item_id = _int(value, "item")
        action = request.POST.get(f"verdict-{item_id}", "")
        if action and action not in ACTIONS:
            raise BadRequest("unknown verdict")
        if action:
            answers.append((item_id, ACTIONS[action]))
    try:
        result = review_list_submit(
            campaign=campaign,
            user=request.user,
            answers=answers,
            client_token=request.POST.get("token", ""),
        )
    except ApplicationError as exc:
        return _after_post(request, campaign, error=exc.message)
    error = ""
    if result.refused:
        reasons = "; ".join(sorted({why for _, why in result.refused}))
        error = f"{len(result.refused)} of your answers could not be saved: {reasons}."
    if not request.htmx:
        return _after_post(request, campaign, error=error)
    return _list_pane(
        request, campaign, items=result.next_items, last=result.submissions, error=error
    )


@require_GET
def review_history_page(request, pk: int):
    """The annotator's recent answers, each with its undo: a fragment for the pane's "recent
    answers" (htmx), a page of its own without JavaScript."""
    campaign = _reviewer_campaign(request, pk)
    context = {
        "campaign": campaign,
        "answers": review_history(campaign=campaign, user=request.user),
    }
    template = "review/_history.html" if request.htmx else "review/history.html"
    return render(request, template, context)


# --- adjudication (curators) -----------------------------------------------------------------


def _adjudication(request, campaign, *, form=None, status: int = 200):
    page = reads.adjudication_page(
        campaign=campaign,
        after=_int(request.GET.get("after"), "after"),
        before=_int(request.GET.get("before"), "before"),
    )
    return render(
        request,
        "review/adjudication.html",
        {
            "section": "review",
            "campaign": campaign,
            "page": page,
            "consensus": reads.consensus_count(campaign=campaign),
            "form": form,
            "Stratum": Stratum,
        },
        status=status,
    )


@require_GET
@role_required(*CAN_CURATE)
def adjudication_queue(request, pk: int):
    return _adjudication(request, _campaign(pk))


@require_POST
@role_required(*CAN_CURATE)
def adjudication_submit(request, pk: int):
    campaign = _campaign(pk)
    form = AdjudicationForm(request.POST)
    if not form.is_valid():
        return _adjudication(request, campaign, form=form, status=400)
    data = form.cleaned_data
    try:
        adjudication_decide(
            campaign=campaign,
            item_id=data["item"],
            label=data["label"],
            user=request.user,
            note=data["note"],
            query_text=data["query_text"],
        )
    except ApplicationError as exc:
        form.add_error(None, exc.message)
        return _adjudication(request, campaign, form=form, status=400)
    messages.success(request, f"Decided: {data['label']}.")
    return redirect("review:adjudication_queue", pk=campaign.pk)


@require_POST
@role_required(*CAN_CURATE)
def campaign_status(request, pk: int):
    campaign = _campaign(pk)
    try:
        campaign = review_campaign_status_set(
            campaign=campaign, status=request.POST.get("status", "")
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"The campaign is {campaign.status}.")
    return redirect("review:campaign_detail", pk=campaign.pk)


@require_POST
@role_required(*CAN_CURATE)
def campaign_guidelines(request, pk: int):
    campaign = _campaign(pk)
    form = GuidelinesForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(e for errors in form.errors.values() for e in errors))
        return redirect("review:campaign_detail", pk=campaign.pk)
    try:
        review_campaign_guidelines_set(
            campaign=campaign, guidelines=form.cleaned_data["guidelines"]
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Guidelines saved: annotators see them on their next page.")
    return redirect("review:campaign_detail", pk=campaign.pk)


@require_POST
@role_required(*CAN_CURATE)
def consensus_decide(request, pk: int):
    campaign = _campaign(pk)
    result = campaign_consensus_decide(campaign=campaign, user=request.user)
    messages.success(
        request,
        f"{result.decided} decisions recorded from agreeing reviewers "
        f"({result.relevant} relevant, {result.not_relevant} not relevant"
        + (f", {result.queries_edited} queries edited" if result.queries_edited else "")
        + ").",
    )
    return redirect("review:adjudication_queue", pk=campaign.pk)
