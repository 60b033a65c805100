"""Training runs: create (validated, queued on the ``gpu`` queue), execute on a worker with
the row kept live, cancel. The training itself is ``training.core`` (pure); flow, resume and
cancel are described in ``training/training.md``.

    training_run_create ─(on commit)─► training.tasks.training_run (queue gpu)
      └► training_run_execute: core.jobs.job_run ─► claim output_dir ─► read the snapshot
         ─► core.loop.train (resumes from the newest complete checkpoint; listener = the row)
         ─► artifact ─► succeeded ─► drop checkpoints
         (an ``evaluate_after`` plan is queued by the experiments app when the run succeeds)
         (cancel: the recorder raises TrainingCancelled ─► checkpoints dropped ─► cancelled)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.errors import ApplicationError
from core.jobs import JobCancelled, JobOutcome, job_enqueue, job_run
from core.models import JobStatus
from curation.datasets.snapshots import snapshot_file_path
from curation.embeddings import default_model_name
from curation.models import Snapshot

from .core.checkpoints import checkpoints_remove
from .core.config import TrainConfig, planned_steps
from .core.data import (
    SnapshotFormatError,
    TaskRows,
    build_rows,
    first_usable_example,
    read_examples,
)
from .core.loop import TrainingCancelled, TrainListener, history_append, train
from .core.mixing import planned_mix_steps
from .models import TrainingRun, TrainingRunSnapshot

logger = logging.getLogger(__name__)

# Seconds between two writes of the live row (progress, step, loss curve, log tail).
FLUSH_INTERVAL = 0.75
# Seconds between two cancel checks (a query each): not one per optimizer step, which on a
# GPU can be a few milliseconds.
CANCEL_CHECK_INTERVAL = 1.0
LOG_TAIL_LINES = 60
# Further snapshots one run may train on beside its first.
MAX_MORE_SNAPSHOTS = 16
# Names a run's output folder as its own, so a folder left by another database (the same
# primary key, an older life of the installation) is never resumed from.
OWNER_FILE = "sieve_run.json"
RUN_LOG = "train.log"
# Loggers whose lines make the run's log: ours at INFO, the libraries' warnings.
LOGGERS = {"training": logging.INFO, "sentence_transformers": logging.WARNING,
           "transformers": logging.WARNING, "peft": logging.WARNING}  # fmt: skip


def _field_error(message: str, field: str) -> ApplicationError:
    return ApplicationError(message, detail={"field": field})


def training_config_defaults() -> dict:
    """The form's starting values: LoRA with the default hyper-parameters on the configured
    embedding model. Prefixes are None: the base model family's known ones (E5: ``query: ``)
    are filled in when the run is created; ``""`` asks for none."""
    config = TrainConfig.defaults()
    config.base_model = default_model_name()
    return config.to_dict()


def _base_model_check(base_model: str) -> str:
    """The base model's exact revision (hub commit, or a digest of a local folder); raises
    a field error when it does not resolve here (missing folder, unknown id, offline)."""
    from core.ml.identity import model_identity

    path = Path(base_model).expanduser()
    if path.is_dir():
        if not ((path / "config.json").is_file() or (path / "modules.json").is_file()):
            raise _field_error(f"{base_model} is not a model folder (no config.json)", "base_model")
    elif base_model.startswith(("/", ".", "~")):
        raise _field_error(f"no model folder at {base_model}", "base_model")
    try:
        return model_identity(base_model).key
    except Exception as error:  # hub errors come in many types; all mean "cannot load it"
        raise _field_error(
            f"the base model {base_model!r} cannot be found here "
            f"({type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''})",
            "base_model",
        ) from None


def _snapshot_check(snapshot: Snapshot) -> None:
    path = snapshot_file_path(snapshot=snapshot)
    if not path.is_file():
        raise _field_error(f"the snapshot file {snapshot.file_path} is missing", "snapshot")
    try:
        usable = first_usable_example(path, snapshot.format)
    except SnapshotFormatError as error:
        raise ApplicationError(
            error.message, detail={**error.detail, "field": "snapshot"}
        ) from None
    if usable is None:
        raise _field_error(
            "the snapshot has no usable example (a query with at least one positive)", "snapshot"
        )


def _config_check(config: dict | None) -> tuple[TrainConfig, str]:
    parsed = TrainConfig.from_dict(dict(config or {}))
    parsed.base_model = parsed.base_model.strip() or default_model_name()
    revision = _base_model_check(parsed.base_model)
    return parsed.resolved(), revision


def training_config_check(config: dict | None) -> dict:
    """``config`` checked as ``training_run_create`` checks it (each hyper-parameter and the
    base model), completed with the defaults; ``ApplicationError`` naming the field."""
    return _config_check(config)[0].to_dict()


def _more_snapshots_check(snapshot: Snapshot, more: list[Snapshot]) -> None:
    seen = {snapshot.pk}
    if len(more) > MAX_MORE_SNAPSHOTS:
        raise _field_error(
            f"at most {MAX_MORE_SNAPSHOTS} more snapshots in one run", "more_snapshots"
        )
    for other in more:
        if other.pk in seen:
            raise _field_error(f"snapshot #{other.pk} is given twice", "more_snapshots")
        seen.add(other.pk)
        try:
            _snapshot_check(other)
        except ApplicationError as error:
            raise ApplicationError(
                f"snapshot #{other.pk}: {error.message}",
                detail={**error.detail, "field": "more_snapshots"},
            ) from None


def training_more_snapshots(value) -> list[Snapshot]:
    """The further snapshots of a run from what a person typed ("4, 7") or an API list
    ([4, 7]), in that order; ``ApplicationError`` on ``more_snapshots`` names a bad one."""
    if isinstance(value, str):
        parts = [part.strip().lstrip("#") for part in value.replace(";", ",").split(",")]
        value = [part for part in parts if part]
    ids = []
    for part in value or []:
        try:
            ids.append(int(part))
        except (TypeError, ValueError):
            raise _field_error(f"{part!r} is not a snapshot id", "more_snapshots") from None
    found = Snapshot.objects.select_related("dataset").in_bulk(ids)
    for snapshot_id in ids:
        if snapshot_id not in found:
            raise _field_error(f"no snapshot #{snapshot_id}", "more_snapshots")
    return [found[snapshot_id] for snapshot_id in ids]


def training_run_create(
    *,
    snapshot: Snapshot,
    config: dict,
    user=None,
    name: str = "",
    evaluate_after: dict | None = None,
    enqueue: bool = True,
    more_snapshots: Sequence[Snapshot] = (),
) -> TrainingRun:
    """Record a training run of ``config`` (``TrainConfig`` fields; missing ones take the
    defaults) on ``snapshot`` and, with ``enqueue``, run it on a ``gpu`` worker once this
    transaction commits. Everything is checked first — each hyper-parameter, the base model
    (default: the configured embedding model) and the snapshot file — and a problem raises
    ``ApplicationError`` with ``detail["field"]``. ``evaluate_after`` (``tasks``, ``mode``,
    ``config`` of ``evaluation_run_create``, validated by the caller) queues an evaluation of
    the artifact when the run succeeds. ``more_snapshots``: further snapshots trained on in
    the same run, each batch from one of them in the config's ``task_order``, then its
    ``mixed_steps`` (``training/core/mixing.py``)."""
    name = (name or "").strip()
    if len(name) > 200:
        raise _field_error("the name is too long (200 characters at most)", "name")
    parsed, revision = _config_check(config)
    _snapshot_check(snapshot)
    more_snapshots = list(more_snapshots)
    _more_snapshots_check(snapshot, more_snapshots)
    with transaction.atomic():
        run = TrainingRun.objects.create(
            snapshot=snapshot,
            name=name,
            base_model=parsed.base_model,
            method=parsed.method,
            config=parsed.to_dict(),
            metrics={"base_model_revision": revision},
            evaluate_after=dict(evaluate_after or {}),
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        run.output_dir = str(Path(settings.SIEVE_MODEL_DIR) / f"training-{run.pk}")
        run.save(update_fields=["output_dir"])
        TrainingRunSnapshot.objects.bulk_create(
            TrainingRunSnapshot(run=run, snapshot=other, position=position)
            for position, other in enumerate(more_snapshots, start=1)
        )
        if enqueue:
            job_enqueue(job=run)
    return run


# --- execution ----------------------------------------------------------------------------


class _RunRecorder(TrainListener):
    """Keeps the TrainingRun row live: plain UPDATEs at most every FLUSH_INTERVAL seconds
    (and at once for a start, a checkpoint or the end); a cancel check after every step."""

    def __init__(self, run: TrainingRun, *, echo: Callable[..., None] | None = None):
        self.run = run
        self.echo = echo
        self.history: list[dict] = list(run.history or [])
        self.metrics: dict = dict(run.metrics or {})
        self.step_now = run.step
        self.total_steps = run.total_steps
        self.message = "starting"
        self.log_lines: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        self.elapsed_offset = 0.0
        self.cancel_seen_at: int | None = None
        self._last_flush = 0.0
        self._last_cancel_check = -CANCEL_CHECK_INTERVAL

    # TrainListener

    def started(self, *, step, total_steps, resumed_from_step, metrics):
        if resumed_from_step is None:
            # A fresh start — or a restart from scratch after a crash before any checkpoint:
            # the curve of that earlier life is not this one's.
            self.history = []
        else:
            self.history = [p for p in self.history if p["step"] <= resumed_from_step]
            self.elapsed_offset = self.history[-1]["elapsed_s"] if self.history else 0.0
            TrainingRun.objects.filter(pk=self.run.pk).update(resumed_from_step=resumed_from_step)
            self.run.resumed_from_step = resumed_from_step
        self.metrics.update(metrics)
        self.step_now, self.total_steps = step, total_steps
        self.message = (
            f"resumed at step {step:,} of {total_steps:,}"
            if resumed_from_step is not None
            else f"training: {total_steps:,} steps"
        )
        self.flush(force=True)

    def step(self, *, step, total_steps, metrics):
        self.step_now, self.total_steps = step, total_steps
        self.metrics.update(metrics)
        self.message = self._step_message()
        self.flush()

    def logged(self, *, point, metrics):
        point = {**point, "elapsed_s": round(point["elapsed_s"] + self.elapsed_offset, 2)}
        history_append(self.history, point)
        self.metrics.update(metrics)
        self.message = self._step_message()
        self.flush()

    def checkpoint(self, *, step, path):
        self.metrics["checkpoint_step"] = step
        self.flush(force=True)

    def should_stop(self) -> bool:
        now = time.monotonic()
        if now - self._last_cancel_check < CANCEL_CHECK_INTERVAL:
            return False
        self._last_cancel_check = now
        if TrainingRun.objects.filter(pk=self.run.pk, cancel_requested=True).exists():
            self.cancel_seen_at = self.step_now
            self.metrics["cancel_seen_at_step"] = self.step_now
            return True
        return False

    # the row

    def _step_message(self) -> str:
        parts = [f"step {self.step_now:,} of {self.total_steps:,}"]
        if "train_loss" in self.metrics:
            parts.append(f"loss {self.metrics['train_loss']:.4f}")
        if self.metrics.get("samples_per_s"):
            parts.append(f"{self.metrics['samples_per_s']:.1f} samples/s")
        if self.metrics.get("eta_s") is not None and self.step_now < self.total_steps:
            parts.append(f"ETA {_duration(self.metrics['eta_s'])}")
        return " · ".join(parts)

    def progress(self) -> float:
        return self.step_now / self.total_steps if self.total_steps else 0.0

    def say(self, message: str) -> None:
        self.message = message
        self.flush(force=True)

    def flush(self, *, force: bool = False, **extra) -> None:
        now = time.monotonic()
        if not force and now - self._last_flush < FLUSH_INTERVAL:
            return
        self._last_flush = now
        TrainingRun.objects.filter(pk=self.run.pk).update(
            progress=max(0.0, min(1.0, self.progress())),
            progress_message=self.message[:200],
            step=self.step_now,
            total_steps=self.total_steps,
            history=self.history,
            metrics=self.metrics,
            log_tail="\n".join(self.log_lines),
            heartbeat_at=timezone.now(),
            **extra,
        )
        if self.echo is not None:
            self.echo(self.progress(), self.message, force=force)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


class _TailHandler(logging.Handler):
    """The run's log: every line to ``train.log`` in its folder, the last ones to the row."""

    def __init__(self, lines: deque, path: Path):
        super().__init__(logging.DEBUG)
        self.lines = lines
        # A resumed run's tail starts with what its earlier lives wrote.
        if path.is_file():
            with path.open("rb") as f:
                start = max(0, path.stat().st_size - 64 * 1024)
                f.seek(start)
                tail = f.read().decode("utf-8", errors="replace").splitlines()
                lines.extend(tail[1:] if start else tail)  # the first may be cut in two
        self.file = path.open("a", encoding="utf-8")
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a bad log call must not stop a training run
            return
        self.file.write(text + "\n")
        self.file.flush()
        self.lines.extend(text.splitlines()[-LOG_TAIL_LINES:])

    def close(self) -> None:
        self.file.close()
        super().close()


@contextmanager
def _run_log(recorder: _RunRecorder, folder: Path):
    handler = _TailHandler(recorder.log_lines, folder / RUN_LOG)
    handler.addFilter(_LibraryLevels(LOGGERS))
    lowered = []
    for name, level in LOGGERS.items():
        target = logging.getLogger(name)
        target.addHandler(handler)
        if target.getEffectiveLevel() > level:
            lowered.append((target, target.level))
            target.setLevel(level)
    try:
        yield
    finally:
        for name in LOGGERS:
            logging.getLogger(name).removeHandler(handler)
        for target, level in lowered:
            target.setLevel(level)
        handler.close()


class _LibraryLevels(logging.Filter):
    """Lets a record through when it reaches the level set for its library in LOGGERS."""

    def __init__(self, levels: dict[str, int]):
        super().__init__()
        self.levels = levels

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.levels.get(record.name.split(".", 1)[0], logging.INFO)


def _claim_output_dir(run: TrainingRun) -> Path:
    """The run's folder, made sure to be its own: a folder under the same name that belongs
    to another run (a database recreated beside an old ``SIEVE_MODEL_DIR``) is moved aside,
    never resumed from."""
    folder = Path(run.output_dir)
    owner = {"run": run.pk, "created_at": run.created_at.isoformat()}
    marker = folder / OWNER_FILE
    if folder.exists():
        try:
            found = json.loads(marker.read_text())
        except (OSError, ValueError):
            found = None
        if found != owner and any(folder.iterdir()):
            aside = folder.with_name(f"{folder.name}.stale-{int(time.time())}")
            logger.warning("%s belongs to another run; moved to %s", folder, aside)
            shutil.move(str(folder), str(aside))
    folder.mkdir(parents=True, exist_ok=True)
    if not marker.exists():
        marker.write_text(json.dumps(owner))
    return folder


def task_name(snapshot: Snapshot) -> str:
    """How a snapshot is named among the tasks of a run (metrics, log)."""
    return f"#{snapshot.pk} {snapshot.dataset.name} · {snapshot.policy}"


def _training_rows(run: TrainingRun, config: TrainConfig):
    """The run's rows: one snapshot's ``TrainingRows``, or a ``TaskRows`` of each one's."""
    snapshots = run.snapshots()
    if len(snapshots) == 1:
        return _snapshot_rows(run.snapshot, config)
    tasks = TaskRows({task_name(s): _snapshot_rows(s, config) for s in snapshots})
    for name, rows in tasks.tasks.items():
        if len(rows) == 0:
            raise _field_error(f"snapshot {name} gave no training rows", "more_snapshots")
    layouts = tasks.layouts()
    if config.mixed_steps and len(set(layouts.values())) > 1:
        described = "; ".join(
            f"{name}: {sum(c.startswith('negative_') for c in columns)} negatives"
            for name, columns in layouts.items()
        )
        raise _field_error(
            f"a batch mixed across snapshots needs the same negatives per row in each "
            f"({described}); set mixed-task steps to 0, or k to 0",
            "mixed_steps",
        )
    return tasks


def _snapshot_rows(snapshot: Snapshot, config: TrainConfig):
    path = snapshot_file_path(snapshot=snapshot)
    if not path.is_file():
        raise _field_error(f"the snapshot file {snapshot.file_path} is missing", "snapshot")
    try:
        return build_rows(
            read_examples(path, snapshot.format),
            num_negatives=config.num_negatives,
            seed=config.seed,
            query_prefix=config.query_prefix or "",
            passage_prefix=config.passage_prefix or "",
        )
    except SnapshotFormatError as error:
        raise ApplicationError(
            error.message, detail={**error.detail, "field": "snapshot"}
        ) from None


def _environment_int(name: str) -> int | None:
    """A gpu worker's setting from its environment; unset: training's own default.
    ``SIEVE_TRAIN_PROCESSES``: how many GPUs one run trains on (default: every GPU the
    worker sees, ``CUDA_VISIBLE_DEVICES``). ``SIEVE_TRAIN_LOADER_WORKERS``: processes per
    GPU that tokenize the next batches (default: 2 on a GPU where the cores allow, 0 on
    CPU)."""
    value = os.environ.get(name, "").strip()
    return int(value) if value else None


def _train(run: TrainingRun, recorder: _RunRecorder, folder: Path):
    recorder.say("reading the snapshot")
    config = TrainConfig.from_dict(run.config)
    config.base_model = run.base_model
    rows = _training_rows(run, config)
    if len(rows) == 0:
        raise _field_error(
            "the snapshot gave no training rows (no query has a positive and, with k > 0, "
            "a negative)",
            "snapshot",
        )
    if isinstance(rows, TaskRows):
        recorder.total_steps = planned_mix_steps(
            [len(part) for part in rows.tasks.values()],
            batch_size=config.batch_size,
            order=config.task_order,
            mixed_steps=config.mixed_steps,
            epochs=config.epochs,
            max_steps=config.max_steps,
        )
        logger.info(
            "training run #%s: %s rows from %d snapshots (%s), %s order, %d mixed steps",
            run.pk,
            f"{len(rows):,}",
            len(rows.tasks),
            ", ".join(f"{name}: {len(part):,}" for name, part in rows.tasks.items()),
            config.task_order,
            config.mixed_steps,
        )
    else:
        recorder.total_steps = planned_steps(config, len(rows))
        logger.info(
            "training run #%s: %s rows from snapshot #%s (%s)",
            run.pk,
            f"{len(rows):,}",
            run.snapshot_id,
            run.snapshot.format,
        )
    recorder.metrics["data"] = rows.stats
    recorder.say(f"loading {run.base_model}")
    if recorder.should_stop():
        raise TrainingCancelled(recorder.step_now)
    result = train(
        config=config,
        rows=rows,
        output_dir=folder,
        listener=recorder,
        processes=_environment_int("SIEVE_TRAIN_PROCESSES"),
        loader_workers=_environment_int("SIEVE_TRAIN_LOADER_WORKERS"),
    )
    return result, rows


def training_run_execute(*, run_id: int, echo: Callable[..., None] | None = None) -> None:
    """Worker side (also the management command's in-process run). Failures and
    cancellation are recorded on the row. A task delivered again after its worker died
    resumes from the newest complete checkpoint; one for a finished run does nothing."""
    run = (
        TrainingRun.objects.select_related("snapshot__dataset")
        .prefetch_related("more_snapshots__snapshot__dataset")
        .get(pk=run_id)
    )
    recorder = _RunRecorder(run, echo=echo)

    def work(progress) -> JobOutcome:
        # The recorder is this job's progress: it also keeps the loss curve and log tail.
        folder = _claim_output_dir(run)
        # Inside the run's log, so that how it ended is the last line of its tail.
        with _run_log(recorder, folder):
            try:
                result, rows = _train(run, recorder, folder)
            except TrainingCancelled:
                logger.info("training run #%s cancelled at step %s", run.pk, recorder.step_now)
                recorder.message = f"cancelled at step {recorder.step_now:,}"
                recorder.flush(force=True)
                # Before the row says "cancelled": whoever sees that status sees no
                # checkpoint. (A crash in between leaves a running row with
                # cancel_requested, whose redelivered task stops at its first step.)
                checkpoints_remove(run.output_dir)
                raise JobCancelled from None
            except Exception as error:
                logger.error(
                    "training run #%s failed at step %s: %s: %s",
                    run.pk,
                    recorder.step_now,
                    type(error).__name__,
                    error,
                )
                recorder.message = f"failed at step {recorder.step_now:,}"
                recorder.flush(force=True)
                raise
        recorder.step_now, recorder.total_steps = result.step, result.total_steps
        recorder.metrics.update(result.metrics)
        recorder.message = f"{result.step:,} steps; {result.artifact_kind} saved"
        recorder.flush(
            force=True, artifact_path=result.artifact_path, artifact_kind=result.artifact_kind
        )
        run.artifact_path, run.artifact_kind = result.artifact_path, result.artifact_kind
        return JobOutcome(
            stats={
                **rows.stats,
                "steps": result.step,
                "resumed_from_step": result.resumed_from_step,
                "train_loss": result.metrics.get("train_loss"),
                "artifact_kind": result.artifact_kind,
            },
            message=recorder.message,
        )

    if not job_run(job=run, work=work) or run.status != JobStatus.SUCCEEDED:
        return
    # Only now: a crash before the run succeeded resumes from these rather than from scratch.
    checkpoints_remove(run.output_dir)
