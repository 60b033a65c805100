"""The "Evaluate" form: a training run's artifact or any model, on Sieve datasets, local
BEIR folders and/or mteb registry tasks, in full or streamlined mode. Its task picker is a
search (``templates/evaluation/_task_picker.html``): the form never lists the registry."""

from django import forms

from core.ml.hardware import machine_detect
from core.models import JobStatus
from training.models import TrainingRun
from training.templatetags.model_names import model_short_name

from .models import EvaluationMode


def mode_choices() -> list[tuple[str, str]]:
    """The modes in words that match this machine: 4-bit is named only where it runs."""
    four_bit = " and a 4-bit model on the GPU" if machine_detect().four_bit else ""
    return [
        (EvaluationMode.FULL, "Full corpus: every document of the task"),
        (
            EvaluationMode.STREAMLINED,
            f"Streamlined: every judged document plus a seeded sample of the rest{four_bit}"
            " (faster; the page shows its difference to a full run)",
        ),
    ]


MODE_NAMES = {EvaluationMode.FULL: "full corpus", EvaluationMode.STREAMLINED: "streamlined"}


class TaskSpecsField(forms.Field):
    """The chosen task specs (``tasks`` repeated); the service checks each one, so the form
    never needs the whole registry to validate a choice."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value) -> list[str]:
        if not value:
            return []
        values = [value] if isinstance(value, str) else value
        return [str(v).strip() for v in values if str(v).strip()]


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


class TrainingRunChoiceField(forms.ModelChoiceField):
    """A finished training run, named with what it is: a reranker is evaluated as one (over
    its first stage), so the list says which runs are rerankers."""

    def label_from_instance(self, run) -> str:
        kind = "reranker" if run.model_kind == "reranker" else "embedder"
        name = f" {run.name}" if run.name else ""
        base = model_short_name(run.base_model)
        return f"#{run.pk}{name} · {kind} · {base} ({run.method}) · snapshot #{run.snapshot_id}"


class EvaluationLaunchForm(forms.Form):
    training_run = TrainingRunChoiceField(
        queryset=TrainingRun.objects.none(), required=False, label="Fine-tuned model",
        help_text="A training run's result; leave empty to evaluate the model below.",
    )  # fmt: skip
    model_ref = forms.CharField(
        label="Model", max_length=500, required=False,
        help_text="A Hugging Face id or a model folder on this machine; empty: the configured "
        "default (all-MiniLM-L6-v2, offline). Ignored when a fine-tuned model is chosen.",
    )  # fmt: skip
    first_stage = forms.CharField(
        label="Reranker: first stage", max_length=500, required=False,
        help_text="Only when the model is a reranker (a cross-encoder): the embedding model "
        "whose top results it re-orders. A fine-tuned reranker is always evaluated this way "
        "(empty: over the configured default model). Leave empty for an embedding model.",
    )  # fmt: skip
    top_k = forms.IntegerField(
        label="Reranker: top k", min_value=1, max_value=1000, required=False,
        help_text="How many of the first stage's results per query the reranker re-orders "
        "(default 100).",
    )  # fmt: skip
    tasks = TaskSpecsField(required=False)
    other_tasks = forms.CharField(
        label="Other mteb tasks", required=False,
        help_text="Comma-separated mteb registry names (NFCorpus, FiQA2018) — need the hub.",
    )  # fmt: skip
    mode = forms.ChoiceField(choices=(), initial=EvaluationMode.FULL, widget=forms.RadioSelect)
    split = forms.CharField(
        max_length=50, initial="test",
        help_text="Where a task has no such split, its own first split is used (MS MARCO: dev).",
    )  # fmt: skip
    batch_size = forms.IntegerField(min_value=1, max_value=4096, initial=64)
    corpus_sample = forms.IntegerField(
        label="Streamlined: extra documents", min_value=0, required=False, initial=10000,
        help_text="Streamlined mode keeps every judged document plus this many others, sampled "
        "with the seed.",
    )  # fmt: skip
    seed = forms.IntegerField(min_value=0, initial=0)
    task_fields = ("tasks", "other_tasks")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["mode"].choices = mode_choices()
        self.fields["training_run"].queryset = (
            TrainingRun.objects.filter(status=JobStatus.SUCCEEDED)
            .only("id", "name", "base_model", "method", "config", "snapshot_id")
            .order_by("-id")
        )

    def clean(self):
        data = super().clean()
        extra = [t.strip() for t in (data.get("other_tasks") or "").split(",") if t.strip()]
        data["task_specs"] = list(dict.fromkeys([*(data.get("tasks") or []), *extra]))
        if not data["task_specs"]:
            self.add_error("tasks", "choose at least one task")
        return data

    def chosen_tasks(self) -> list[str]:
        """The specs to show as chosen when the form comes back (an error elsewhere)."""
        return self.fields["tasks"].to_python(self["tasks"].value())

    def model_fields(self):
        return [self[name] for name in ("training_run", "model_ref", "first_stage", "top_k")]

    def setting_fields(self):
        return [self[n] for n in ("mode", "split", "batch_size", "corpus_sample", "seed")]

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
            "first_stage": data.get("first_stage") or None,
            "top_k": data.get("top_k"),
        }
