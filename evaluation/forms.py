"""The "Evaluate" form: a training run's artifact or any model, on local BEIR tasks and/or
mteb registry tasks, in full or streamlined mode."""

from django import forms

from core.models import JobStatus
from training.models import TrainingRun

from .models import EvaluationMode


class TaskChoiceForm(forms.Form):
    """The task picker both forms share: the offered tasks as boxes plus free registry names;
    ``cleaned_data["task_specs"]`` is the union, in order, at least one."""

    tasks = forms.MultipleChoiceField(
        choices=(), required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Local BEIR folders run offline; registry tasks need the Hugging Face hub.",
    )  # fmt: skip
    other_tasks = forms.CharField(
        label="Other mteb tasks", required=False,
        help_text="Comma-separated mteb registry names (NFCorpus, FiQA2018) — need the hub.",
    )  # fmt: skip

    def __init__(self, *args, task_options, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tasks"].choices = [
            (option.spec, f"{option.name} ({option.source})") for option in task_options
        ]

    def clean(self):
        data = super().clean()
        extra = [t.strip() for t in (data.get("other_tasks") or "").split(",") if t.strip()]
        data["task_specs"] = list(dict.fromkeys([*(data.get("tasks") or []), *extra]))
        if not data["task_specs"]:
            self.add_error("tasks", "choose at least one task")
        return data


class EvaluationLaunchForm(TaskChoiceForm):
    training_run = forms.ModelChoiceField(
        queryset=TrainingRun.objects.none(), required=False,
        help_text="Evaluate a fine-tuned model; leave empty to evaluate the model below.",
    )  # fmt: skip
    model_ref = forms.CharField(
        label="Model", max_length=500, required=False,
        help_text="A Hugging Face id or a folder on the GPU workers; empty: the configured "
        "default (all-MiniLM-L6-v2, offline). Ignored when a training run is chosen.",
    )  # fmt: skip
    mode = forms.ChoiceField(choices=EvaluationMode.choices, initial=EvaluationMode.FULL)
    split = forms.CharField(max_length=50, initial="test")
    batch_size = forms.IntegerField(min_value=1, max_value=4096, initial=64)
    corpus_sample = forms.IntegerField(
        label="Streamlined: extra documents", min_value=0, required=False, initial=10000,
        help_text="Streamlined mode keeps every judged document plus this many others, sampled "
        "with the seed.",
    )  # fmt: skip
    seed = forms.IntegerField(min_value=0, initial=0)
    field_order = ["training_run", "model_ref", "tasks", "other_tasks"]

    def __init__(self, *args, task_options, **kwargs):
        super().__init__(*args, task_options=task_options, **kwargs)
        self.fields["training_run"].queryset = TrainingRun.objects.filter(
            status=JobStatus.SUCCEEDED
        ).order_by("-id")

    def service_options(self) -> dict:
        data = self.cleaned_data
        config = {"split": data["split"], "batch_size": data["batch_size"], "seed": data["seed"]}
        if data.get("corpus_sample") is not None:
            config["corpus_sample"] = data["corpus_sample"]
        return {
            "training_run": data.get("training_run"),
            "model_ref": "" if data.get("training_run") else (data.get("model_ref") or ""),
            "tasks": data["task_specs"],
            "mode": data["mode"],
            "config": config,
        }
