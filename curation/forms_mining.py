"""The "Mine negatives" and "Synthesize" forms."""

from decimal import Decimal

from django import forms

from .models import MiningSampling, SynthesisNegativeMode
from .services.synthesis import MAX_SAMPLE, synthesis_generator_defaults

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
    range_min = forms.IntegerField(
        min_value=0, initial=0, help_text="Skip this many of the best-ranked non-positives."
    )
    range_max = forms.IntegerField(min_value=1, initial=100, help_text="Look no deeper than this.")
    num_negatives = forms.IntegerField(label="Negatives per query", min_value=1, initial=15)
    absolute_margin = forms.FloatField(
        min_value=0, required=False,
        help_text="Keep a negative only if it scores at least this much below the lowest positive.",
    )  # fmt: skip
    relative_margin = forms.FloatField(
        min_value=0, max_value=0.999, required=False,
        help_text="0.05 = NV-Retriever's rule: at most 95% of the lowest positive's score.",
    )  # fmt: skip
    max_score = forms.FloatField(required=False)
    min_score = forms.FloatField(required=False)
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
            self.add_error("range_max", "must be larger than the range start")
        return data

    def service_options(self) -> dict:
        data = self.cleaned_data
        names = ("model_name", "query_prefix", "passage_prefix", "batch_size", "max_seq_length",
                 "approximate", "range_min", "range_max", "num_negatives", "absolute_margin",
                 "relative_margin", "max_score", "min_score", "sampling", "seed",
                 "teacher_flag_ratio")  # fmt: skip
        return {name: data[name] for name in names}


class SynthesisLaunchForm(forms.Form):
    sample_size = forms.IntegerField(
        min_value=1, max_value=MAX_SAMPLE, initial=100,
        help_text="Passages drawn (seeded) from the dataset's corpus.",
    )  # fmt: skip
    seed = forms.IntegerField(min_value=0, initial=0)
    negative_mode = forms.ChoiceField(
        choices=SynthesisNegativeMode.choices, initial=SynthesisNegativeMode.GENERATE,
        help_text="generate: the LLM writes a hard negative; mine: the teacher picks one "
        "from the corpus.",
    )  # fmt: skip
    teacher_model = forms.CharField(
        max_length=500, required=False,
        help_text="Embedding model of the filter; empty: the configured default.",
    )  # fmt: skip
    top_k = forms.IntegerField(
        label="Top k", min_value=1, initial=3,
        help_text="Keep a triplet only if its passage ranks in the top k for its own query.",
    )  # fmt: skip
    negative_max_ratio = forms.FloatField(
        min_value=0.01, max_value=1.5, initial=0.95,
        help_text="…and its negative scores at most this fraction of the positive.",
    )  # fmt: skip
    budget_usd = forms.DecimalField(
        label="Budget (USD)", required=False, min_value=Decimal("0.0001"), decimal_places=4,
        help_text="Optional: the run stops cleanly before it would spend more.",
    )  # fmt: skip
    model = forms.CharField(label="Generator model", max_length=200)
    # Not a URLField: "http://vllm:8000/v1" (a host name without a dot) is a fine endpoint.
    base_url = forms.RegexField(
        label="Generator base URL", max_length=500, regex=r"^https?://\S+$",
        error_messages={"invalid": "An http:// or https:// address."},
        help_text="Any OpenAI-compatible endpoint (OpenAI, Azure, vLLM, Ollama, llama.cpp).",
    )  # fmt: skip
    api_key_env = forms.RegexField(
        label="API key variable", regex=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$", max_length=128,
        help_text="The NAME of the environment variable that holds the key on the workers.",
        error_messages={"invalid": "Name the environment variable, never the key itself."},
    )  # fmt: skip
    price_in_per_m = forms.DecimalField(
        label="USD per 1M input tokens", min_value=Decimal(0), decimal_places=4
    )
    price_out_per_m = forms.DecimalField(
        label="USD per 1M output tokens", min_value=Decimal(0), decimal_places=4
    )
    concurrency = forms.IntegerField(min_value=1, max_value=512)
    temperature = forms.FloatField(min_value=0, max_value=2)
    max_tokens = forms.IntegerField(min_value=16, max_value=32768)
    json_mode = forms.BooleanField(required=False, help_text="response_format json_object.")

    GENERATOR_FIELDS = ("model", "base_url", "api_key_env", "price_in_per_m", "price_out_per_m",
                        "concurrency", "temperature", "max_tokens", "json_mode")  # fmt: skip

    def __init__(self, *args, **kwargs):
        defaults = synthesis_generator_defaults()
        kwargs.setdefault("initial", {})
        for name in self.GENERATOR_FIELDS:
            kwargs["initial"].setdefault(name, defaults[name])
        super().__init__(*args, **kwargs)

    def generator(self) -> dict:
        data = self.cleaned_data
        generator = {name: data[name] for name in self.GENERATOR_FIELDS}
        for name in ("price_in_per_m", "price_out_per_m"):
            generator[name] = str(generator[name])
        return generator

    def run_fields(self):
        return [self[name] for name in self.fields if name not in self.GENERATOR_FIELDS]

    def generator_fields(self):
        return [self[name] for name in self.GENERATOR_FIELDS]
