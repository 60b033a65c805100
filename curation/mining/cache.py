"""On-disk cache of corpus embeddings. No Django: callers name an entry by a *family* (a
digest of what decides the vectors: model revision, prefix, max length, precision, corpus)
and a *version* (a digest of the corpus content), and give the rows; evaluation can use it
for a corpus that lives in files as well as for one in the database.

Layout under ``root``::

    ab/<family>/<version>/embeddings.npy   float32 (rows, dim), L2-normalised
    ab/<family>/<version>/passage_ids.npy  int64 database ids, ascending; row i = passage_ids[i]
    ab/<family>/<version>/text_hashes.npy  S32, each passage's text_hash (what was encoded)
    ab/<family>/<version>/doc_ids.txt      the source's doc ids, one JSON string per line
    ab/<family>/<version>/meta.json        the key's parts, rows, dim, when, how many encoded

An entry is built in a private ``.partial-*`` folder and renamed into place in one step, so a
reader never sees half an entry and a crash leaves only a partial folder that a later build
removes. A lock file serialises builders of one family on one machine: a second mining run
that asks while the first is still encoding waits, then reads instead of encoding again.

A corpus that grew (an import, a synthesis run adding generated passages) gets a new version;
its entry is built from the family's latest one: rows whose (id, text_hash) are unchanged are
copied, only new or edited passages are encoded. Older versions beyond ``KEEP_VERSIONS`` are
removed once a newer one is published.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX: no cross-process lock, still atomic
    fcntl = None

# A partial folder older than this belongs to a builder that died.
STALE_PARTIAL_SECONDS = 6 * 3600
KEEP_VERSIONS = 2
FILES = ("embeddings.npy", "passage_ids.npy", "text_hashes.npy", "doc_ids.txt", "meta.json")


@dataclass
class CachedEmbeddings:
    """``ids, matrix = cached`` unpacks to the database ids and the float32 matrix (memory-
    mapped: a 10M x 768 corpus is not read into memory until rows are touched)."""

    key: str  # "<family>/<version>"
    path: Path
    passage_ids: np.ndarray
    matrix: np.ndarray
    meta: dict = field(default_factory=dict)
    built: bool = False  # True when this call wrote the entry, False when it was found
    encoded: int = 0  # passages this call encoded (the rest were copied from an older version)

    def __iter__(self):
        return iter((self.passage_ids, self.matrix))

    def __len__(self) -> int:
        return len(self.passage_ids)

    def text_hashes(self) -> np.ndarray:
        return np.load(self.path / "text_hashes.npy")

    def doc_ids(self) -> list[str]:
        with (self.path / "doc_ids.txt").open(encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    def rows_of(self, passage_ids) -> np.ndarray:
        """Row of each given passage id in the matrix, -1 where it is not in the cache."""
        return rows_of(self.passage_ids, passage_ids)


def rows_of(sorted_ids: np.ndarray, wanted) -> np.ndarray:
    wanted = np.asarray(wanted, dtype=np.int64)
    if not len(sorted_ids):
        return np.full(len(wanted), -1, dtype=np.int64)
    rows = np.minimum(np.searchsorted(sorted_ids, wanted), len(sorted_ids) - 1)
    return np.where(sorted_ids[rows] == wanted, rows, -1)


class EntryWriter:
    """Fills one entry: the ids and hashes are fixed up front; vectors are ``put`` at their
    rows in any order, doc ids are appended in row order. ``EmbeddingCache.build`` commits."""

    def __init__(self, folder: Path, *, passage_ids: np.ndarray, text_hashes: np.ndarray, dim: int):
        self.folder = folder
        self.rows = len(passage_ids)
        self.dim = dim
        np.save(folder / "passage_ids.npy", np.asarray(passage_ids, dtype=np.int64))
        np.save(folder / "text_hashes.npy", np.asarray(text_hashes, dtype="S32"))
        self.matrix = np.lib.format.open_memmap(
            folder / "embeddings.npy", mode="w+", dtype=np.float32, shape=(self.rows, dim)
        )
        self.filled = np.zeros(self.rows, dtype=bool)
        self._doc_ids = (folder / "doc_ids.txt").open("w", encoding="utf-8")
        self.doc_ids_written = 0

    def put(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        if vectors.shape != (len(rows), self.dim):
            raise ValueError(f"expected {len(rows)} vectors of dimension {self.dim}")
        self.matrix[rows] = vectors
        self.filled[rows] = True

    def append_doc_ids(self, doc_ids: list[str]) -> None:
        self._doc_ids.writelines(json.dumps(d) + "\n" for d in doc_ids)
        self.doc_ids_written += len(doc_ids)

    @property
    def written(self) -> int:
        return int(self.filled.sum())

    def close(self) -> None:
        self.matrix.flush()
        self._doc_ids.close()
        del self.matrix  # release the map before the folder is renamed


class EmbeddingCache:
    def __init__(self, root: Path | str):
        self.root = Path(root)

    def _family(self, family: str) -> Path:
        return self.root / family[:2] / family

    def get(self, family: str, version: str) -> CachedEmbeddings | None:
        return self._read(self._family(family) / version, f"{family}/{version}")

    def latest(self, family: str) -> CachedEmbeddings | None:
        """The family's most recently published version (to build a newer one from)."""
        folder = self._family(family)
        versions = sorted(
            (p for p in folder.glob("[!.]*") if (p / "meta.json").is_file()),
            key=lambda p: (p / "meta.json").stat().st_mtime,
        )
        for path in reversed(versions):
            found = self._read(path, f"{family}/{path.name}")
            if found is not None:
                return found
        return None

    def _read(self, folder: Path, key: str) -> CachedEmbeddings | None:
        try:
            meta = json.loads((folder / "meta.json").read_text())
            ids = np.load(folder / "passage_ids.npy")
            matrix = np.load(folder / "embeddings.npy", mmap_mode="r")
        except (OSError, ValueError):
            return None
        return CachedEmbeddings(key=key, path=folder, passage_ids=ids, matrix=matrix, meta=meta)

    @contextlib.contextmanager
    def lock(self, family: str) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        lock_path = self.root / f".{family}.lock"
        with lock_path.open("a") as handle:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def build(
        self,
        family: str,
        version: str,
        *,
        passage_ids: np.ndarray,
        text_hashes: np.ndarray,
        dim: int,
        meta: dict,
    ) -> Iterator[EntryWriter]:
        """``with cache.build(...) as writer: writer.put(...)``. On normal exit the entry is
        checked (every row and doc id written) and moved into place atomically; on an
        exception nothing is published."""
        parent = self._family(family)
        parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale_partials(parent)
        partial = parent / f".partial-{version}-{os.getpid()}-{time.monotonic_ns()}"
        partial.mkdir()
        started = time.monotonic()
        try:
            writer = EntryWriter(partial, passage_ids=passage_ids, text_hashes=text_hashes, dim=dim)
            try:
                yield writer
            finally:
                writer.close()
            if writer.written != writer.rows or writer.doc_ids_written != writer.rows:
                raise RuntimeError(
                    f"wrote {writer.written} vectors and {writer.doc_ids_written} doc ids "
                    f"of {writer.rows} rows"
                )
            info = {
                **meta,
                "rows": writer.rows,
                "dim": dim,
                "family": family,
                "version": version,
                "build_seconds": round(time.monotonic() - started, 3),
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            (partial / "meta.json").write_text(json.dumps(info, indent=2, sort_keys=True))
            for name in FILES:
                with (partial / name).open("rb") as f:
                    os.fsync(f.fileno())
            final = parent / version
            try:
                os.rename(partial, final)
            except OSError:
                if not final.exists():
                    raise
                # Someone else published the same version meanwhile (same inputs, same values).
            partial = None
            self._prune(parent, keep=final)
        finally:
            if partial is not None:
                shutil.rmtree(partial, ignore_errors=True)

    def _prune(self, parent: Path, *, keep: Path) -> None:
        """Keep the newest ``KEEP_VERSIONS`` versions (a process still reading an older one
        keeps its memory map: POSIX frees the file when the last map goes)."""
        versions = sorted(
            (p for p in parent.glob("[!.]*") if p.is_dir() and p != keep),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        for old in versions[KEEP_VERSIONS - 1 :]:
            shutil.rmtree(old, ignore_errors=True)

    def _remove_stale_partials(self, parent: Path) -> None:
        now = time.time()
        for leftover in parent.glob(".partial-*"):
            try:
                if now - leftover.stat().st_mtime > STALE_PARTIAL_SECONDS:
                    shutil.rmtree(leftover, ignore_errors=True)
            except OSError:
                continue

    def entries(self) -> list[dict]:
        """Every published entry's meta (for an admin page or a clean-up command)."""
        found = []
        for meta_path in sorted(self.root.glob("*/*/*/meta.json")):
            try:
                found.append(json.loads(meta_path.read_text()))
            except (OSError, ValueError):
                continue
        return found
