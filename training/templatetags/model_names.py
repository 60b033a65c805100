"""A model as pages name it: short, with the full reference on hover.

``{% model_name ref %}`` → ``<span class="model-name" title="<full ref>">all-MiniLM-L6-v2</span>``.
A hub id shows its name without the organisation; a local folder its own name, or — for a
package's ``model/`` folder, a hub cache snapshot or a run's ``adapter/`` — the README's title
or the folder above. Used by the training, evaluation and experiments pages."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from django import template
from django.utils.html import format_html

from training.models import TrainingMethod

register = template.Library()

METHOD_LABELS = dict(TrainingMethod.choices)
GENERIC = {"model", "models", "checkpoint", "final", "output", "best", "adapter", "merged"}


def _readme_title(folder: Path) -> str | None:
    try:
        with (folder / "README.md").open(encoding="utf-8", errors="replace") as f:
            for _, line in zip(range(200), f, strict=False):
                match = re.match(r"^#\s+(\S{1,80})\s*$", line)
                if match:
                    return match.group(1)
    except OSError:
        return None
    return None


@lru_cache(maxsize=256)
def model_short_name(ref: str) -> str:
    ref = (ref or "").strip()
    if not ref:
        return "—"
    if ref.startswith(("/", "~", ".")):
        path = Path(ref).expanduser()
        name = path.name
        parent = path.parent.name
        if name in ("adapter", "merged"):  # a training run's artifact
            return f"{parent}/{name}"
        if re.fullmatch(r"[0-9a-f]{40}", name) and parent == "snapshots":  # the hub's cache
            return path.parent.parent.name.split("--")[-1]
        if name.lower() in GENERIC:
            return _readme_title(path) or parent
        return name
    return ref.partition("@")[0].rsplit("/", 1)[-1]


@register.simple_tag
def model_name(ref) -> str:
    ref = str(ref or "")
    return format_html('<span class="model-name" title="{}">{}</span>', ref, model_short_name(ref))


@register.filter
def method_label(value) -> str:
    """A training method as the training pages name it: ``lora`` → ``LoRA adapter (peft)``."""
    return METHOD_LABELS.get(str(value or ""), value)


@register.filter
def join_if_list(value) -> str:
    """A list setting as "a, b, c"; anything else as itself."""
    return ", ".join(str(v) for v in value) if isinstance(value, list | tuple) else value
