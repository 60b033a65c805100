"""Artifacts: the trained model written beside the run's checkpoints, and loaded back.
Pure: no Django; sentence-transformers and peft are imported inside the functions.

| method               | kind      | folder                         |
| lora                 | adapter   | ``adapter/``                   |
| lora + merge_adapter | merged    | ``merged/`` (``adapter/`` kept) |
| full                 | full      | ``model/``                     |

Every folder is written as ``.partial-<name>`` and renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .checkpoints import fsync_tree
from .config import TrainConfig

ARTIFACT_DIRS = {"adapter": "adapter", "merged": "merged", "full": "model"}
# Written beside the weights: what the artifact was trained from, for whoever copies the
# folder elsewhere (peft's adapter_config.json names the base by an absolute path).
ARTIFACT_INFO = "sieve_training.json"


def _publish(partial: Path, final: Path) -> None:
    """Move a fully written folder into place: a crash leaves the old one or the new one."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(partial, final)


def save_artifact(config: TrainConfig, model, output: Path, *, device: str) -> tuple[Path, str]:
    info = {"base_model": config.base_model, "method": config.method, "config": config.to_dict()}
    kind = "adapter" if config.method == "lora" else "full"
    final = output / ARTIFACT_DIRS[kind]
    partial = output / f".partial-{final.name}"
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(str(partial))
    (partial / ARTIFACT_INFO).write_text(json.dumps(info, indent=2))
    fsync_tree(partial)
    _publish(partial, final)
    if not config.merge_adapter:
        return final, kind

    # Merge from the saved adapter (not the in-memory model): what is published is exactly
    # base + the artifact, and the adapter folder is proven loadable on the way.
    from peft import PeftModel

    from .model import load_sentence_transformer

    merged = load_sentence_transformer(config.base_model, device=device, pooling=config.pooling)
    peft_model = PeftModel.from_pretrained(merged[0].model, str(final))
    merged[0].model = peft_model.merge_and_unload()
    final = output / ARTIFACT_DIRS["merged"]
    partial = output / f".partial-{final.name}"
    shutil.rmtree(partial, ignore_errors=True)
    merged.save_pretrained(str(partial))
    (partial / ARTIFACT_INFO).write_text(json.dumps({**info, "merged": True}, indent=2))
    fsync_tree(partial)
    _publish(partial, final)
    return final, "merged"


def _trained_pooling(folder: Path) -> str:
    try:
        info = json.loads((folder / ARTIFACT_INFO).read_text())
    except (OSError, ValueError):
        return "auto"
    return (info.get("config") or {}).get("pooling") or "auto"


def load_trained_model(
    base_model: str,
    artifact_path: str,
    artifact_kind: str,
    *,
    device: str | None = None,
    model_kwargs: dict | None = None,
):
    """A SentenceTransformer ready to encode. An adapter is attached to ``base_model`` as
    recorded in the database — never to the absolute base path in its adapter_config.json,
    which is wrong once the folder moves; a merged or full model is loaded from its folder."""
    from sentence_transformers import SentenceTransformer

    from .model import load_sentence_transformer

    if artifact_kind == "adapter":
        # The base is built as training built it (a decoder's last-token pooling, say).
        model = load_sentence_transformer(
            base_model,
            device=device,
            pooling=_trained_pooling(Path(artifact_path)),
            model_kwargs=model_kwargs,
        )
        model.load_adapter(str(artifact_path))
        return model
    if artifact_kind in ("merged", "full"):
        return SentenceTransformer(str(artifact_path), device=device, model_kwargs=model_kwargs)
    raise ValueError(f"unknown artifact kind {artifact_kind!r}")
