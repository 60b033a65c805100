"""The tasks an evaluation can run: Sieve's datasets imported from an evaluation split
(``dataset:<id>``, offline, read from the database), local BEIR folders (``beir:<name>``,
offline) and mteb's registry retrieval tasks; the picker's search over them; a spec's label
for pages; a spec resolved to the split it evaluates, and built into the mteb task the
worker evaluates."""

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
from curation.datasets.selectors import EVALUATION_SPLITS

from ..beir import beir_task_build, retrieval_task_build
from .dataset_tasks import (
    DATASET_PREFIX,
    HELD_OUT_PREFIX,
    dataset_split_read,
    dataset_task_names,
    dataset_task_rows,
    held_out_split_read,
    held_out_task_rows,
)

logger = logging.getLogger(__name__)

LOCAL_PREFIX = "beir:"


@dataclass(frozen=True)
class TaskOption:
    spec: str  # what EvaluationRun.tasks holds: "beir:<folder>" or an mteb task name
    name: str
    source: str  # "dataset" | "local" | "registry"
    splits: tuple[str, ...]
    description: str = ""

    @property
    def offline(self) -> bool:
        return self.source != "registry"


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


def evaluation_tasks_offline() -> list[TaskOption]:
    """What runs with no hub: Sieve's datasets imported from an evaluation split, then the
    local BEIR folders. Cheap (one query, one folder listing): the form shows them at once."""
    sieve = [(row, f"Sieve dataset, {row['split']} split") for row in dataset_task_rows()]
    sieve += [(row, "Queries held out of a snapshot") for row in held_out_task_rows()]
    options = [
        TaskOption(
            spec=row["spec"],
            name=row["name"],
            source="dataset",
            splits=(row["split"],),
            description=f"{what}: {row['queries']:,} queries, {row['passages']:,} documents",
        )
        for row, what in sieve
    ]
    options += [
        TaskOption(
            spec=folder.spec,
            name=folder.name,
            source="local",
            splits=folder.splits,
            description=f"BEIR folder {folder.path}",
        )
        for folder in _local_folders().values()
    ]
    return options


def evaluation_tasks_registry() -> list[TaskOption]:
    """mteb's registry retrieval tasks (their data comes from the Hugging Face hub when the
    run starts). The first call after an install lists them in a subprocess (seconds)."""
    return [
        TaskOption(
            spec=task["name"],
            name=task["name"],
            source="registry",
            splits=tuple(task["splits"]),
            description=task["description"],
        )
        for task in _registry_tasks()
    ]


def evaluation_tasks_available() -> list[TaskOption]:
    """Every task on offer: the offline ones, then mteb's registry."""
    return evaluation_tasks_offline() + evaluation_tasks_registry()


# Registry tasks shown before anything is typed: the BEIR tasks people start with.
SUGGESTED = ("SciFact", "NFCorpus", "ArguAna", "FiQA2018", "SCIDOCS", "TRECCOVID")


@dataclass
class TaskSearch:
    query: str
    options: list[TaskOption]  # at most ``limit``
    more: int  # matches beyond them
    registry_size: int


def evaluation_task_search(
    *, query: str = "", exclude=(), limit: int = 25, registry: bool = True
) -> TaskSearch:
    """The picker's search: tasks whose name (first) or description holds every word of
    ``query``, the offline ones before the registry's; with no query, the offline tasks and
    a few well-known registry tasks. ``exclude``: specs already chosen."""
    exclude = set(exclude)
    offline = evaluation_tasks_offline()
    everything = offline + (evaluation_tasks_registry() if registry else [])
    registry_size = len(everything) - len(offline)
    words = query.lower().split()
    if not words:
        suggested = [o for o in everything if o.offline or o.spec in SUGGESTED]
        matches = [o for o in suggested if o.spec not in exclude]
        return TaskSearch(query, matches[:limit], max(0, len(matches) - limit), registry_size)

    def rank(option: TaskOption) -> int | None:
        name = f"{option.name} {option.spec}".lower()
        if all(w in name for w in words):
            return 0 if name.startswith(words[0]) else 1
        if all(w in f"{name} {option.description.lower()}" for w in words):
            return 2
        return None

    ranked = [
        (r, index, option)
        for index, option in enumerate(everything)
        if option.spec not in exclude and (r := rank(option)) is not None
    ]
    ranked.sort(key=lambda item: (item[0], not item[2].offline, item[1]))
    matches = [option for _, _, option in ranked]
    return TaskSearch(query, matches[:limit], max(0, len(matches) - limit), registry_size)


def evaluation_task_labels(specs) -> dict[str, str]:
    """{spec: what a page calls it}: a dataset by its name, a local folder by its folder's
    name, a registry task by its own name."""
    specs = list(dict.fromkeys(specs))
    names = dataset_task_names(specs)
    labels = {}
    for spec in specs:
        if spec in names:
            labels[spec] = names[spec]
        elif spec.startswith(HELD_OUT_PREFIX):
            labels[spec] = f"held out of snapshot #{spec[len(HELD_OUT_PREFIX) :]}"
        elif spec.startswith(DATASET_PREFIX):
            labels[spec] = f"dataset #{spec[len(DATASET_PREFIX) :]} (deleted)"
        elif spec.startswith(LOCAL_PREFIX):
            labels[spec] = spec[len(LOCAL_PREFIX) :]
        else:
            labels[spec] = spec
    return labels


def evaluation_task_splits_resolve(specs: list[str], split: str) -> dict[str, str]:
    """{spec: split to evaluate}: ``split`` where the task has it, else the task's own first
    split (MS MARCO evaluates on ``dev``); unknown specs are a field error."""
    if not specs:
        raise ApplicationError("choose at least one task", detail={"field": "tasks"})
    local = _local_folders()
    datasets = (
        {row["spec"]: row for row in dataset_task_rows()}
        if any(str(s).startswith(DATASET_PREFIX) for s in specs)
        else {}
    )
    held_out = (
        {row["spec"]: row for row in held_out_task_rows()}
        if any(str(s).startswith(HELD_OUT_PREFIX) for s in specs)
        else {}
    )
    registry = None
    resolved: dict[str, str] = {}
    for spec in specs:
        spec = str(spec).strip()
        if spec in resolved:
            continue
        if spec.startswith(HELD_OUT_PREFIX):
            if spec not in held_out:
                raise ApplicationError(
                    f'unknown task "{spec}": no snapshot with queries held out has this id',
                    detail={"field": "tasks", "task": spec},
                )
            splits = ("test",)
        elif spec.startswith(DATASET_PREFIX):
            row = datasets.get(spec)
            if row is None:
                raise ApplicationError(
                    f'unknown task "{spec}": no dataset imported from an evaluation split '
                    f"({', '.join(EVALUATION_SPLITS)}) has this id",
                    detail={"field": "tasks", "task": spec},
                )
            splits = (row["split"],)
        elif spec.startswith(LOCAL_PREFIX):
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
    that split; a dataset is read from the database here, on the worker)."""
    if spec.startswith(HELD_OUT_PREFIX):
        return _held_out_task_build(spec, split)
    if spec.startswith(DATASET_PREFIX):
        from curation.models import Dataset

        dataset_id = spec[len(DATASET_PREFIX) :]
        try:
            data, revision = dataset_split_read(dataset_id=int(dataset_id))
        except (ValueError, Dataset.DoesNotExist):
            raise ApplicationError(
                f'the dataset of task "{spec}" is no longer there', detail={"field": "tasks"}
            ) from None
        return retrieval_task_build(
            name=spec,
            path=f"sieve:{spec}",
            revision=revision,
            description=f"Sieve dataset #{dataset_id}, {split} split",
            splits=[split],
            read=lambda _split: data,
        )
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


def _held_out_task_build(spec: str, split: str):
    from curation.models import Snapshot

    snapshot_id = spec[len(HELD_OUT_PREFIX) :]
    try:
        data, revision = held_out_split_read(snapshot_id=int(snapshot_id))
    except (ValueError, KeyError, FileNotFoundError, Snapshot.DoesNotExist) as error:
        raise ApplicationError(
            f'the held-out queries of task "{spec}" are no longer there ({error})',
            detail={"field": "tasks"},
        ) from None
    return retrieval_task_build(
        name=spec,
        path=f"sieve:{spec}",
        revision=revision,
        description=f"Queries held out of Sieve snapshot #{snapshot_id}",
        splits=[split],
        read=lambda _split: data,
    )
