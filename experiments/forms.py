"""The "Compare policies" form, rendered beside the training form."""

from django import forms

from evaluation.forms import TaskChoiceForm
from evaluation.models import EvaluationMode

POLICY_CHOICES = [
    ("default", "default: every candidate as imported"),
    ("remove", "remove: drop queries with a confirmed false negative"),
    ("remove_hn", "remove_hn: drop only the false negatives"),
    ("relabel", "relabel: false negatives become positives"),
]


class PolicyComparisonForm(TaskChoiceForm):
    """What a comparison adds to the training form (rendered beside it, prefix ``train``):
    the policies, k and the evaluation."""

    name = forms.CharField(
        max_length=150, required=False,
        help_text="Names the runs on the leaderboard (\u201cname \u00b7 policy\u201d); "
        "default: the dataset.",
    )  # fmt: skip
    policies = forms.MultipleChoiceField(
        choices=POLICY_CHOICES, widget=forms.CheckboxSelectMultiple,
        initial=["default", "remove_hn", "relabel"],
        help_text="RLHN compares default, remove_hn and relabel.",
    )  # fmt: skip
    max_false_negatives = forms.IntegerField(
        label="Max false negatives per query (k)", min_value=0, initial=7,
        help_text="A query with more than k confirmed false negatives is dropped as ambiguous.",
    )  # fmt: skip
    mode = forms.ChoiceField(choices=EvaluationMode.choices, initial=EvaluationMode.FULL)
    field_order = ["name", "policies", "max_false_negatives", "tasks", "other_tasks"]

    def __init__(self, *args, task_options, **kwargs):
        super().__init__(*args, task_options=task_options, **kwargs)
        self.fields["tasks"].help_text = "Evaluated for each fine-tune and for the base model."
