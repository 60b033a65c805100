"""Creating evaluation runs: the model resolved, the settings normalized for its family, the
tasks resolved to their splits — all checked before the row is written and queued — and the
same check for an evaluation planned to follow a training run."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.db import transaction

from core.errors import ApplicationError
from core.jobs import job_enqueue

from ..leaderboard import model_key_for
from ..models import EvaluationMode, EvaluationRun
from .task_specs import evaluation_task_splits_resolve

DEFAULT_BATCH_SIZE = 32  # mteb's own default, so runs compare with plain mteb runs
DEFAULT_SPLIT = "test"
# A reranker re-orders this many of the first stage's results per query (RLHN and BEIR's
# reranking setups: 100).
DEFAULT_TOP_K = 100
MAX_TOP_K = 1000
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


def _field_error(message: str, field: str, **detail) -> ApplicationError:
    return ApplicationError(message, detail={"field": field, **detail})


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
    resolved = evaluation_task_splits_resolve(tasks, normalized["split"])
    return {"tasks": list(resolved), "mode": mode, "config": dict(config or {})}


def _rerank_plan(first_stage: str | None, top_k) -> dict:
    """The first stage (resolved like any model; empty: the configured default) and how
    many of its results the reranker re-orders."""
    try:
        ref, label = evaluation_model_resolve(first_stage or "")
    except ApplicationError as error:
        raise _field_error(f"first stage: {error.message}", "first_stage") from None
    if top_k in (None, ""):
        top_k = DEFAULT_TOP_K
    try:
        top_k = int(top_k)
    except (TypeError, ValueError):
        raise _field_error("top k must be a whole number", "top_k") from None
    if not 1 <= top_k <= MAX_TOP_K:
        raise _field_error(f"top k must be between 1 and {MAX_TOP_K}", "top_k")
    return {"first_stage": ref, "first_stage_label": label, "top_k": top_k}


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
    first_stage: str | None = None,
    top_k: int | None = None,
) -> EvaluationRun:
    """Record an evaluation run (validated up front) and, with ``enqueue``, run it on a
    ``gpu`` worker once this transaction commits. ``training_run`` evaluates its artifact
    (``model_ref`` is then ignored); otherwise ``model_ref`` is a hub id or a local folder
    (empty: the configured default model). ``config``: batch_size, query_prefix /
    passage_prefix (None: the model family's), max_seq_length, split (default "test"),
    precision, and for streamlined mode corpus_sample and seed.

    A **reranker** (a cross-encoder: a training run of kind reranker, or any model given
    with a ``first_stage``, ``""`` for the default) is evaluated in two stages
    (``evaluation/rerank.py``): the ``first_stage`` embedding model (default: the configured
    one) retrieves, the reranker re-orders its top ``top_k`` (default 100). The prefixes are
    the first stage's."""
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
    trained_kind = (training_run.config or {}).get("model_kind") if training_run else None
    rerank = None
    if trained_kind == "reranker" or first_stage is not None:
        rerank = _rerank_plan(first_stage, top_k)
        prefixes = default_prefixes(rerank["first_stage"])
        own_key = model_key if training_run is not None else model_key_for(model_ref)
        suffix = f"|rerank top-{rerank['top_k']} of {model_key_for(rerank['first_stage'])}"
        model_key = own_key + suffix
        # The base reranker over the same first stage is the row a fine-tune compares with.
        base_model = (model_key_for(base_model) + suffix) if training_run else model_key
        model_label = (
            f"{model_label} (reranks the top {rerank['top_k']} of {rerank['first_stage_label']})"
        )[:200]
    elif top_k is not None:
        raise _field_error("top k applies to a reranker (give its first stage)", "top_k")
    config = _config_normalize(config, mode=mode, prefixes=prefixes)
    if rerank:
        config["rerank"] = rerank
    config["task_splits"] = evaluation_task_splits_resolve(list(tasks), config["split"])
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
