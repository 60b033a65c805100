from django import forms
from django.core.exceptions import ValidationError

from ..models import DatasetFormat, ExportFormat, SnapshotPolicy
from .uploads import ACCEPTED_HELP, ACCEPTED_SUFFIXES, upload_suffix


class ImportUploadForm(forms.Form):
    file = forms.FileField(
        help_text=ACCEPTED_HELP,
        widget=forms.ClearableFileInput(attrs={"accept": ",".join(ACCEPTED_SUFFIXES)}),
    )
    dataset_name = forms.CharField(max_length=200)
    corpus_name = forms.CharField(
        max_length=200, required=False, help_text="Defaults to the dataset name."
    )
    format = forms.ChoiceField(
        choices=[("", "auto-detect"), *DatasetFormat.choices], required=False
    )
    split = forms.CharField(
        max_length=50, required=False, help_text="BEIR only: which qrels/<split>.tsv to read."
    )
    min_relevance = forms.IntegerField(
        min_value=0,
        required=False,
        help_text="BEIR only: lowest qrels score that counts as a positive.",
    )

    def clean_file(self):
        uploaded = self.cleaned_data["file"]
        if upload_suffix(uploaded.name) is None:
            raise ValidationError(
                "Unsupported file type; expected one of %(suffixes)s.",
                params={"suffixes": ", ".join(ACCEPTED_SUFFIXES)},
            )
        return uploaded

    def options(self) -> dict:
        """The importer's ``options``: only what the user set, so its defaults apply."""
        options = {}
        if self.cleaned_data.get("split"):
            options["split"] = self.cleaned_data["split"]
        if self.cleaned_data.get("min_relevance") is not None:
            options["min_relevance"] = self.cleaned_data["min_relevance"]
        return options


class SnapshotFreezeForm(forms.Form):
    policy = forms.ChoiceField(choices=SnapshotPolicy.choices, initial=SnapshotPolicy.DEFAULT)
    format = forms.ChoiceField(choices=ExportFormat.choices, initial=ExportFormat.BGE)
    max_false_negatives = forms.IntegerField(
        label="Max false negatives per query (k)",
        min_value=0,
        initial=7,
        help_text="A query with more than k confirmed false negatives is dropped as ambiguous.",
    )
    held_out_percent = forms.FloatField(
        label="Hold out for evaluation (%)",
        min_value=0,
        max_value=50,
        initial=0,
        required=False,
        help_text="This share of the queries (picked by the seed and each query's id, so "
        "every snapshot frozen with the same share and seed holds out the same ones) is left "
        "out of the training file and becomes an evaluation task of its own.",
    )
    held_out_seed = forms.IntegerField(
        label="Hold-out seed", min_value=0, initial=0, required=False
    )

    def held_out(self) -> dict:
        """The service's ``held_out`` (a fraction) and ``held_out_seed``."""
        percent = self.cleaned_data.get("held_out_percent") or 0
        return {
            "held_out": percent / 100,
            "held_out_seed": self.cleaned_data.get("held_out_seed") or 0,
        }
