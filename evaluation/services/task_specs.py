"""The tasks an evaluation can run: local BEIR folders (``beir:<name>``, offline) and mteb's
registry retrieval tasks; a spec resolved to the split it evaluates, and built into the
mteb task the worker evaluates."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path

from django.conf import settings

from core.errors import ApplicationError
from core.ml.beir import beir_folders_find

from ..beir import beir_task_build

logger = logging.getLogger(__name__)

LOCAL_PREFIX = "beir:"


@dataclass(frozen=True)
class TaskOption:
    spec: str  # what EvaluationRun.tasks holds: "beir:<folder>" or an mteb task name
    name: str
    source: str  # "local" | "registry"
    splits: tuple[str, ...]
    description: str = ""


def _local_folders() -> dict:
    return {f.spec: f for f in beir_folders_find(settings.SIEVE_EVAL_DATA_DIRS)}


_registry_memo: dict[str, list[dict]] = {}


def _registry_tasks() -> list[dict]:
    """mteb's text retrieval tasks. Listing them imports mteb (~4 s, ~300 MB), which a web
    process should not carry: the list is computed once per mteb version — in this process
    when mteb is already loaded (a worker), else in a short-lived subprocess — and kept in
    ``VAR_DIR/cache``."""
    try:
        version = importlib_metadata.version("mteb")
    except importlib_metadata.PackageNotFoundError:
        return []
    if version in _registry_memo:
        return _registry_memo[version]
    path = Path(settings.VAR_DIR) / "cache" / f"mteb-{version}-retrieval-tasks.json"
    found = None
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    if found is None:
        found = _registry_tasks_compute()
        if found is None:
            return []
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_text(json.dumps(found))
        os.replace(partial, path)
    _registry_memo[version] = found
    return found


def _registry_tasks_compute() -> list[dict] | None:
    if "mteb" in sys.modules:
        from ..core import registry_retrieval_tasks

        return registry_retrieval_tasks()
    code = "import json, evaluation.core as c; print(json.dumps(c.registry_retrieval_tasks()))"
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as error:
        logger.warning("could not list mteb's retrieval tasks: %s", error)
        return None


def evaluation_tasks_available() -> list[TaskOption]:
    """Local BEIR folders (``beir:<name>``, offline), then mteb's registry retrieval tasks
    (their data comes from the Hugging Face hub when the run starts)."""
    options = [
        TaskOption(
            spec=folder.spec,
            name=folder.name,
            source="local",
            splits=folder.splits,
            description=f"local BEIR folder {folder.path}",
        )
        for folder in _local_folders().values()
    ]
    options += [
        TaskOption(
            spec=task["name"],
            name=task["name"],
            source="registry",
            splits=tuple(task["splits"]),
            description=task["description"],
        )
        for task in _registry_tasks()
    ]
    return options


def evaluation_task_splits_resolve(specs: list[str], split: str) -> dict[str, str]:
    """{spec: split to evaluate}: ``split`` where the task has it, else the task's own first
    split (MS MARCO evaluates on ``dev``); unknown specs are a field error."""
    if not specs:
        raise ApplicationError("choose at least one task", detail={"field": "tasks"})
    local = _local_folders()
    registry = None
    resolved: dict[str, str] = {}
    for spec in specs:
        spec = str(spec).strip()
        if spec in resolved:
            continue
        if spec.startswith(LOCAL_PREFIX):
            folder = local.get(spec)
            if folder is None:
                raise ApplicationError(
                    f'unknown task "{spec}": no BEIR folder "{spec[len(LOCAL_PREFIX) :]}" '
                    "in the evaluation data folders",
                    detail={"field": "tasks", "task": spec},
                )
            splits = folder.splits
        else:
            if registry is None:
                registry = {t["name"]: t for t in _registry_tasks()}
            if spec not in registry:
                raise ApplicationError(
                    f'unknown task "{spec}": not a local BEIR folder (beir:<name>) and not '
                    "an mteb retrieval task",
                    detail={"field": "tasks", "task": spec},
                )
            splits = tuple(registry[spec]["splits"])
        resolved[spec] = split if split in splits else splits[0]
    return resolved


def evaluation_task_build(spec: str, split: str):
    """The mteb task of ``spec``, to evaluate on ``split`` (a local folder is read only for
    that split)."""
    if spec.startswith(LOCAL_PREFIX):
        folder = _local_folders().get(spec)
        if folder is None:
            raise ApplicationError(
                f'the BEIR folder of task "{spec}" is no longer in the evaluation data folders',
                detail={"field": "tasks", "task": spec},
            )
        return beir_task_build(folder, splits=[split])
    from ..core import registry_task_get

    try:
        return registry_task_get(spec)
    except KeyError:
        raise ApplicationError(
            f'unknown task "{spec}": not an mteb retrieval task', detail={"field": "tasks"}
        ) from None
