from django import forms

from core.models import USABLE_STATUSES, JobStatus
from curation.models import CascadeRun

from ..models import AgreementReport
from .gate import DEFAULT_KAPPA_MIN, DEFAULT_PRECISION_LOW_MIN


class ApprovalForm(forms.Form):
    """What to approve (a cascade run's final verdicts or one stage's), the agreement report
    that measured it, the gate's thresholds, and a reason (required when the gate fails)."""

    cascade_run = forms.ModelChoiceField(
        queryset=CascadeRun.objects.filter(status__in=USABLE_STATUSES)
        .select_related("dataset")
        .order_by("-id"),
        label="Cascade run",
        empty_label=None,
    )
    stage = forms.IntegerField(
        required=False,
        min_value=1,
        label="Stage",
        help_text="empty: the final verdicts (per passage, the highest stage that judged it)",
    )
    report = forms.ModelChoiceField(
        queryset=AgreementReport.objects.filter(status=JobStatus.SUCCEEDED, campaign__isnull=False)
        .select_related("campaign")
        .defer("result")
        .order_by("-id"),
        required=False,
        label="Agreement report",
        empty_label="none (nothing measured: the gate fails)",
        help_text="the report of a review campaign sampled from this cascade run",
    )
    kappa_min = forms.FloatField(
        initial=DEFAULT_KAPPA_MIN, min_value=-1, max_value=1, label="Gate: κ at least"
    )
    precision_low_min = forms.FloatField(
        initial=DEFAULT_PRECISION_LOW_MIN,
        min_value=0,
        max_value=1,
        label="Gate: precision's CI lower end at least",
    )
    reason = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Reason",
        help_text="required when the gate is not met; shown on every snapshot that uses "
        "this approval",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["report"].label_from_instance = lambda r: (
            f"report #{r.pk} · campaign {r.campaign.name}"
        )
        self.fields["cascade_run"].label_from_instance = lambda run: (
            f"cascade #{run.pk} · {run.dataset.name} · {len(run.stages)} stages"
        )


class ApprovalRevokeForm(forms.Form):
    reason = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), label="Why revoke"
    )
