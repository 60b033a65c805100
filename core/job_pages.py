"""The job page pattern, shared by every kind of job (import, export, mining, cascade,
synthesis, agreement report, training, evaluation).

A job page renders once in full. While the job is queued or running, its status section
(``templates/htmx/_job_status.html``) asks for itself every second or two; the view answers
with the fragment alone. Once the job ended the answer is 286, which stops the polling, with
``HX-Refresh`` so that the whole page reloads in its final state: buttons that depend on the
outcome (Evaluate, Open the dataset), headers and tables outside the status section, never a
stale "queued" banner.
"""

from dataclasses import dataclass

from django.contrib import messages
from django.shortcuts import redirect, render
from django_htmx.http import HttpResponseStopPolling

from .jobs import job_request_cancel
from .models import FINISHED_STATUSES, USABLE_STATUSES
from .roles import Role, has_role

STATUS_FRAGMENT = "htmx/_job_status.html"


@dataclass(frozen=True)
class StatsLayout:
    """How a kind's page lists its job's ``stats`` (context ``stats_layout``): ``shown`` as
    (key, label) in reading order, the outcome first; ``hidden`` names internals (a cache
    key, how the merge checked foreign keys) that the row and the API keep for engineers. A
    key in neither is still shown, last and labelled from its spelling, so a figure added
    later is never lost."""

    shown: tuple[tuple[str, str], ...]
    hidden: frozenset[str] = frozenset()


def job_context(request, job, context: dict) -> dict:
    """What the status fragment reads besides the page's own context."""
    return {
        "stats_layout": None,  # every key in stored order, unless the kind's page names one
        **context,
        "job": job,
        "finished": job.status in FINISHED_STATUSES,
        "usable": job.status in USABLE_STATUSES,
        "show_traceback": bool(job.error_traceback) and has_role(request.user, Role.ADMIN),
    }


def job_status_response(request, job, *, context: dict, fragment: str = STATUS_FRAGMENT):
    """The status fragment; once the job ended, 286 (stop polling) and a page reload."""
    context = job_context(request, job, context)
    response = render(request, fragment, context)
    if not context["finished"]:
        return response
    response = HttpResponseStopPolling(response.content)
    response["HX-Refresh"] = "true"
    return response


def job_page(request, job, *, template: str, context: dict, fragment: str = STATUS_FRAGMENT):
    """The job's page, or only its status fragment when htmx polls for it."""
    if request.htmx and not request.htmx.history_restore_request:
        return job_status_response(request, job, context=context, fragment=fragment)
    return render(request, template, job_context(request, job, context))


def job_cancel(request, job, *, context):
    """Ask ``job`` to stop. htmx gets the fresh status fragment (``context(job)`` is the
    page's context, whose ``status_url`` is the job page); a plain form post is sent back
    to the page."""
    job_request_cancel(job=job)
    job.refresh_from_db()
    page_context = context(job)
    if request.htmx:
        return job_status_response(request, job, context=page_context)
    messages.info(request, "Cancellation requested; the job stops at its next step.")
    return redirect(page_context["status_url"])
