"""The "Mine negatives" form."""

from django import forms

from ..models import MiningSampling

PREFIX_CHOICES = [
    ("auto", "the model family's own (E5: query: / passage: )"),
    ("custom", "the two below"),
    ("none", "none"),
]


class MiningLaunchForm(forms.Form):
    model_name = forms.CharField(
        label="Model", max_length=500, required=False,
        help_text="A Hugging Face id (intfloat/e5-base-v2) or a folder on the workers; "
        "empty: the configured default (all-MiniLM-L6-v2, offline).",
    )  # fmt: skip
    prefixes = forms.ChoiceField(choices=PREFIX_CHOICES, initial="auto")
    # Prefixes end in a space that matters ("query: "): never strip them.
    query_prefix = forms.CharField(max_length=200, required=False, strip=False)
    passage_prefix = forms.CharField(max_length=200, required=False, strip=False)
    batch_size = forms.IntegerField(min_value=1, max_value=4096, initial=64)
    max_seq_length = forms.IntegerField(
        label="Max sequence length", min_value=1, max_value=32768, required=False,
        help_text="Tokens per text; empty: the model's own.",
    )  # fmt: skip
    approximate = forms.BooleanField(
        required=False, help_text="An IVF index instead of exact search (large corpora)."
    )
    # Ranks count the passages the search returns for a query, positives left out, best = 1;
    # negatives come from ranks range_min + 1 … range_max (mining/core.py).
    range_min = forms.IntegerField(
        label="Ranks skipped", min_value=0, initial=0,
        help_text="Skip this many of the best-ranked non-positive passages (the likeliest "
        "unlabelled positives); 0: start at rank 1.",
    )  # fmt: skip
    range_max = forms.IntegerField(
        label="Deepest rank", min_value=1, initial=100,
        help_text="Negatives come from the ranks after the skipped ones down to this one "
        "(ranks count the non-positive passages the search returns, best = 1).",
    )  # fmt: skip
    num_negatives = forms.IntegerField(label="Negatives per query", min_value=1, initial=15)
    absolute_margin = forms.FloatField(
        min_value=0, required=False,
        help_text="Keep a negative only if it scores at least this much below the lowest positive.",
    )  # fmt: skip
    relative_margin = forms.FloatField(
        min_value=0, max_value=0.999, required=False,
        help_text="0.05 = NV-Retriever's rule: at most 95% of the lowest positive's score.",
    )  # fmt: skip
    max_score = forms.FloatField(
        label="Max score", required=False,
        help_text="Keep a negative only if its score (the model's similarity to the query) is "
        "at most this; empty: no bound.",
    )  # fmt: skip
    min_score = forms.FloatField(
        label="Min score", required=False,
        help_text="Keep a negative only if its score is at least this (drops easy negatives); "
        "empty: no bound.",
    )  # fmt: skip
    sampling = forms.ChoiceField(choices=MiningSampling.choices, initial=MiningSampling.TOP)
    seed = forms.IntegerField(min_value=0, initial=0)
    teacher_flag_ratio = forms.FloatField(
        label="Teacher flag ratio", min_value=0.0001, required=False, initial=0.95,
        help_text="The stage-0 judge marks a negative relevant when it scores at least this "
        "fraction of its positive; empty: write no judgments.",
    )  # fmt: skip

    def clean(self):
        data = super().clean()
        if data.get("prefixes") == "auto":
            data["query_prefix"] = data["passage_prefix"] = None
        elif data.get("prefixes") == "none":
            data["query_prefix"] = data["passage_prefix"] = ""
        if (
            data.get("range_min") is not None
            and data.get("range_max") is not None
            and data["range_min"] >= data["range_max"]
        ):
            self.add_error("range_max", "must be larger than the ranks skipped")
        return data

    def service_options(self) -> dict:
        data = self.cleaned_data
        names = ("model_name", "query_prefix", "passage_prefix", "batch_size", "max_seq_length",
                 "approximate", "range_min", "range_max", "num_negatives", "absolute_margin",
                 "relative_margin", "max_score", "min_score", "sampling", "seed",
                 "teacher_flag_ratio")  # fmt: skip
        return {name: data[name] for name in names}
