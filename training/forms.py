"""The "Train" form on a snapshot page. Its initial values come from
``training_config_defaults()``; the service validates the whole config again (the API and the
CLI reach it without this form)."""

from django import forms

from .models import TrainingMethod

PRECISION_CHOICES = [
    ("auto", "auto: bf16 on a GPU that supports it, else fp32"),
    ("on", "bf16"),
    ("off", "fp32"),
]


class TrainingLaunchForm(forms.Form):
    name = forms.CharField(max_length=200, required=False, help_text="Shown on the leaderboard.")
    base_model = forms.CharField(
        max_length=500, required=False,
        help_text="A Hugging Face id (intfloat/e5-base-v2, Qwen/Qwen3-Embedding-0.6B) or a folder "
        "on the GPU workers; empty: the configured default (all-MiniLM-L6-v2, offline).",
    )  # fmt: skip
    method = forms.ChoiceField(choices=TrainingMethod.choices, initial=TrainingMethod.LORA)
    lora_r = forms.IntegerField(label="LoRA r", min_value=1, max_value=1024)
    lora_alpha = forms.IntegerField(label="LoRA alpha", min_value=1, max_value=4096)
    lora_dropout = forms.FloatField(label="LoRA dropout", min_value=0, max_value=0.99)
    lora_target_modules = forms.CharField(
        label="LoRA target modules", required=False,
        help_text="Comma-separated module names (query, key, value); empty: per architecture.",
    )  # fmt: skip
    num_negatives = forms.IntegerField(
        label="Hard negatives per example", min_value=0, max_value=64,
        help_text="InfoNCE over the in-batch negatives plus this many hard negatives.",
    )  # fmt: skip
    temperature = forms.FloatField(min_value=0.001, max_value=10)
    learning_rate = forms.FloatField(min_value=1e-8, max_value=1.0)
    batch_size = forms.IntegerField(min_value=1, max_value=65536)
    epochs = forms.IntegerField(min_value=1, max_value=1000)
    max_steps = forms.IntegerField(
        min_value=0, required=False, help_text="0 or empty: as many as the epochs take."
    )
    query_max_length = forms.IntegerField(min_value=4, max_value=32768)
    passage_max_length = forms.IntegerField(min_value=4, max_value=32768)
    # Prefixes end in a space that matters ("query: "): never strip them.
    query_prefix = forms.CharField(
        max_length=500, required=False, strip=False,
        help_text="Empty: the base model family's own (E5: \"query: \"; none for MiniLM).",
    )  # fmt: skip
    passage_prefix = forms.CharField(max_length=500, required=False, strip=False)
    gradient_cache = forms.BooleanField(
        required=False,
        help_text="Cached InfoNCE (GradCache): large batches in small mini-batches of memory.",
    )
    mini_batch_size = forms.IntegerField(min_value=1, max_value=65536)
    bf16 = forms.ChoiceField(label="Precision", choices=PRECISION_CHOICES)
    seed = forms.IntegerField(min_value=0)
    warmup_ratio = forms.FloatField(min_value=0, max_value=0.99)
    weight_decay = forms.FloatField(min_value=0)
    logging_steps = forms.IntegerField(min_value=1, help_text="One loss-curve point every N steps.")
    save_steps = forms.IntegerField(
        min_value=0, help_text="A checkpoint every N steps: where a crashed run resumes; 0 = none."
    )
    merge_adapter = forms.BooleanField(
        required=False, help_text="Also save the LoRA merged into the base model."
    )

    def __init__(self, *args, defaults: dict, **kwargs):
        initial = {name: defaults[name] for name in self.base_fields if name in defaults}
        modules = initial.get("lora_target_modules")
        if isinstance(modules, list | tuple):
            initial["lora_target_modules"] = ", ".join(modules)
        bf16 = initial.get("bf16")
        if isinstance(bf16, bool):
            initial["bf16"] = "on" if bf16 else "off"
        super().__init__(*args, initial=initial, **kwargs)
        # Only the fields TrainConfig knows are offered (it is the single source of truth).
        for name in list(self.fields):
            if name not in defaults and name != "name":
                del self.fields[name]

    def config(self) -> dict:
        data = dict(self.cleaned_data)
        data.pop("name", None)
        if "lora_target_modules" in data:
            data["lora_target_modules"] = [
                m.strip() for m in (data["lora_target_modules"] or "").split(",") if m.strip()
            ]
        if data.get("max_steps") is None and "max_steps" in data:
            data["max_steps"] = 0
        if not data.get("base_model"):
            data.pop("base_model", None)
        for prefix in ("query_prefix", "passage_prefix"):
            if prefix in data and data[prefix] == "":
                data[prefix] = None  # the family's own
        if data.get("method") == "full" and "learning_rate" not in self.changed_data:
            # The form starts from LoRA's rate; an untouched one means "the default", which
            # for a full fine-tune is 2e-5.
            data.pop("learning_rate", None)
        return data
