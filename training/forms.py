"""The "Train" form on a snapshot page. Its fields are made from ``TrainConfig``'s schema
(``training/core/config.py``): one field per hyper-parameter, its label, help, limits and
choices from there, and each value checked by the schema's own ``ConfigField.parse`` — the
check the command line and the API use too. Initial values come from
``training_config_defaults()``; a field left empty takes the default. The base model's field
starts empty when the default is the configured model, which its placeholder names (the
offline copy's folder inside the virtualenv is no name for a person). The service validates
the whole config again (the API and the CLI reach it without this form)."""

from django import forms
from django.core.exceptions import ValidationError

from curation.embeddings import default_model_label, default_model_name

from .core.config import ConfigError, ConfigField, config_fields


def _validator(config_field: ConfigField):
    def validate(value):
        try:
            config_field.parse(value)
        except ConfigError as error:
            raise ValidationError(error.message) from None

    return validate


def _number_attrs(config_field: ConfigField) -> dict:
    """The inclusive limits as the input's min / max: the browser's hint; the check is the
    validator's, as for a text's maxlength."""
    attrs = {"min": config_field.minimum, "max": config_field.maximum}
    return {key: value for key, value in attrs.items() if value is not None}


def _form_field(config_field: ConfigField) -> forms.Field:
    common = {
        "label": config_field.label,
        "help_text": config_field.help,
        "required": False,  # empty: the default
        "validators": [_validator(config_field)],
    }
    kind = config_field.kind
    if config_field.choices:
        return forms.ChoiceField(choices=config_field.choices, **common)
    if kind == "int":
        return forms.IntegerField(widget=forms.NumberInput(_number_attrs(config_field)), **common)
    if kind == "float":
        return forms.FloatField(widget=forms.NumberInput(_number_attrs(config_field)), **common)
    if kind == "bool":
        return forms.BooleanField(**common)
    attrs = {"maxlength": config_field.max_length} if config_field.max_length else {}
    # Prefixes end in a space that matters ("query: "): never strip them.
    return forms.CharField(widget=forms.TextInput(attrs), strip=kind != "optional_str", **common)


class TrainingLaunchForm(forms.Form):
    name = forms.CharField(max_length=200, required=False, help_text="Shown on the leaderboard.")
    more_snapshots = forms.CharField(
        max_length=500,
        required=False,
        label="Also train on snapshots",
        help_text="Snapshot ids, comma-separated, in order (e.g. 4, 7): one run on this "
        "snapshot and those, each batch from one of them (task order and mixed-task steps "
        "below). Empty: this snapshot alone.",
    )

    def __init__(self, *args, defaults: dict, **kwargs):
        initial = {f.name: defaults.get(f.name, f.default) for f in config_fields()}
        initial["lora_target_modules"] = ", ".join(initial["lora_target_modules"] or [])
        if initial["base_model"] == default_model_name():
            initial["base_model"] = ""  # empty takes it: the service's rule
        super().__init__(*args, initial=initial, **kwargs)
        for config_field in config_fields():
            self.fields[config_field.name] = _form_field(config_field)
        self.fields["base_model"].widget.attrs["placeholder"] = default_model_label()

    def config(self) -> dict:
        """The hyper-parameters given, converted by the schema; empty fields are left out,
        so they take the defaults (a full fine-tune's learning rate among them)."""
        data = {}
        for config_field in config_fields():
            value = self.cleaned_data.get(config_field.name)
            if value is None or value == "":
                continue
            data[config_field.name] = config_field.parse(value)
        reranker = data.get("model_kind") == "reranker"
        if reranker and "method" not in self.changed_data:
            # Untouched, the form's LoRA means "the default": a reranker's is full.
            data.pop("method", None)
        method = data.get("method") or ("full" if reranker else "lora")
        if method == "full" and "learning_rate" not in self.changed_data:
            # The form starts from LoRA's rate; an untouched one means "the default", which
            # for a full fine-tune is 2e-5.
            data.pop("learning_rate", None)
        return data
