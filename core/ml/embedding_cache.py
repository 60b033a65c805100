"""The one on-disk embedding cache of Sieve, content-addressed. No Django.

Mining (a corpus in the database), synthesis's teacher and evaluation (a corpus in files,
or a streamlined subsample of one) all file vectors the same way: per *family* — a digest of
everything besides the text that decides a vector (the model's exact identity and revision,
the prefix or prompt, the max sequence length, precision, ...) — and, inside a family, by a
digest of the exact text the model reads (``title + " " + text``). So a second run of the
same model finds every vector; a subsample finds its documents in the full run's vectors; a
corpus that grew or changed encodes only its new or edited texts.

Layout under ``root``::

    ab/<family>/meta.json                 the family's parts (what decides the vectors)
    ab/<family>/<shard>/keys.npy          S16 text digests, sorted ascending, unique
    ab/<family>/<shard>/vectors.npy       float32 (rows, dim), row i belongs to keys[i]
    ab/<family>/.build.lock               held by a builder while it encodes (``building``)
    ab/<family>/.lock                     held while shards are merged (``compact``)

Crash safety: a shard is written in a private ``.partial-*`` folder, fsynced and renamed into
place in one step, so a reader never sees half a shard and a crash leaves only a partial
folder that a later writer removes. Concurrency: each ``add`` publishes its own shard (two
writers never write the same file); when a family holds more than ``MAX_SHARDS`` they are
merged into one under the family's lock. A shard that disappears under a reader (merged
meanwhile) reads as a miss: the text is encoded again, which costs time, never a wrong
vector. A builder that holds ``building()`` makes a second builder of the same family wait
and then find the vectors instead of encoding them twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX: no cross-process lock, still atomic
    fcntl = None

KEY_DTYPE = "S16"
MAX_SHARDS = 8
STALE_PARTIAL_SECONDS = 6 * 3600


def text_key(text: str) -> bytes:
    """The 16-byte digest a document's vector is filed under: the exact text the model reads
    (``title + " " + text``, as mteb and ``encoder.passage_text`` join them), without the
    prefix or prompt, which is part of the family."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def text_keys(texts) -> np.ndarray:
    return np.array([text_key(t) for t in texts], dtype=KEY_DTYPE)


def family_key(parts: dict) -> str:
    """A stable digest of the settings that decide a vector's values."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class _Shard:
    def __init__(self, folder: Path):
        self.folder = folder
        self.keys = np.load(folder / "keys.npy")
        self.vectors = np.load(folder / "vectors.npy", mmap_mode="r")

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Row of each key in this shard, -1 where absent."""
        if not len(self.keys):
            return np.full(len(keys), -1, dtype=np.int64)
        rows = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return np.where(self.keys[rows] == keys, rows, -1)


class VectorStore:
    """Vectors of one family: ``lookup`` what is there, ``add`` what was encoded."""

    def __init__(self, root: Path | str, parts: dict):
        self.parts = dict(parts)
        self.family = family_key(self.parts)
        self.folder = Path(root) / self.family[:2] / self.family

    def _shard_folders(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith("."))

    def _shards(self) -> list[_Shard]:
        shards = []
        for folder in self._shard_folders():
            try:
                shards.append(_Shard(folder))
            except (OSError, ValueError):
                continue  # merged away meanwhile: its vectors are in the merged shard
        return shards

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(found, vectors): ``found[i]`` says whether ``keys[i]`` is stored; ``vectors`` holds
        the found ones in the order of ``keys`` (None when nothing was found)."""
        found, vectors = self.fill(keys)
        return found, None if vectors is None else vectors[found]

    def fill(
        self, keys: np.ndarray, out: np.ndarray | None = None, *, found: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(found, out): the stored vector of each key written into ``out[i]``, one float32
        row per key (allocated at the first hit when not given, so None when nothing was
        found). Keys already marked in a given ``found`` are left alone. For a large corpus
        this fills one matrix in place instead of copying it."""
        keys = np.asarray(keys, dtype=KEY_DTYPE)
        found = np.zeros(len(keys), dtype=bool) if found is None else found
        for shard in self._shards():
            pending = np.flatnonzero(~found)
            if not len(pending):
                break
            rows = shard.find(keys[pending])
            hit = rows >= 0
            if not hit.any():
                continue
            if out is None:
                out = np.zeros((len(keys), shard.vectors.shape[1]), dtype=np.float32)
            order = np.argsort(rows[hit])  # read the memory map in row order
            targets = pending[hit][order]
            out[targets] = np.asarray(shard.vectors[rows[hit][order]], dtype=np.float32)
            found[targets] = True
        return found, out

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Store ``vectors`` (float32, one row per key) as a new shard, then merge the family's
        shards when there are too many."""
        keys = np.asarray(keys, dtype=KEY_DTYPE)
        vectors = np.asarray(vectors, dtype=np.float32)
        if len(keys) != len(vectors):
            raise ValueError(f"{len(keys)} keys for {len(vectors)} vectors")
        if not len(keys):
            return
        unique, first = np.unique(keys, return_index=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = self.folder / "meta.json"
        if not meta.exists():
            _write_atomic(meta, json.dumps(self.parts, indent=2, sort_keys=True, default=str))
        self._publish(unique, vectors[first])
        if len(self._shard_folders()) > MAX_SHARDS:
            self.compact()

    def _publish(self, keys: np.ndarray, vectors: np.ndarray) -> Path:
        self._remove_stale_partials()
        name = f"{time.time_ns():020d}-{os.getpid()}"
        partial = self.folder / f".partial-{name}"
        partial.mkdir()
        try:
            np.save(partial / "keys.npy", keys)
            np.save(partial / "vectors.npy", vectors)
            for file in ("keys.npy", "vectors.npy"):
                with (partial / file).open("rb") as f:
                    os.fsync(f.fileno())
            final = self.folder / name
            os.rename(partial, final)
            partial = None
            return final
        finally:
            if partial is not None:
                shutil.rmtree(partial, ignore_errors=True)

    def compact(self) -> None:
        """Merge every shard into one (under the family's lock, so two mergers do not race)."""
        with self._lock():
            folders = self._shard_folders()
            if len(folders) <= 1:
                return
            shards = [_Shard(f) for f in folders]
            keys = np.concatenate([s.keys for s in shards])
            unique, first = np.unique(keys, return_index=True)
            vectors = np.concatenate([np.asarray(s.vectors) for s in shards])[first]
            self._publish(unique, vectors)
            del shards
            for folder in folders:
                shutil.rmtree(folder, ignore_errors=True)

    def building(self) -> contextlib.AbstractContextManager[None]:
        """Held by a builder from its lookup to its ``add``: a second builder of the family
        waits, then finds the vectors. Not the merge lock: ``add`` may merge while it is held."""
        return self._lock(".build.lock")

    @contextlib.contextmanager
    def _lock(self, name: str = ".lock") -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / name).open("a") as handle:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(handle, fcntl.LOCK_UN)

    def _remove_stale_partials(self) -> None:
        now = time.time()
        for leftover in self.folder.glob(".partial-*"):
            try:
                if now - leftover.stat().st_mtime > STALE_PARTIAL_SECONDS:
                    shutil.rmtree(leftover, ignore_errors=True)
            except OSError:
                continue

    def __len__(self) -> int:
        """Vectors stored (a text in two shards counts twice until they are merged)."""
        return sum(len(s.keys) for s in self._shards())


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(text)
    os.replace(partial, path)
