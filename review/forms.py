from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.urls import reverse

from core.roles import Role
from curation.models import Dataset, DecisionLabel
from review.models import Stratum


def reviewer_choices():
    """People who may review: annotators, curators and admins (viewers only read)."""
    roles = [Role.ANNOTATOR, Role.CURATOR, Role.ADMIN]
    return (
        get_user_model()
        .objects.filter(Q(groups__name__in=roles) | Q(is_superuser=True), is_active=True)
        .distinct()
        .order_by("username")
    )


class CampaignCreateForm(forms.Form):
    name = forms.CharField(max_length=200)
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.order_by("name"))
    stage2_flagged = forms.IntegerField(
        min_value=0, initial=0, label="Flagged by stage 2",
        help_text="negatives a stage-2 LLM judged relevant",
    )  # fmt: skip
    stage1_only = forms.IntegerField(
        min_value=0, initial=0, label="Flagged by stage 1 only",
        help_text="negatives stage 1 judged relevant and stage 2 did not",
    )  # fmt: skip
    unflagged = forms.IntegerField(
        min_value=0, initial=50, label="Unflagged negatives",
        help_text="imported or mined negatives no LLM flagged",
    )  # fmt: skip
    synthetic = forms.IntegerField(
        min_value=0, initial=0, label="Synthetic triplets",
        help_text="queries written by an LLM, with their passage",
    )  # fmt: skip
    seed = forms.IntegerField(initial=0, help_text="the same seed samples the same items")
    overlap = forms.IntegerField(
        min_value=1, max_value=20, initial=1, label="Annotators per item",
        help_text="each item goes to this many different annotators; with 2 or more the "
        "agreement report also compares people with each other",
    )  # fmt: skip
    blind = forms.BooleanField(
        required=False, initial=True,
        help_text="hide LLM verdicts until the annotator has answered",
    )  # fmt: skip
    guidelines = forms.CharField(
        required=False, max_length=20_000, widget=forms.Textarea(attrs={"rows": 5}),
        help_text="what annotators should know: shown on their review page (plain text)",
    )  # fmt: skip
    annotators = forms.ModelMultipleChoiceField(
        queryset=get_user_model().objects.none(), widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["annotators"].queryset = reviewer_choices()
        # Choosing a dataset shows how many candidates each stratum holds (htmx swaps the
        # counts box of the same page in; campaign_form.html).
        self.fields["dataset"].widget.attrs.update({
            "hx-get": reverse("review:campaign_create"), "hx-trigger": "change",
            "hx-target": "#strata-available", "hx-select": "#strata-available",
            "hx-swap": "outerHTML",
        })  # fmt: skip

    def strata(self) -> dict[str, int]:
        return {s: self.cleaned_data[s] for s in Stratum.values if self.cleaned_data.get(s)}

    def clean(self):
        cleaned = super().clean()
        if not any(cleaned.get(s) for s in Stratum.values):
            raise forms.ValidationError("Ask for at least one item in one stratum.")
        return cleaned


class GuidelinesForm(forms.Form):
    guidelines = forms.CharField(required=False, max_length=20_000, widget=forms.Textarea)


class AdjudicationForm(forms.Form):
    item = forms.IntegerField()
    label = forms.ChoiceField(choices=DecisionLabel.choices)
    note = forms.CharField(required=False, max_length=5000)
    query_text = forms.CharField(required=False, max_length=2000)
