"""The "Synthesize" form."""

from decimal import Decimal

from django import forms

from ..models import SynthesisNegativeMode
from .services import MAX_SAMPLE, synthesis_generator_defaults


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
