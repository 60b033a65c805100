"""One run on several GPUs: DDP through torch's launcher (``torch.distributed.run``, what
``torchrun`` runs). Pure: no Django; torch is imported inside the functions.

    train(processes=N > 1)                              the worker's process (the launcher side)
      └► train_distributed: newest complete checkpoint, rows + spec → output/.distributed/
         └► python -m torch.distributed.run --standalone --nproc-per-node N
                -m training.core.distributed spec.json
              rank r: run_training(rank=Rank(r)) — the same trainer, on cuda:r (gloo on CPU)
                      each process takes batch_size / N rows per step; the loss gathers
                      the others' embeddings, so it sees the whole batch as one GPU would
                rank 0: events.jsonl (started, step, logged, checkpoint, result | cancelled),
                        checkpoint markers, the artifact
         ◄─ the launcher side reads events.jsonl → the listener (the job row), relays the
            ranks' log lines, and writes ``stop`` once the listener asks to stop

Cancel: every ``logging_steps`` steps (and at the start) the ranks ask rank 0 whether
``stop`` exists, in one collective call, so all of them stop after the same step. A run in
one process checks at every step; this one within ``logging_steps`` steps.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .checkpoints import CHECKPOINTS_DIR, Checkpoint, latest_checkpoint
from .config import TrainConfig
from .data import TaskRows, TrainingRows

logger = logging.getLogger(__name__)

WORK_DIR = ".distributed"
EVENTS = "events.jsonl"
STOP = "stop"
LAUNCH_LOG = "ranks.log"
CANCELLED_EXIT = 3
# Seconds between two looks at the events file and at the listener's stop request.
POLL_INTERVAL = 0.5
STEP_EVENT_INTERVAL = 0.5
_ROOT = Path(__file__).resolve().parents[2]


# --- the launcher side --------------------------------------------------------------------


def launch_command(spec_path: Path, processes: int) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc-per-node={processes}", "-m", "training.core.distributed", str(spec_path),
    ]  # fmt: skip


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # A worker killed mid-run (SIGKILL, OOM) takes the launcher and its ranks with it; the
    # redelivered task resumes from the last checkpoint in a fresh set of processes.
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _rows_data(rows) -> dict:
    """The rows as the ranks read them back: one snapshot's, or each snapshot's in order."""
    if isinstance(rows, TaskRows):
        tasks = [{"name": name, "columns": part.columns, "stats": part.stats}
                 for name, part in rows.tasks.items()]  # fmt: skip
        return {"tasks": tasks}
    return {"columns": rows.columns, "stats": rows.stats}


def _rows_from(data: dict):
    if "tasks" in data:
        return TaskRows({task["name"]: TrainingRows(columns=task["columns"], stats=task["stats"])
                         for task in data["tasks"]})  # fmt: skip
    return TrainingRows(columns=data["columns"], stats=data["stats"])


def train_distributed(*, config: TrainConfig, rows: TrainingRows | TaskRows, output_dir: Path,
                      listener, device: str, processes: int,
                      loader_workers: int | None = None):  # fmt: skip
    from .loop import TrainingCancelled, TrainResult

    work = output_dir / WORK_DIR
    work.mkdir(parents=True, exist_ok=True)
    for name in (EVENTS, STOP, LAUNCH_LOG):
        (work / name).unlink(missing_ok=True)
    resume = latest_checkpoint(output_dir / CHECKPOINTS_DIR)
    (work / "rows.json").write_text(json.dumps(_rows_data(rows)))
    spec = {
        "config": config.to_dict(),
        "output_dir": str(output_dir),
        "device": device,
        "loader_workers": loader_workers,
        "resume_step": resume.step if resume else None,
        "resume_path": str(resume.path) if resume else None,
    }
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps(spec))
    python_path = os.pathsep.join(p for p in (str(_ROOT), os.environ.get("PYTHONPATH")) if p)
    # No progress bars in the run's log (loading and saving draw them on stderr).
    env = {**os.environ, "PYTHONPATH": python_path, "HF_HUB_DISABLE_PROGRESS_BARS": "1",
           "TQDM_DISABLE": "1"}  # fmt: skip
    logger.info("training in %d processes (%s)", processes, device)
    with (work / LAUNCH_LOG).open("wb") as log_file:
        launcher = subprocess.Popen(
            launch_command(spec_path, processes),
            cwd=_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        follower = _Follower(work, listener)
        try:
            while launcher.poll() is None:
                time.sleep(POLL_INTERVAL)
                follower.read()
                if not follower.stop_sent and listener.should_stop():
                    (work / STOP).write_text("stop")
                    follower.stop_sent = True
        except BaseException:
            launcher.terminate()
            launcher.wait(30)
            raise
    follower.read(final=True)
    if follower.cancelled_at is not None:
        raise TrainingCancelled(follower.cancelled_at)
    if launcher.returncode != 0 or follower.result is None:
        tail = (work / LAUNCH_LOG).read_text(errors="replace").splitlines()[-30:]
        raise RuntimeError(
            f"the {processes} training processes failed (exit {launcher.returncode}):\n"
            + "\n".join(tail)
        )
    result = follower.result
    return TrainResult(
        artifact_path=result["artifact_path"],
        artifact_kind=result["artifact_kind"],
        step=result["step"],
        total_steps=result["total_steps"],
        resumed_from_step=result["resumed_from_step"],
        metrics=result["metrics"],
        model=None,
    )


class _Follower:
    """Reads what the ranks wrote since the last call: events to the listener, log lines
    to this process's log (so they reach the run's train.log)."""

    def __init__(self, work: Path, listener):
        self.work = work
        self.listener = listener
        self.positions = {EVENTS: 0, LAUNCH_LOG: 0}
        self.result: dict | None = None
        self.cancelled_at: int | None = None
        self.stop_sent = False

    def _new_lines(self, name: str, final: bool) -> list[str]:
        path = self.work / name
        if not path.is_file():
            return []
        with path.open("rb") as f:
            f.seek(self.positions[name])
            data = f.read()
        if not final:  # a line still being written waits for the next call
            data = data[: data.rfind(b"\n") + 1]
        self.positions[name] += len(data)
        return data.decode("utf-8", errors="replace").splitlines()

    def read(self, *, final: bool = False) -> None:
        for line in self._new_lines(LAUNCH_LOG, final):
            if line.strip():
                logger.info("%s", line)
        for line in self._new_lines(EVENTS, final):
            if not line.strip():
                continue
            event = json.loads(line)
            kind = event.pop("event")
            if kind == "result":
                self.result = event
            elif kind == "cancelled":
                self.cancelled_at = event["step"]
            else:
                getattr(self.listener, kind)(**event)


# --- a rank -------------------------------------------------------------------------------


@dataclass
class Rank:
    index: int
    local_index: int
    world_size: int
    work: Path
    resume: Checkpoint | None
    device: str

    def barrier(self) -> None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()

    def stop_check(self, listener, config: TrainConfig):
        every = max(1, config.logging_steps)
        stop_file = self.work / STOP

        def check(state) -> bool:
            if state.global_step % every and state.global_step < state.max_steps:
                return False
            import torch
            import torch.distributed as dist

            asked = self.index == 0 and stop_file.exists()
            flag = torch.tensor([1 if asked else 0], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            return bool(flag.item())

        return check


class _EventWriter:
    """Rank 0's listener: one JSON line per event (step events at most every
    STEP_EVENT_INTERVAL seconds)."""

    def __init__(self, path: Path):
        self.file = path.open("a", encoding="utf-8")
        self._last_step = 0.0

    def _write(self, event: str, **fields) -> None:
        self.file.write(json.dumps({"event": event, **fields}) + "\n")
        self.file.flush()

    def started(self, **fields):
        self._write("started", **fields)

    def step(self, **fields):
        now = time.monotonic()
        if now - self._last_step >= STEP_EVENT_INTERVAL or fields["step"] == fields["total_steps"]:
            self._last_step = now
            self._write("step", **fields)

    def logged(self, **fields):
        self._write("logged", **fields)

    def checkpoint(self, **fields):
        self._write("checkpoint", **fields)

    def should_stop(self) -> bool:  # asked through Rank.stop_check instead
        return False


def rank_main(spec_path: str) -> int:
    from .loop import TrainingCancelled, TrainListener, run_training

    spec = json.loads(Path(spec_path).read_text())
    work = Path(spec_path).parent
    index, local = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    device = spec["device"]
    if device.startswith("cuda"):
        import torch

        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    logging.basicConfig(
        level=logging.WARNING, format=f"[rank {index}] %(levelname)s %(name)s: %(message)s"
    )
    if index == 0:
        logging.getLogger("training").setLevel(logging.INFO)
    resume = (
        Checkpoint(step=spec["resume_step"], path=Path(spec["resume_path"]))
        if spec["resume_step"] is not None
        else None
    )
    rank = Rank(index, local, int(os.environ["WORLD_SIZE"]), work, resume, device)
    rows = _rows_from(json.loads((work / "rows.json").read_text()))
    writer = _EventWriter(work / EVENTS) if index == 0 else None
    try:
        result = run_training(
            config=TrainConfig.from_dict(spec["config"]),
            rows=rows,
            output_dir=spec["output_dir"],
            listener=writer or TrainListener(),
            device=device,
            rank=rank,
            loader_workers=spec.get("loader_workers"),
        )
    except TrainingCancelled as stop:
        if writer:
            writer._write("cancelled", step=stop.step)
        return CANCELLED_EXIT
    if writer:
        metrics = {**result.metrics, "device": spec["device"]}
        writer._write(
            "result",
            artifact_path=result.artifact_path,
            artifact_kind=result.artifact_kind,
            step=result.step,
            total_steps=result.total_steps,
            resumed_from_step=result.resumed_from_step,
            metrics=metrics,
        )
    return 0


if __name__ == "__main__":  # pragma: no cover - started by torch.distributed.run
    sys.exit(rank_main(sys.argv[1]))
