"""The "Run cascade" form: stage settings prefilled from the environment, run options."""

from decimal import Decimal

from django import forms

from ..llm.stages import StageSettings
from ..models import CascadeMode
from .create import TAG_MEANINGS, TAGS, cascade_defaults

TAG_CHOICES = [(tag, f"{tag}: {TAG_MEANINGS[tag]}") for tag in TAGS]
# Per-stage fields shown on the form; the others (timeouts, attempts, temperature …) keep
# their environment values.
STAGE_FIELDS = ("model", "base_url", "api_key_env", "price_in_per_m", "price_out_per_m",
                "concurrency", "rpm", "json_mode", "max_tokens")  # fmt: skip


class CascadeLaunchForm(forms.Form):
    mode = forms.ChoiceField(
        choices=CascadeMode.choices,
        help_text="batch: OpenAI Batch API at half price, answers within 24 h.",
    )
    budget_usd = forms.DecimalField(
        label="Budget (USD)", required=False, min_value=Decimal("0.0001"), decimal_places=4,
        help_text="The run stops before a call would take it over this; empty: no cap.",
    )  # fmt: skip
    forward_tags = forms.MultipleChoiceField(
        choices=TAG_CHOICES, widget=forms.CheckboxSelectMultiple,
        label="Forward when tagged",
        help_text="A query goes on to the next stage when the judge gives one of its negatives "
        "one of these tags (or its answer could not be read).",
    )  # fmt: skip
    false_negative_tags = forms.MultipleChoiceField(
        choices=TAG_CHOICES, widget=forms.CheckboxSelectMultiple,
        label="False negative when tagged",
        help_text="A negative with one of these tags is judged 'relevant': a false negative.",
    )  # fmt: skip
    max_negatives = forms.IntegerField(min_value=1, max_value=100, help_text="Negatives per call.")
    max_positives = forms.IntegerField(
        label="Max positives", required=False, min_value=1,
        help_text="Ground-truth passages shown per call (first by id); empty: all (RLHN).",
    )  # fmt: skip
    output_tokens_per_call = forms.IntegerField(
        min_value=1, help_text="Estimate only: output tokens assumed per call (RLHN: 2,048)."
    )
    flag_rate = forms.FloatField(
        min_value=0, max_value=1,
        help_text="Estimate only: share of queries each stage forwards (RLHN MS MARCO: 0.8).",
    )  # fmt: skip

    def __init__(self, *args, **kwargs):
        self.environment_error = ""
        try:
            defaults = cascade_defaults()
        except ValueError as error:  # a malformed SIEVE_LLM_STAGE<n>_* variable
            self.environment_error = f"{error}; the built-in defaults are shown instead."
            defaults = cascade_defaults(environ={})
        self.base_stages = [StageSettings.from_dict(s) for s in defaults["stages"]]
        kwargs.setdefault("initial", {})
        for key in ("mode", "forward_tags", "false_negative_tags", "max_negatives",
                    "max_positives", "output_tokens_per_call", "flag_rate"):  # fmt: skip
            kwargs["initial"].setdefault(key, defaults[key])
        super().__init__(*args, **kwargs)
        for stage in self.base_stages:
            n = stage.number
            prefix = f"stage{n}_"
            self.fields[prefix + "model"] = forms.CharField(
                label=f"Stage {n} model", initial=stage.model
            )
            self.fields[prefix + "base_url"] = forms.CharField(
                label=f"Stage {n} base URL", initial=stage.base_url,
                help_text="Any OpenAI-compatible endpoint: OpenAI, Azure, vLLM, Ollama, llama.cpp.",
            )  # fmt: skip
            self.fields[prefix + "api_key_env"] = forms.RegexField(
                label=f"Stage {n} key variable", regex=r"^[A-Za-z_][A-Za-z0-9_]*$",
                initial=stage.api_key_env,
                help_text="Name of the environment variable that holds the key on the workers.",
            )  # fmt: skip
            self.fields[prefix + "price_in_per_m"] = forms.DecimalField(
                label=f"Stage {n} USD / 1M input tokens",
                min_value=0,
                initial=Decimal(stage.price_in_per_m),
            )
            self.fields[prefix + "price_out_per_m"] = forms.DecimalField(
                label=f"Stage {n} USD / 1M output tokens",
                min_value=0,
                initial=Decimal(stage.price_out_per_m),
            )
            self.fields[prefix + "concurrency"] = forms.IntegerField(
                label=f"Stage {n} concurrency",
                min_value=1,
                max_value=1024,
                initial=stage.concurrency,
            )
            self.fields[prefix + "rpm"] = forms.IntegerField(
                label=f"Stage {n} requests / minute", min_value=0, initial=stage.rpm,
                help_text="0: no limit.",
            )  # fmt: skip
            self.fields[prefix + "json_mode"] = forms.BooleanField(
                label=f"Stage {n} JSON mode", required=False, initial=stage.json_mode
            )
            self.fields[prefix + "max_tokens"] = forms.IntegerField(
                label=f"Stage {n} max output tokens", min_value=16, initial=stage.max_tokens
            )

    def run_fields(self):
        return [
            self[name]
            for name in (
                "mode",
                "budget_usd",
                "forward_tags",
                "false_negative_tags",
                "max_negatives",
                "max_positives",
                "output_tokens_per_call",
                "flag_rate",
            )
        ]

    def stage_fieldsets(self):
        return [
            (stage.number, [self[f"stage{stage.number}_{name}"] for name in STAGE_FIELDS])
            for stage in self.base_stages
        ]

    def stages(self) -> list[StageSettings]:
        data = self.cleaned_data
        result = []
        for stage in self.base_stages:
            prefix = f"stage{stage.number}_"
            changes = {name: data[prefix + name] for name in STAGE_FIELDS}
            changes["price_in_per_m"] = str(changes["price_in_per_m"])
            changes["price_out_per_m"] = str(changes["price_out_per_m"])
            changes["base_url"] = changes["base_url"].strip()
            result.append(stage.with_changes(**changes))
        return result
