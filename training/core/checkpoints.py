"""Checkpoints that are trusted only once complete, and their rotation. Pure: no Django.

The Hugging Face trainer writes a checkpoint file by file; ``mark_complete`` (called from the
training loop's ``on_save``) fsyncs the folder and then writes ``.sieve-complete``. Only
folders with the marker and a ``trainer_state.json`` are resumed from; the others were being
written when their worker died. Flow and reasons: ``training/training.md``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
# Written into a checkpoint folder once every file in it is on disk; a folder without it was
# being written when its worker died and is never resumed from.
COMPLETE_MARKER = ".sieve-complete"
KEEP_CHECKPOINTS = 2


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path


def _checkpoint_folders(folder: Path) -> list[tuple[int, Path]]:
    found = []
    if not folder.is_dir():
        return found
    for path in folder.iterdir():
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return sorted(found)


def _is_complete(path: Path) -> bool:
    return (path / COMPLETE_MARKER).is_file() and (path / "trainer_state.json").is_file()


def latest_checkpoint(folder: str | Path) -> Checkpoint | None:
    """The newest complete checkpoint under ``folder``. Incomplete folders (a worker killed
    while writing one) are removed: the trainer would write the same step into the same
    folder again, next to whatever the dead process left there."""
    folder = Path(folder)
    latest = None
    for step, path in _checkpoint_folders(folder):
        if _is_complete(path):
            latest = Checkpoint(step=step, path=path)
        else:
            logger.warning("removing the incomplete checkpoint %s", path)
            shutil.rmtree(path, ignore_errors=True)
    return latest


def fsync_tree(path: Path) -> None:
    """Flush every file under ``path`` to disk."""
    for file in path.rglob("*"):
        if file.is_file():
            fd = os.open(file, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def mark_complete(path: Path) -> None:
    """Flush a written checkpoint to disk, then write its marker (itself atomically)."""
    fsync_tree(path)
    partial = path / (COMPLETE_MARKER + ".partial")
    partial.write_text(json.dumps({"completed_at": time.time()}))
    os.replace(partial, path / COMPLETE_MARKER)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prune_checkpoints(folder: Path, *, keep: int = KEEP_CHECKPOINTS) -> None:
    complete = [(s, p) for s, p in _checkpoint_folders(folder) if _is_complete(p)]
    for _, path in complete[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


def checkpoints_remove(output_dir: str | Path) -> None:
    """Drop a run's checkpoints (optimizer state and all) once it has ended."""
    shutil.rmtree(Path(output_dir) / CHECKPOINTS_DIR, ignore_errors=True)
