"""Evaluation runs: one model (a base model or a training run's artifact) on a list of mteb
retrieval tasks, in full or streamlined mode, on the ``gpu`` queue. Flow, cache and resume:
``evaluation/evaluation.md``.

    evaluation_run_create ─► (commit) ─► evaluation.tasks.evaluation_run ─► evaluation_run_execute
        load the model once ─► per task not yet stored: build task ─► mteb.evaluate through
        EvalEncoder (corpus vectors cached) ─► ONE transaction: EvalResult + delta vs full
        ─► stats on the row ─► progress / cancel
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path

from django.conf import settings
from django.db import transaction

from core.errors import ApplicationError
from core.jobs import JobOutcome, job_enqueue, job_run
from core.ml.beir import BeirError, beir_folders_find

from .beir import beir_task_build
from .models import EvalResult, EvaluationMode, EvaluationRun

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 32  # mteb's own default, so runs compare with plain mteb runs
DEFAULT_SPLIT = "test"
# Streamlined mode: documents kept besides every judged one.
DEFAULT_CORPUS_SAMPLE = 10_000
CONFIG_KEYS = {
    "batch_size",
    "query_prefix",
    "passage_prefix",
    "max_seq_length",
    "split",
    "corpus_sample",
    "seed",
    "precision",
}
LOCAL_PREFIX = "beir:"
SUMMARY_FIELDS = ("main_score", "ndcg_at_10", "recall_at_100", "mrr_at_10")


def _field_error(message: str, field: str, **detail) -> ApplicationError:
    return ApplicationError(message, detail={"field": field, **detail})


# --- tasks on offer -----------------------------------------------------------------------


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
        from .core import registry_retrieval_tasks

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


def _task_splits_resolve(specs: list[str], split: str) -> dict[str, str]:
    """{spec: split to evaluate}: ``split`` where the task has it, else the task's own first
    split (MS MARCO evaluates on ``dev``); unknown specs are a field error."""
    if not specs:
        raise _field_error("choose at least one task", "tasks")
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
                raise _field_error(
                    f'unknown task "{spec}": no BEIR folder "{spec[len(LOCAL_PREFIX) :]}" '
                    "in the evaluation data folders",
                    "tasks",
                    task=spec,
                )
            splits = folder.splits
        else:
            if registry is None:
                registry = {t["name"]: t for t in _registry_tasks()}
            if spec not in registry:
                raise _field_error(
                    f'unknown task "{spec}": not a local BEIR folder (beir:<name>) and not '
                    "an mteb retrieval task",
                    "tasks",
                    task=spec,
                )
            splits = tuple(registry[spec]["splits"])
        resolved[spec] = split if split in splits else splits[0]
    return resolved


# --- models -------------------------------------------------------------------------------


def evaluation_model_resolve(model_ref: str) -> tuple[str, str]:
    """(model reference as stored, short label). A local folder becomes its absolute path;
    a hub id must resolve (online, or from the local cache when offline)."""
    from core.ml.identity import model_identity
    from curation.embeddings import default_model_name

    ref = (model_ref or "").strip() or default_model_name()
    path = Path(ref).expanduser()
    if path.exists():
        if not path.is_dir() or not any(
            (path / name).is_file() for name in ("config.json", "modules.json")
        ):
            raise _field_error(f"{ref} is not a model folder (no config.json)", "model_ref")
        ref = str(path.resolve())
    elif ref.startswith(("/", ".", "~")):
        raise _field_error(f"no model folder at {ref}", "model_ref")
    try:
        identity = model_identity(ref)
    except Exception as error:
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
        where = (
            "in the local Hugging Face cache (offline)" if offline else "on the Hugging Face hub"
        )
        raise _field_error(
            f'unknown model "{ref}": not a local folder and not found {where} '
            f"({type(error).__name__})",
            "model_ref",
        ) from None
    return ref, identity.short_name


def _config_normalize(config: dict | None, *, mode: str, prefixes: tuple[str, str]) -> dict:
    config = dict(config or {})
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        raise _field_error(f"unknown setting(s): {', '.join(unknown)}", unknown[0])

    def whole(name: str, default, *, minimum: int, allow_none: bool = False):
        value = config.get(name, default)
        if value is None or value == "":
            if allow_none:
                return None
            value = default
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise _field_error(f"{name.replace('_', ' ')} must be a whole number", name) from None
        if number != value and not isinstance(value, str):
            raise _field_error(f"{name.replace('_', ' ')} must be a whole number", name)
        if number < minimum:
            raise _field_error(f"{name.replace('_', ' ')} must be at least {minimum}", name)
        return number

    from core.ml.encoder import PRECISIONS

    precision = config.get("precision") or "auto"
    if precision not in PRECISIONS:
        raise _field_error(f"precision must be one of {', '.join(PRECISIONS)}", "precision")
    split = str(config.get("split") or DEFAULT_SPLIT).strip()
    normalized = {
        "batch_size": whole("batch_size", DEFAULT_BATCH_SIZE, minimum=1),
        "query_prefix": prefixes[0]
        if config.get("query_prefix") is None
        else str(config["query_prefix"]),
        "passage_prefix": prefixes[1]
        if config.get("passage_prefix") is None
        else str(config["passage_prefix"]),
        "max_seq_length": whole("max_seq_length", None, minimum=1, allow_none=True),
        "split": split,
        "precision": precision,
    }
    if mode == EvaluationMode.STREAMLINED:
        normalized["corpus_sample"] = whole("corpus_sample", DEFAULT_CORPUS_SAMPLE, minimum=0)
        normalized["seed"] = whole("seed", 0, minimum=0)
    return normalized


def evaluation_plan_check(*, tasks: list[str], mode: str, config: dict | None, model: str) -> dict:
    """An evaluation to run later (after a training run): checked now as
    ``evaluation_run_create`` will check it — mode, task names, settings for ``model``'s
    family — and returned as its arguments (``tasks``, ``mode``, ``config``)."""
    from core.ml.encoder import default_prefixes

    if mode not in EvaluationMode.values:
        raise _field_error(f"mode must be one of {', '.join(EvaluationMode.values)}", "mode")
    tasks = [tasks] if isinstance(tasks, str) else list(tasks or [])
    normalized = _config_normalize(config, mode=mode, prefixes=default_prefixes(model))
    resolved = _task_splits_resolve(tasks, normalized["split"])
    return {"tasks": list(resolved), "mode": mode, "config": dict(config or {})}


# --- creating and cancelling --------------------------------------------------------------


def evaluation_run_create(
    *,
    model_ref: str = "",
    training_run=None,
    tasks: list[str],
    mode: str = "full",
    config: dict | None = None,
    user=None,
    enqueue: bool = True,
) -> EvaluationRun:
    """Record an evaluation run (validated up front) and, with ``enqueue``, run it on a
    ``gpu`` worker once this transaction commits. ``training_run`` evaluates its artifact
    (``model_ref`` is then ignored); otherwise ``model_ref`` is a hub id or a local folder
    (empty: the configured default model). ``config``: batch_size, query_prefix /
    passage_prefix (None: the model family's), max_seq_length, split (default "test"),
    precision, and for streamlined mode corpus_sample and seed."""
    from core.ml.encoder import default_prefixes

    if mode not in EvaluationMode.values:
        raise _field_error(f"mode must be one of {', '.join(EvaluationMode.values)}", "mode")
    if isinstance(tasks, str):
        tasks = [tasks]
    if training_run is not None:
        if not training_run.artifact_path:
            raise _field_error(
                f"training run #{training_run.pk} has no artifact yet ({training_run.status})",
                "training_run",
            )
        if not Path(training_run.artifact_path).exists():
            raise _field_error(
                f"the artifact of training run #{training_run.pk} is missing "
                f"({training_run.artifact_path})",
                "training_run",
            )
        model_ref = training_run.artifact_path
        base_model = training_run.base_model
        model_key = f"training:{training_run.pk}"
        model_label = (training_run.name or f"training #{training_run.pk}")[:200]
        trained = training_run.config or {}
        family = default_prefixes(base_model)
        prefixes = (
            trained.get("query_prefix") if trained.get("query_prefix") is not None else family[0],
            trained.get("passage_prefix")
            if trained.get("passage_prefix") is not None
            else family[1],
        )
    else:
        model_ref, model_label = evaluation_model_resolve(model_ref)
        base_model = model_key = model_ref
        prefixes = default_prefixes(model_ref)
    config = _config_normalize(config, mode=mode, prefixes=prefixes)
    config["task_splits"] = _task_splits_resolve(list(tasks), config["split"])
    run = EvaluationRun(
        training_run=training_run,
        model_ref=model_ref,
        base_model=base_model,
        model_key=model_key,
        model_label=model_label,
        tasks=list(config["task_splits"]),
        mode=mode,
        config=config,
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )
    with transaction.atomic():
        run.save()
        run.results_dir = str(Path(settings.SIEVE_EVAL_RESULTS_DIR) / f"run-{run.pk}")
        run.save(update_fields=["results_dir"])
        if enqueue:
            job_enqueue(job=run)
    return run


# --- execution ----------------------------------------------------------------------------


def evaluation_run_execute(*, run_id: int, echo: Callable[..., None] | None = None) -> None:
    """Worker side. Failures and cancellation are recorded on the row. Running it again (a
    redelivered task after a crash) skips the tasks whose results are already stored and
    finds the corpus vectors it had encoded in the embedding cache."""
    run = EvaluationRun.objects.select_related("training_run").get(pk=run_id)

    def work(progress) -> JobOutcome:
        from .core import TaskDataError  # heavy imports stay in the worker

        try:
            stats = evaluation_run_evaluate(run=run, progress=progress)
        except (TaskDataError, BeirError) as error:
            raise _application_error(error) from error
        scores = ", ".join(
            f"{spec} {task['main_score']:.4f}"
            for spec, task in stats["tasks"].items()
            if task.get("main_score") is not None
        )
        return JobOutcome(stats=stats, message=scores[:200] or "done")

    job_run(job=run, work=work, echo=echo)


def _application_error(error: Exception) -> Exception:
    from .core import TaskDataError

    if isinstance(error, TaskDataError):
        return ApplicationError(str(error), detail={"field": "tasks", "task": error.task_name})
    if isinstance(error, BeirError):
        return ApplicationError(str(error), detail={"field": "tasks"})
    return error


def _task_build(spec: str, split: str):
    if spec.startswith(LOCAL_PREFIX):
        folder = _local_folders().get(spec)
        if folder is None:
            raise ApplicationError(
                f'the BEIR folder of task "{spec}" is no longer in the evaluation data folders',
                detail={"field": "tasks", "task": spec},
            )
        return beir_task_build(folder, splits=[split])
    from .core import registry_task_get

    try:
        return registry_task_get(spec)
    except KeyError:
        raise ApplicationError(
            f'unknown task "{spec}": not an mteb retrieval task', detail={"field": "tasks"}
        ) from None


def _model_source(run: EvaluationRun):
    from .core import ModelSource

    if run.training_run_id is not None:
        training = run.training_run
        return ModelSource(
            model=training.artifact_path,
            base_model=training.base_model,
            artifact_kind=training.artifact_kind,
            name=f"sieve/training-{training.pk}",
        )
    return ModelSource(model=run.model_ref)


def evaluation_run_evaluate(*, run: EvaluationRun, progress: Callable[..., None]) -> dict:
    """Evaluate ``run`` task by task; returns the run's stats (also written to the row after
    each task, so a resumed run keeps what its earlier life measured)."""
    from core.ml.encoder import EncoderSettings

    from .core import EvalEncoder, model_load, task_evaluate

    config = run.config
    task_splits: dict[str, str] = config.get("task_splits") or {
        spec: config.get("split", DEFAULT_SPLIT) for spec in run.tasks
    }
    specs = list(task_splits)
    stored = set(EvalResult.objects.filter(run=run).values_list("task", "split"))
    stats = dict(run.stats or {})
    stats.setdefault("tasks", {})
    pending = [spec for spec in specs if (spec, task_splits[spec]) not in stored]
    streamlined = run.mode == EvaluationMode.STREAMLINED
    settings_ = EncoderSettings(
        batch_size=config.get("batch_size", DEFAULT_BATCH_SIZE),
        query_prefix=config.get("query_prefix", ""),
        passage_prefix=config.get("passage_prefix", ""),
        max_seq_length=config.get("max_seq_length"),
        precision=config.get("precision", "auto"),
        quantize_4bit=streamlined,
    )
    encoder = None
    if pending:
        progress(0.0, f"loading {run.model_label}", force=True)
        loaded = model_load(_model_source(run), settings=settings_)
        stats["model"] = {
            "ref": run.model_ref,
            "identity": loaded.identity,
            "mteb_name": loaded.mteb_name,
            "revision": loaded.revision,
            "device": loaded.device,
            "precision": loaded.precision,
            "max_seq_length": loaded.max_seq_length,
            "load_seconds": round(loaded.load_seconds, 2),
        }
        stats["four_bit"] = loaded.four_bit
        encoder = EvalEncoder(
            loaded,
            settings=settings_,
            store_root=Path(settings.SIEVE_EMBEDDING_CACHE_DIR) / "eval",
        )
    total = len(specs)
    try:
        for index, spec in enumerate(specs):
            split = task_splits[spec]
            # Between tasks: progress, and the cancel check that comes with it.
            progress(index / total, f"task {index + 1} of {total}: {spec}", force=True)
            if spec not in pending:
                stats["tasks"].setdefault(spec, {"split": split})["resumed"] = "already stored"
                continue
            task = _task_build(spec, split)
            outcome = task_evaluate(
                task,
                encoder,
                split=split,
                results_dir=run.results_dir,
                batch_size=settings_.batch_size,
                corpus_sample=config.get("corpus_sample") if streamlined else None,
                seed=config.get("seed", 0),
                progress=lambda f, m, i=index: progress((i + f) / total, m),
            )
            # The result and the run's stats commit together: whoever sees one (a page, a
            # resumed task) sees the other.
            with transaction.atomic():
                result = _result_store(run=run, spec=spec, outcome=outcome)
                stats["tasks"][spec] = {
                    "split": split,
                    "main_score": result.main_score,
                    "corpus_size": outcome.corpus_size,
                    "query_count": outcome.query_count,
                    "seconds": round(outcome.seconds, 2),
                    "result_path": outcome.result_path,
                    **outcome.counts,
                }
                if "delta_vs_full" in result.metrics:
                    stats["tasks"][spec]["delta_vs_full"] = result.metrics["delta_vs_full"]
                stats.update(_totals(stats["tasks"]))
                EvaluationRun.objects.filter(pk=run.pk).update(stats=stats)
    finally:
        if encoder is not None:
            encoder.close()
    stats.update(_totals(stats["tasks"]))
    return stats


def _totals(tasks: dict) -> dict:
    keys = ("queries_encoded", "documents_encoded", "documents_cached")
    return {key: sum(int(t.get(key, 0)) for t in tasks.values()) for key in keys}


def _result_store(*, run: EvaluationRun, spec: str, outcome) -> EvalResult:
    from .core import json_safe

    scores = outcome.scores
    result, _ = EvalResult.objects.update_or_create(
        run=run,
        task=spec,
        split=outcome.split,
        defaults={
            "main_score": scores.main_score,
            "ndcg_at_10": scores.ndcg_at_10,
            "recall_at_100": scores.recall_at_100,
            "mrr_at_10": scores.mrr_at_10,
            "corpus_size": outcome.corpus_size,
            "query_count": outcome.query_count,
            "evaluation_seconds": round(outcome.seconds, 3),
            "metrics": json_safe(scores.metrics),
            "mteb_result": json_safe(outcome.task_result),
        },
    )
    eval_result_deltas_update(result=result)
    return result


# --- streamlined vs full ------------------------------------------------------------------


def _newest_full_result(result: EvalResult) -> EvalResult | None:
    return (
        EvalResult.objects.filter(
            run__model_key=result.run.model_key,
            run__mode=EvaluationMode.FULL,
            task=result.task,
            split=result.split,
        )
        .exclude(pk=result.pk)
        .select_related("run")
        .order_by("-run_id")
        .first()
    )


def eval_result_delta_vs_full(*, result: EvalResult) -> dict | None:
    """How far a streamlined result is from the newest full-mode result of the same model,
    task and split (streamlined minus full), or None when there is no full one yet."""
    if result.run.mode != EvaluationMode.STREAMLINED:
        return None
    full = _newest_full_result(result)
    if full is None:
        return None
    delta = {
        name: (
            round(getattr(result, name) - getattr(full, name), 6)
            if getattr(result, name) is not None and getattr(full, name) is not None
            else None
        )
        for name in SUMMARY_FIELDS
    }
    return {
        **delta,
        "full_run": full.run_id,
        "full_main_score": full.main_score,
        "full_corpus_size": full.corpus_size,
        "corpus_size": result.corpus_size,
    }


def eval_result_deltas_update(*, result: EvalResult) -> int:
    """Write ``delta_vs_full`` into streamlined results' metrics, whichever mode arrived
    second: a streamlined result compares with the newest full one; a full result updates
    every streamlined result of the same model, task and split. Returns results updated."""
    if result.run.mode == EvaluationMode.STREAMLINED:
        targets = [result]
    else:
        targets = list(
            EvalResult.objects.filter(
                run__model_key=result.run.model_key,
                run__mode=EvaluationMode.STREAMLINED,
                task=result.task,
                split=result.split,
            ).select_related("run")
        )
    updated = 0
    for target in targets:
        delta = eval_result_delta_vs_full(result=target)
        if delta is None:
            continue
        target.metrics = {**target.metrics, "delta_vs_full": delta}
        EvalResult.objects.filter(pk=target.pk).update(metrics=target.metrics)
        updated += 1
    return updated
