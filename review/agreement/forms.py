from django import forms

from curation.models import Dataset

from ..models import ReviewCampaign


class AgreementReportForm(forms.Form):
    """What the report covers: one campaign, every campaign of a dataset, or (neither)
    every campaign."""

    campaign = forms.ModelChoiceField(
        queryset=ReviewCampaign.objects.select_related("dataset").order_by("-id"),
        required=False,
        empty_label="every campaign",
    )
    dataset = forms.ModelChoiceField(
        queryset=Dataset.objects.order_by("name"),
        required=False,
        empty_label="any dataset",
        help_text="with no campaign: every campaign of this dataset",
    )
    partly_relevant_is_false_negative = forms.BooleanField(
        required=False,
        label="Count “partly relevant” as a false negative",
        help_text="off: only “relevant” is a false negative (RLHN's “better”); match your "
        "cascade's false-negative tags",
    )
